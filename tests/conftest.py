"""Shared test setup: offline, CPU, deterministic, runs written to temp dirs."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def _isolated_runs(tmp_path, monkeypatch):
    """Every test gets its own runs directory so nothing leaks into the repo."""
    monkeypatch.setenv("IMPLOSION_RUNS", str(tmp_path / "runs"))
    yield


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny 8-concept model trained for 2 steps per stage (seconds); shared read-only."""
    from core.models.config import ModelConfig
    from core.training.base import TrainConfig, train_base
    from core.world import WorldConfig

    out = tmp_path_factory.mktemp("tiny") / "model"
    cfg = TrainConfig(
        n_per_concept=4,
        batch=8,
        dual_steps=2,
        vae_steps=2,
        judge_steps=2,
        unet_steps=2,
        world=WorldConfig(n_concepts=8),
        model=ModelConfig.tiny(),
    )
    train_base(cfg, out)
    return out
