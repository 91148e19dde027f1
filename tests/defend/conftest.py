"""Defend tests: a synthetic pack in a temp assets dir (the AppTest pages import `pages._ui`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.packs import write_assets


@pytest.fixture(scope="session")
def defend_assets(tmp_path_factory) -> Path:
    return write_assets(tmp_path_factory, "defend_assets")


@pytest.fixture()
def assets(defend_assets, monkeypatch) -> Path:
    monkeypatch.setenv("IMPLOSION_ASSETS", str(defend_assets))
    import pages._ui

    monkeypatch.setattr(pages._ui, "route_through_app", lambda: None)
    return defend_assets
