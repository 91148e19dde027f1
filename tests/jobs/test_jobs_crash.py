"""Crashes: kill -9 at random moments, a parent that exits, bad inputs."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys

import pytest

from core import jobs
from core.io import atomic_write_json
from core.jobs import store
from tests.support.jobs import COUNT, PATIENCE, all_json_parses, state, step, wait_for


def test_kill_9_at_random_moments_then_resume_completes(start):
    rng = random.Random(0)
    steps = 300
    run_id = start(steps=steps, checkpoint_every=3, step_seconds=0.01)
    run_dir = store.jobs_root() / run_id
    for attempt in range(1, 4):
        wait_for(lambda: state(run_id) in ("queued", "running"), what="worker up")
        status = wait_for(
            lambda: store.read_status(run_dir).get("pid") and store.read_status(run_dir), what="pid"
        )
        assert status["attempt"] == attempt
        # Sometimes while the worker starts up, mostly a few steps into training (maybe
        # mid-checkpoint): the kill point is a step reached, not a time slept.
        if rng.random() > 0.25:
            target = step(run_id) + rng.randint(1, 20)
            wait_for(lambda t=target: step(run_id) >= t, what=f"step {target}")
        assert state(run_id) in ("queued", "running")
        os.kill(status["pid"], signal.SIGKILL)
        failed = jobs.wait_job(run_id, timeout=PATIENCE)
        assert failed["state"] == "failed", failed
        assert "died unexpectedly" in failed["error_message"]
        assert store.read_status(run_dir)["state"] == "failed"  # persisted, not just reported
        all_json_parses(run_dir)
        jobs.resume_job(run_id)
    status = jobs.wait_job(run_id, timeout=PATIENCE)
    assert status["state"] == "completed", status
    result = jobs.read_run(run_id)["result"]
    assert result["sum"] == steps * (steps + 1) // 2
    assert result["attempt"] == 4
    all_json_parses(run_dir)


def test_job_outlives_the_process_that_started_it():
    code = (
        "from core.jobs import start_job; "
        f"print(start_job({COUNT!r}, {{'steps': 15}}, device='cpu'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=PATIENCE, check=True
    )
    run_id = out.stdout.strip().splitlines()[-1]
    # The starter has exited; the worker (not our child) carries on to the end.
    status = jobs.wait_job(run_id, timeout=PATIENCE)
    assert status["state"] == "completed", status
    assert jobs.read_run(run_id)["result"]["sum"] == 15 * 16 // 2


def test_unknown_run_lists_recent_ids(start):
    with pytest.raises(ValueError, match="no runs yet"):
        jobs.read_run("nope")
    run_id = start(steps=2)
    jobs.wait_job(run_id, timeout=PATIENCE)
    with pytest.raises(ValueError, match=f"unknown run 'nope'; recent runs: {run_id}"):
        jobs.read_run("nope")
    with pytest.raises(ValueError, match="unknown run"):
        jobs.read_run("../etc")


def test_bad_inputs_have_clear_errors(tmp_path, monkeypatch, start):
    with pytest.raises(ValueError, match="unknown job kind 'nope'; allowed: .*dummy"):
        jobs.start_job("nope", device="cpu")
    with pytest.raises(ValueError, match="cannot import no_such_module"):
        jobs.start_job("no_such_module:run", device="cpu")
    with pytest.raises(ValueError, match="has no function 'missing'"):
        jobs.start_job("core.jobs._testing:missing", device="cpu")
    with pytest.raises(ValueError, match="device 'tpu'"):
        jobs.start_job(COUNT, device="tpu")
    run_id = start(steps=3)
    jobs.wait_job(run_id, timeout=PATIENCE)
    with pytest.raises(ValueError, match="cannot resume run .*: it is completed"):
        jobs.resume_job(run_id)
    with pytest.raises(ValueError, match="cannot pause run .*: it is completed"):
        jobs.pause_job(run_id)
    with pytest.raises(ValueError, match="cannot cancel"):
        jobs.cancel_job(run_id)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("IMPLOSION_RUNS", str(blocker / "runs"))
    with pytest.raises(
        ValueError, match=r"runs directory .*a-file/runs is not writable.*IMPLOSION_RUNS"
    ):
        jobs.start_job(COUNT, device="cpu")


def test_register_kind(start):
    jobs.register_kind("counter-test", COUNT)
    assert jobs.kinds()["counter-test"] == COUNT
    with pytest.raises(ValueError, match="expected 'module.path:function'"):
        jobs.register_kind("bad", "no_colon")
    run_id = start(kind="counter-test", steps=3)
    assert "counter-test" in run_id
    assert jobs.wait_job(run_id, timeout=PATIENCE)["state"] == "completed"
    assert jobs.read_run(run_id)["config"]["target"] == COUNT


def test_stale_heartbeat_on_another_host_and_worker_that_never_started(start, monkeypatch):
    run_id = start(steps=2)
    jobs.wait_job(run_id, timeout=PATIENCE)
    run_dir = store.jobs_root() / run_id
    old = "2000-01-01T00:00:00+00:00"
    atomic_write_json(
        run_dir / "status.json",
        {"state": "running", "pid": 1, "host": "elsewhere", "heartbeat": old},
    )
    status = jobs.read_run(run_id)["status"]
    assert status["state"] == "failed" and "no heartbeat from host elsewhere" in status["error"]
    atomic_write_json(run_dir / "status.json", {"state": "queued", "pid": None, "queued_at": old})
    assert jobs.list_runs()[0]["state"] == "failed"
    assert "did not start" in store.read_status(run_dir)["error_message"]
