"""One job per device: the second waits (queue) or is refused."""

from __future__ import annotations

import pytest
from conftest import COUNT, state, step, wait_for

from core import jobs


def test_second_job_queues_until_the_device_is_free(start):
    first = start(steps=20, step_seconds=0.03)
    wait_for(lambda: state(first) == "running", what="first running")
    with pytest.raises(
        ValueError, match=f"device cpu is busy with run {first}; wait, stop it, or pass --queue"
    ):
        start(steps=2)
    second = start(steps=5, queue=True)
    third = start(steps=5, queue=True)
    wait_for(lambda: jobs.read_run(second)["status"].get("pid"), what="second worker up")
    assert state(second) == "queued" and state(third) == "queued"
    assert step(first) < 20
    # A different device is not blocked.
    other = start(steps=3, device="cuda:0")
    assert jobs.wait_job(other, timeout=20)["state"] == "completed"
    assert state(first) == "running"
    for run_id in (first, second, third):
        assert jobs.wait_job(run_id, timeout=30)["state"] == "completed"
    runs = {r: jobs.read_run(r)["status"] for r in (first, second, third)}
    # FIFO and never overlapping: each started after the previous one finished.
    assert runs[first]["finished"] <= runs[second]["started"]
    assert runs[second]["finished"] <= runs[third]["started"]
    assert [r["run_id"] for r in jobs.list_runs()][:3] == [other, third, second]


def test_stop_and_cancel_while_queued(start):
    first = start(steps=30, step_seconds=0.03)
    wait_for(lambda: state(first) == "running", what="first running")
    waiting = start(steps=3, queue=True)
    doomed = start(steps=3, queue=True)
    jobs.stop_job(waiting)
    jobs.cancel_job(doomed)
    assert jobs.wait_job(waiting, timeout=10)["state"] == "stopped"
    assert jobs.wait_job(doomed, timeout=10)["state"] == "cancelled"
    with pytest.raises(ValueError, match="busy with run"):
        jobs.resume_job(waiting)
    jobs.resume_job(waiting, queue=True)
    assert jobs.wait_job(first, timeout=20)["state"] == "completed"
    assert jobs.wait_job(waiting, timeout=20)["state"] == "completed"
    assert jobs.read_run(waiting)["result"]["sum"] == 6
    assert COUNT
