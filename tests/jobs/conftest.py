"""Fixtures for the job tests: short dummy jobs on the CPU, and no worker left behind."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from core import jobs
from core.jobs import store
from tests.support.jobs import COUNT


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
