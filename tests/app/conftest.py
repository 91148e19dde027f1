"""AppTest fixtures: a synthetic demo pack in a temp assets dir, runs in a temp dir."""

from __future__ import annotations

from pathlib import Path

import pytest

import pages._ui
from tests.support import ROOT
from tests.support.packs import write_assets


@pytest.fixture(scope="session")
def synthetic_assets(tmp_path_factory) -> Path:
    return write_assets(tmp_path_factory)


@pytest.fixture()
def assets(synthetic_assets, monkeypatch, tmp_path) -> Path:
    """The synthetic assets, and an empty runs folder per test (figure caches, jobs)."""
    monkeypatch.setenv("IMPLOSION_ASSETS", str(synthetic_assets))
    monkeypatch.setenv("IMPLOSION_RUNS", str(tmp_path / "runs"))
    return synthetic_assets


def page(name: str) -> str:
    return str(ROOT / "pages" / f"{name}.py")


_ORIGINAL_ROUTE = pages._ui.route_through_app


@pytest.fixture(autouse=True)
def _no_legacy_reroute(monkeypatch):
    """AppTest re-detects the legacy ``pages/`` mode on *every* run, so the one-time reroute that
    fixes deep links on a fresh server would rerun (and drop clicks) each time: disable it here."""
    import pages._ui

    monkeypatch.setattr(pages._ui, "route_through_app", lambda: None)


def _real_route() -> None:
    """The unpatched reroute (for its own unit test)."""
    _ORIGINAL_ROUTE()
