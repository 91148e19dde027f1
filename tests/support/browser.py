"""Browser-test helpers: Chromium and its flags, where screenshots go, waiting for Streamlit.

Artifacts (screenshots, timings.json) go to ``$IMPLOSION_ARTIFACTS`` or ``<repo>/artifacts/e2e``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tests.support import ROOT

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def artifacts_dir() -> Path:
    d = Path(os.environ.get("IMPLOSION_ARTIFACTS", ROOT / "artifacts" / "e2e"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def wait_idle(page: Any, timeout_ms: int = 30_000) -> None:
    """Wait until Streamlit finished running the script (status widget gone)."""
    page.wait_for_timeout(100)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=timeout_ms)


__all__ = ["CHROMIUM", "FLAGS", "ROOT", "artifacts_dir", "wait_idle"]
