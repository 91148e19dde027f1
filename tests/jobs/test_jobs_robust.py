"""Run directories are untrusted input; requests are never lost; a broken run has a way out.

One test per class of fault found by fault injection (issue 13): hostile run-directory files,
a recycled pid, control requests in quick succession, a corrupt status.json, temp leftovers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from core import jobs
from core.cli import main
from core.io import atomic_write_json, clean_stale_tmp
from core.jobs import store
from core.jobs.context import RunContext
from tests.support.jobs import COUNT, PATIENCE, state, step, wait_for


def test_hostile_run_directory_cannot_touch_anything_outside(start, tmp_path, capsys):
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "data.txt").write_text("keep me")
    run_id = start(steps=6, checkpoint_every=2)
    assert jobs.wait_job(run_id, timeout=PATIENCE)["state"] == "completed"
    run_dir = store.jobs_root() / run_id
    ckpt = run_dir / "checkpoints"
    rel = os.path.relpath(outside, ckpt)
    # latest.json names pointing outside: never returned as a checkpoint, never pruned.
    atomic_write_json(ckpt / "latest.json", {"name": rel, "saved": [rel, "../../x", 3, None]})
    ctx = RunContext(run_dir)
    assert ctx.latest_checkpoint() is not None
    assert ctx.latest_checkpoint().parent == ckpt
    for i in range(3):
        ctx.save_checkpoint(f"step-{100 + i}.json", lambda p: p.write_text("{}"), keep=1)
    assert (outside / "data.txt").read_text() == "keep me"
    pointer = json.loads((ckpt / "latest.json").read_text())
    assert pointer["saved"] == ["step-102.json"]
    # log.txt as a symlink: not followed when shown, and a worker never writes through it.
    (run_dir / "log.txt").unlink()
    (run_dir / "log.txt").symlink_to(outside / "data.txt")
    assert "keep me" not in jobs.read_log(run_id, tail=5)
    assert "symbolic link" in jobs.read_log(run_id)
    atomic_write_json(run_dir / "status.json", {"state": "failed", "attempt": 1})
    with pytest.raises(ValueError, match="log.txt is a symbolic link"):
        jobs.resume_job(run_id)
    assert (outside / "data.txt").read_text() == "keep me"
    # A symlinked run folder is neither listed nor operable.
    link = store.jobs_root() / "20990101-000000-linked-abcdef"
    link.symlink_to(run_dir)
    assert link.name not in [r["run_id"] for r in jobs.list_runs()]
    with pytest.raises(ValueError, match="symbolic link"):
        jobs.remove_job(link.name)
    assert main(["jobs", "rm", link.name]) == 2
    assert "symbolic link" in capsys.readouterr().err
    assert run_dir.is_dir() and link.is_symlink()


def test_recycled_pid_of_another_worker_is_not_this_run(start, tmp_path):
    # The live run: held at step 1 until the test releases it.
    gate = tmp_path / "go"
    live = start(steps=3, hold=str(gate))
    wait_for(lambda: state(live) == "running", what="live running")
    live_status = jobs.read_run(live)["status"]
    assert isinstance(live_status["pid_start"], int)
    # A stale run (killed long ago) whose recorded pid now belongs to the live run's worker.
    stale = start(steps=2, device="cuda:0")
    assert jobs.wait_job(stale, timeout=PATIENCE)["state"] == "completed"
    stale_dir = store.jobs_root() / stale
    for recorded in (
        {"pid": live_status["pid"], "pid_start": live_status["pid_start"] - 1},  # recycled
        {"pid": live_status["pid"], "pid_start": None},  # older version: no start time
    ):
        atomic_write_json(
            stale_dir / "status.json",
            {"state": "running", "attempt": 1, "host": live_status["host"], **recorded},
        )
        # It does not block its device, is reported dead, and cancelling it never kills the
        # other run's worker.
        other = start(steps=2, device="cuda:0")
        assert jobs.wait_job(other, timeout=PATIENCE)["state"] == "completed"
        assert state(stale) == "failed"
        with pytest.raises(ValueError, match="cannot cancel run .*: it is failed"):
            jobs.cancel_job(stale, wait=True)
    assert state(live) == "running"
    gate.touch()
    assert jobs.wait_job(live, timeout=PATIENCE)["state"] == "completed"


def test_control_requests_queue_or_are_refused_never_dropped(start, tmp_path):
    # A kind that never looks at control requests until the watchdog acts on a cancel: the
    # requests below meet a running job for sure (no race with the worker).
    run_id = start(kind="core.jobs._testing:sleepy", seconds=120)
    wait_for(lambda: state(run_id) == "running", what="running")
    jobs.stop_job(run_id)
    with pytest.raises(ValueError, match="a stop request is already pending"):
        jobs.pause_job(run_id)
    jobs.cancel_job(run_id)  # stronger than stop: accepted
    with pytest.raises(ValueError, match="a cancel request is already pending"):
        jobs.stop_job(run_id)
    assert jobs.wait_job(run_id, timeout=PATIENCE)["state"] == "cancelled"
    assert jobs.pending_request(store.jobs_root() / run_id) == "cancel"


@pytest.mark.parametrize("attempt", range(3))
def test_cancel_after_stop_is_honoured_or_refused(start, tmp_path, attempt):
    """Whatever the worker is doing, an accepted cancel ends the run cancelled; a refused one
    says the run already ended: the request is never accepted and then dropped."""
    run_id = start(steps=5, hold=str(tmp_path / "never"))
    wait_for(lambda: step(run_id) >= 1, what="step 1")
    jobs.stop_job(run_id)
    try:
        jobs.cancel_job(run_id)
        accepted = True
    except ValueError as e:
        assert "it is stopped" in str(e) or "ended meanwhile" in str(e), e
        accepted = False
    final = jobs.wait_job(run_id, timeout=PATIENCE)["state"]
    assert final == ("cancelled" if accepted else "stopped")


@pytest.mark.parametrize("garbage", [b'{"state": "runn', b"\x00\xffgarbage", b"[1, 2]", None])
def test_corrupt_status_is_broken_and_can_be_resumed_or_removed(start, capsys, garbage):
    run_id = start(steps=6, checkpoint_every=2)
    assert jobs.wait_job(run_id, timeout=PATIENCE)["state"] == "completed"
    run_dir = store.jobs_root() / run_id
    wait_for(lambda: not store.worker_pids(run_dir), what="worker exit")
    if garbage is None:
        (run_dir / "status.json").unlink()
    else:
        (run_dir / "status.json").write_bytes(garbage)
    [row] = jobs.list_runs()
    assert row["state"] == "broken" and "jobs rm" in row["error_message"]
    assert jobs.wait_job(run_id, timeout=PATIENCE)["state"] == "broken"  # never waits forever
    assert main(["jobs", "show", run_id]) == 0
    assert "state     broken" in capsys.readouterr().out
    with pytest.raises(ValueError, match="cannot cancel run .*broken.*jobs rm"):
        jobs.cancel_job(run_id)
    assert main(["jobs", "resume", run_id]) == 0
    assert jobs.wait_job(run_id, timeout=PATIENCE)["state"] == "completed"
    assert jobs.read_run(run_id)["result"]["sum"] == 21
    wait_for(lambda: not store.worker_pids(run_dir), what="worker exit")
    (run_dir / "status.json").write_bytes(b"{")
    assert main(["jobs", "rm", run_id]) == 0
    assert not run_dir.exists() and jobs.list_runs() == []


def test_remove_refuses_active_runs(start, tmp_path):
    run_id = start(steps=3, hold=str(tmp_path / "never"))
    wait_for(lambda: state(run_id) == "running", what="running")
    with pytest.raises(ValueError, match="cannot remove run .*: it is running; cancel it first"):
        jobs.remove_job(run_id)
    (store.jobs_root() / run_id / "status.json").write_text("garbage")  # worker still alive
    with pytest.raises(ValueError, match=r"worker \(pid \d+\) is still running"):
        jobs.remove_job(run_id)
    with pytest.raises(ValueError, match=r"worker \(pid \d+\) is still running"):
        jobs.resume_job(run_id)
    for pid in store.worker_pids(store.jobs_root() / run_id):
        os.kill(pid, 9)
    wait_for(lambda: not store.worker_pids(store.jobs_root() / run_id), what="worker gone")
    jobs.remove_job(run_id)


def test_temp_files_of_killed_writers_are_cleaned(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead_pid = int(dead.stdout)
    (tmp_path / "records").mkdir()
    stale = tmp_path / "records" / f".cp0_seed0.json.{dead_pid}.abc123.tmp"
    stale.write_text("{")
    stale_dir = tmp_path / f".step-000010.{dead_pid}.tmp"
    stale_dir.mkdir()
    live = tmp_path / f".results.json.{os.getpid()}.zzz.tmp"
    live.write_text("{")
    keep = tmp_path / "results.json"
    keep.write_text("{}")
    removed = clean_stale_tmp(tmp_path)
    assert sorted(removed) == sorted([stale, stale_dir])
    assert live.exists() and keep.exists()


def test_run_id_path_tricks_are_unknown_runs(start):
    run_id = start(steps=2)
    jobs.wait_job(run_id, timeout=PATIENCE)
    for bad in ("../" + run_id, "/etc", ".", "..", "a/b", run_id + "\x00"):
        with pytest.raises(ValueError, match="unknown run"):
            jobs.read_run(bad)
    assert COUNT


def test_helper_process_dies_with_its_parent(tmp_path):
    """A sweep level worker that calls exit_with_parent() ends when its parent is killed."""
    pid_file = tmp_path / "child.pid"
    child = (
        "import os, sys, time; from core.jobs.lifeline import exit_with_parent; "
        "how = exit_with_parent(); "
        f"open({str(pid_file)!r}, 'w').write(f'{{os.getpid()}} {{how}}'); "
        "time.sleep(600)"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c",
         f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {child!r}]); "
         "time.sleep(600)"],
    )  # fmt: skip
    try:
        wait_for(lambda: pid_file.exists() and " " in pid_file.read_text(), what="child up")
        child_pid, how = pid_file.read_text().split()
        assert how == "prctl"
        os.kill(parent.pid, 9)
        parent.wait()

        def gone() -> bool:
            try:
                os.kill(int(child_pid), 0)
            except ProcessLookupError:
                return True
            state = open(f"/proc/{child_pid}/stat").read().rsplit(")", 1)[1].split()[0]
            return state in ("Z", "X")  # killed, waiting to be reaped by init

        wait_for(gone, what="child killed with its parent")
    finally:
        if parent.poll() is None:
            parent.kill()
