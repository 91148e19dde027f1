"""Audit test fixtures: a synthetic pack (3 seeds) as the demo, runs in a temp dir."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def synthetic_demo(tmp_path_factory) -> Path:
    from core.results.synthetic import write_synthetic_demo_pack

    assets = tmp_path_factory.mktemp("assets")
    write_synthetic_demo_pack(assets / "demo", n_concepts=16, levels=(0, 2, 4, 8, 16))
    return assets


@pytest.fixture()
def demo_assets(synthetic_demo, monkeypatch) -> Path:
    monkeypatch.setenv("IMPLOSION_ASSETS", str(synthetic_demo))
    return synthetic_demo
