"""Audit test fixtures: a synthetic pack (3 seeds) as the demo, runs in a temp dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.packs import write_assets


@pytest.fixture(scope="session")
def synthetic_demo(tmp_path_factory) -> Path:
    return write_assets(tmp_path_factory)


@pytest.fixture()
def demo_assets(synthetic_demo, monkeypatch) -> Path:
    monkeypatch.setenv("IMPLOSION_ASSETS", str(synthetic_demo))
    return synthetic_demo
