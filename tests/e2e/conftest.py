"""Browser fixtures: real Streamlit servers on free ports and headless Debian Chromium.

``demo_server`` serves the repository's own assets (the committed demo pack a newcomer plays);
``server`` serves synthetic assets for the job and sweep tests.

Helpers the tests import (Chromium, its flags, ``artifacts_dir``, ``wait_idle``) live in
tests/support/browser.py.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import pytest

from bench.stream_client import streamlit_server
from tests.support.browser import CHROMIUM, FLAGS, ROOT

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="session")
def e2e_dirs(tmp_path_factory):
    """Assets for the job tests: a synthetic pack (the sweep test adds a tiny base model)."""
    from core.results.synthetic import write_synthetic_demo_pack

    base = tmp_path_factory.mktemp("e2e")
    write_synthetic_demo_pack(base / "assets" / "demo")
    (base / "runs").mkdir()
    return base


@pytest.fixture(scope="session")
def browser_context(tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.skip(
            "Debian chromium is not installed (/usr/bin/chromium): apt-get install chromium"
        )
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_api.sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=FLAGS,
            viewport={"width": 1400, "height": 1000},
            accept_downloads=True,
        )
        try:
            yield ctx
        finally:
            ctx.close()


@contextlib.contextmanager
def _streamlit(assets: Path, runs: Path, log_path: Path):
    """``python -m streamlit run app.py`` on 127.0.0.1 with the given assets and runs folders.

    Yields {"url", "started" (monotonic, before Popen), "healthy_s", "ready", "runs"}.
    """
    env = {"IMPLOSION_ASSETS": str(assets), "IMPLOSION_RUNS": str(runs)}
    with streamlit_server(ROOT, env, log_path, timeout=60) as (url, _, t0):
        yield {
            "url": url,
            "started": t0,
            "healthy_s": time.monotonic() - t0,
            "ready": time.monotonic(),
            "runs": runs,
        }


@pytest.fixture(scope="session")
def demo_server(browser_context, tmp_path_factory):
    """The app as a newcomer gets it: the repository's own assets (the committed demo pack in
    assets/demo and the shipped base), runs in a temp folder."""
    if not (ROOT / "assets" / "demo" / "results.json").is_file():
        pytest.skip("assets/demo is missing: restore it with `git checkout assets/`")
    tmp = tmp_path_factory.mktemp("e2e-demo")
    (tmp / "runs").mkdir()
    with _streamlit(ROOT / "assets", tmp / "runs", tmp / "server.log") as s:
        yield s


@pytest.fixture(scope="session")
def server(e2e_dirs, browser_context):
    """A server on synthetic assets for the job tests (sweeps fine-tune a tiny base there)."""
    with _streamlit(e2e_dirs / "assets", e2e_dirs / "runs", e2e_dirs / "server.log") as s:
        yield s
