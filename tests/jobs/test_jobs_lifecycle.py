"""A dummy job through its life: complete, stop/resume, pause/resume, cancel, fail."""

from __future__ import annotations

import json
import time

import pytest

from core import jobs
from core.jobs import store
from tests.support.jobs import COUNT, PATIENCE, all_json_parses, state, step, wait_for


def test_job_completes_with_files_progress_and_listing(start):
    run_id = start(steps=12, checkpoint_every=5)
    status = jobs.wait_job(run_id, timeout=PATIENCE)
    assert status["state"] == "completed"
    run = jobs.read_run(run_id)
    assert run["result"]["sum"] == 12 * 13 // 2
    assert run["result"]["resumed_from"] is None
    assert run["config"]["config"] == {"steps": 12, "checkpoint_every": 5}
    assert run["config"]["metadata"]["versions"]["python"]
    progress = run["progress"]
    assert (progress["step"], progress["total"]) == (12, 12)
    assert progress["eta_seconds"] == 0
    assert [p["step"] for p in progress["history"]] == list(range(1, 13))
    assert [m["step"] for m in jobs.read_metrics(run_id)] == list(range(1, 13))
    run_dir = store.jobs_root() / run_id
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == [
        "latest.json",
        "step-000010.json",
        "step-000012.json",
    ]  # keep=2 pruned step 5
    assert (run_dir / "samples").is_dir()
    assert "finished: completed" in jobs.read_log(run_id)
    all_json_parses(run_dir)
    [summary] = jobs.list_runs()
    assert summary["run_id"] == run_id and summary["state"] == "completed"
    assert summary["step"] == 12 and summary["kind"] == COUNT


def test_stop_then_resume_continues_from_checkpoint(start, tmp_path):
    gate = tmp_path / "go"  # held after step 6 until the gate exists: stopped mid-run for sure
    run_id = start(steps=40, checkpoint_every=5, hold=str(gate), hold_at=6)
    wait_for(lambda: step(run_id) >= 6, what="step 6")
    jobs.stop_job(run_id)
    assert jobs.wait_job(run_id, timeout=PATIENCE)["state"] == "stopped"
    stopped_at = step(run_id)
    assert stopped_at == 6
    gate.touch()
    with pytest.raises(ValueError, match="it is stopped"):
        jobs.stop_job(run_id)
    jobs.resume_job(run_id)
    status = jobs.wait_job(run_id, timeout=PATIENCE)
    assert status["state"] == "completed" and status["attempt"] == 2
    result = jobs.read_run(run_id)["result"]
    assert result["sum"] == 40 * 41 // 2
    assert result["resumed_from"] == stopped_at  # the stop saved a checkpoint at its last step
    assert result["attempt"] == 2


def test_pause_blocks_and_resume_continues(start, tmp_path):
    gate = tmp_path / "go"
    run_id = start(steps=30, hold=str(gate), hold_at=2)
    wait_for(lambda: step(run_id) >= 2, what="step 2")
    jobs.pause_job(run_id)
    wait_for(lambda: state(run_id) == "paused", what="paused")
    with pytest.raises(ValueError, match="resume it with"):
        jobs.pause_job(run_id)
    frozen = step(run_id)
    time.sleep(0.3)
    assert step(run_id) == frozen and state(run_id) == "paused"
    jobs.resume_job(run_id)
    wait_for(lambda: state(run_id) != "paused", what="running again")
    gate.touch()
    assert jobs.wait_job(run_id, timeout=PATIENCE)["state"] == "completed"
    assert jobs.read_run(run_id)["result"]["sum"] == 30 * 31 // 2


def test_cancel_running_job(start, tmp_path):
    run_id = start(steps=20, hold=str(tmp_path / "never"))
    wait_for(lambda: step(run_id) >= 1, what="step 1")
    status = jobs.cancel_job(run_id, wait=True)
    assert status["state"] == "cancelled"
    assert jobs.read_run(run_id)["result"] is None
    with pytest.raises(ValueError, match="start a new job"):
        jobs.resume_job(run_id)


def test_cancel_unresponsive_job_is_terminated_after_grace(start):
    run_id = start(kind="core.jobs._testing:sleepy", seconds=60)
    wait_for(lambda: state(run_id) == "running", what="running")
    pid = jobs.read_run(run_id)["status"]["pid"]
    jobs.cancel_job(run_id)  # not waiting: the worker's own watchdog enforces the 1 s grace
    status = jobs.wait_job(run_id, timeout=PATIENCE)
    assert status["state"] == "cancelled"
    assert "grace period" in status["error_message"]
    wait_for(lambda: not store.pid_alive(pid), what="worker exit")


def test_failing_job_reports_traceback_tail(start):
    run_id = start(steps=10, fail_at=3)
    status = jobs.wait_job(run_id, timeout=PATIENCE)
    assert status["state"] == "failed"
    assert status["error_message"] == "RuntimeError: boom at step 3"
    assert "Traceback" in status["error"] and "_testing.py" in status["error"]
    assert "RuntimeError: boom at step 3" in jobs.read_log(run_id)


def test_disk_full_fails_cleanly_and_keeps_earlier_files(start):
    run_id = start(steps=20, checkpoint_every=5, disk_full_at=10)
    status = jobs.wait_job(run_id, timeout=PATIENCE)
    assert status["state"] == "failed"
    assert status["error_message"].startswith("disk full:")
    assert "IMPLOSION_RUNS" in status["error_message"]
    run_dir = store.jobs_root() / run_id
    all_json_parses(run_dir)
    ckpts = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert ckpts == ["latest.json", "step-000005.json"]  # no temp file left behind
    assert json.loads((run_dir / "checkpoints" / "step-000005.json").read_text())["sum"] == 15
