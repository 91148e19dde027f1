"""Job-test helpers: the dummy counter kind, a patience bound and event waits."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core import jobs

COUNT = "core.jobs._testing:count"
# Tests wait on events (a state, a step, a file); this bound only turns a hang into a failure, so
# it is generous enough for a machine under heavy load (cold worker start-up included).
PATIENCE = 120.0


def wait_for(pred: Callable[[], Any], timeout: float = PATIENCE, what: str = "condition") -> Any:
    """Poll ``pred`` until truthy; fail the test after ``timeout`` seconds (a hang guard)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def state(run_id: str) -> str:
    return str(jobs.read_run(run_id)["status"]["state"])


def step(run_id: str) -> int:
    progress = jobs.read_run(run_id)["progress"] or {}
    return int(progress.get("step") or 0)


def all_json_parses(run_dir: Path) -> None:
    """Every .json file in the run (not the temp files) is complete, valid JSON."""
    for path in run_dir.rglob("*.json"):
        if not path.name.startswith("."):
            json.loads(path.read_text())
