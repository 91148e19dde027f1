"""One job per device: the second waits (queue) or is refused.

The first job is held at step 1 until the test creates its ``hold`` file, so "still running"
is an event the test controls, not a guess about how fast a loaded machine runs a worker.
"""

from __future__ import annotations

import pytest

from core import jobs
from tests.support.jobs import PATIENCE, state, wait_for


def test_second_job_queues_until_the_device_is_free(start, tmp_path):
    gate = tmp_path / "go"
    first = start(steps=5, hold=str(gate))
    wait_for(lambda: state(first) == "running", what="first running")
    with pytest.raises(
        ValueError, match=f"device cpu is busy with run {first}; wait, stop it, or pass --queue"
    ):
        start(steps=2)
    second = start(steps=5, queue=True)
    third = start(steps=5, queue=True)
    for run_id in (second, third):
        wait_for(lambda r=run_id: jobs.read_run(r)["status"].get("pid"), what="worker up")
    assert state(second) == "queued" and state(third) == "queued"
    # A different device is not blocked.
    other = start(steps=3, device="cuda:0")
    assert jobs.wait_job(other, timeout=PATIENCE)["state"] == "completed"
    assert state(first) == "running" and state(second) == "queued"
    gate.touch()
    for run_id in (first, second, third):
        assert jobs.wait_job(run_id, timeout=PATIENCE)["state"] == "completed"
    runs = {r: jobs.read_run(r)["status"] for r in (first, second, third)}
    # FIFO and never overlapping: each started after the previous one finished.
    assert runs[first]["finished"] <= runs[second]["started"]
    assert runs[second]["finished"] <= runs[third]["started"]
    assert [r["run_id"] for r in jobs.list_runs()][:3] == [other, third, second]


def test_stop_and_cancel_while_queued(start, tmp_path):
    gate = tmp_path / "go"
    first = start(steps=3, hold=str(gate))
    wait_for(lambda: state(first) == "running", what="first running")
    waiting = start(steps=3, queue=True)
    doomed = start(steps=3, queue=True)
    jobs.stop_job(waiting)
    jobs.cancel_job(doomed)
    assert jobs.wait_job(waiting, timeout=PATIENCE)["state"] == "stopped"
    assert jobs.wait_job(doomed, timeout=PATIENCE)["state"] == "cancelled"
    with pytest.raises(ValueError, match="busy with run"):
        jobs.resume_job(waiting)
    jobs.resume_job(waiting, queue=True)
    gate.touch()
    assert jobs.wait_job(first, timeout=PATIENCE)["state"] == "completed"
    assert jobs.wait_job(waiting, timeout=PATIENCE)["state"] == "completed"
    assert jobs.read_run(waiting)["result"]["sum"] == 6
