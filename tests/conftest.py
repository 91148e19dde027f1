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
