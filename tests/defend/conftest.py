"""Defend tests: a synthetic pack in a temp assets dir (the AppTest pages import `pages._ui`)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def defend_assets(tmp_path_factory) -> Path:
    from core.results.synthetic import write_synthetic_demo_pack

    assets = tmp_path_factory.mktemp("defend_assets")
    write_synthetic_demo_pack(assets / "demo", n_concepts=16, levels=(0, 2, 4, 8, 16))
    return assets


@pytest.fixture()
def assets(defend_assets, monkeypatch) -> Path:
    monkeypatch.setenv("IMPLOSION_ASSETS", str(defend_assets))
    import pages._ui

    monkeypatch.setattr(pages._ui, "route_through_app", lambda: None)
    return defend_assets
