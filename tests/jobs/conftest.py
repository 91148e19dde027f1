"""Fixtures for the job tests: short dummy jobs on the CPU, and no worker left behind."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from core import jobs
from core.jobs import store

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
    return jobs.read_run(run_id)["status"]["state"]


def step(run_id: str) -> int:
    progress = jobs.read_run(run_id)["progress"] or {}
    return int(progress.get("step") or 0)


def all_json_parses(run_dir: Path) -> None:
    """Every .json file in the run (not the temp files) is complete, valid JSON."""
    for path in run_dir.rglob("*.json"):
        if not path.name.startswith("."):
            json.loads(path.read_text())


@pytest.fixture
def start() -> Iterator[Callable[..., str]]:
    """``start(**config)`` starts the dummy counter on the CPU; workers are killed afterwards."""
    started: list[str] = []

    def _start(kind: str = COUNT, device: str = "cpu", queue: bool = False, **config: Any) -> str:
        run_id = jobs.start_job(kind, config, device=device, queue=queue, cancel_grace_s=1.0)
        started.append(run_id)
        return run_id

    yield _start
    root = store.jobs_root()
    for run_dir in root.iterdir() if root.is_dir() else []:
        pid = store.read_status(run_dir).get("pid") if run_dir.is_dir() else None
        if isinstance(pid, int) and store.pid_alive(pid):
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
