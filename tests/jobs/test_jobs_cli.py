"""``implosion jobs …`` end to end through core.cli.main."""

from __future__ import annotations

import json
import subprocess
import sys

from core import jobs
from core.cli import main
from tests.support.jobs import COUNT, PATIENCE, state, step, wait_for


def _start_cli(capsys, *extra):
    assert main(["jobs", "start", COUNT, "--device", "cpu", *extra]) == 0
    return capsys.readouterr().out.strip()


def test_start_wait_list_show_logs(capsys, start):
    run_id = _start_cli(capsys, "--config", '{"steps": 6, "checkpoint_every": 2}', "--seed", "7")
    assert main(["jobs", "wait", run_id, "--timeout", "20"]) == 0
    assert capsys.readouterr().out.strip() == f"{run_id}: completed"

    assert main(["jobs", "list"]) == 0
    out = capsys.readouterr().out
    assert "RUN" in out and run_id in out and "completed" in out and "6/6" in out
    assert main(["jobs", "list", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["run_id"] == run_id and row["state"] == "completed"

    assert main(["jobs", "show", run_id, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["result"]["sum"] == 21 and shown["config"]["metadata"]["seed"] == 7
    assert main(["jobs", "show", run_id]) == 0
    out = capsys.readouterr().out
    assert "state     completed" in out and '"sum": 21' in out

    assert main(["jobs", "logs", run_id, "--tail", "1"]) == 0
    assert capsys.readouterr().out == "[" + jobs.read_log(run_id, tail=1).split("[", 1)[1]
    assert "finished: completed" in jobs.read_log(run_id, tail=1)


def test_control_commands_and_errors(capsys, start, tmp_path):
    hold = json.dumps({"steps": 60, "hold": str(tmp_path / "never"), "hold_at": 2})
    run_id = _start_cli(capsys, "--config", hold)
    wait_for(lambda: step(run_id) >= 2, what="step 2")
    assert main(["jobs", "pause", run_id]) == 0
    wait_for(lambda: state(run_id) == "paused", what="paused")
    assert main(["jobs", "resume", run_id]) == 0
    assert "resume requested" in capsys.readouterr().out
    assert main(["jobs", "stop", run_id]) == 0
    assert main(["jobs", "wait", run_id, "--timeout", "10"]) == 1
    assert f"{run_id}: stopped" in capsys.readouterr().out
    assert main(["jobs", "resume", run_id]) == 0
    assert f"restarted {run_id}" in capsys.readouterr().out
    wait_for(lambda: state(run_id) == "running", what="running again")
    assert main(["jobs", "cancel", run_id]) == 0
    assert f"{run_id}: cancelled" in capsys.readouterr().out

    assert main(["jobs", "resume", run_id]) == 2
    err = capsys.readouterr().err
    assert err.startswith("implosion jobs: error: cannot resume run") and err.count("\n") == 1
    assert main(["jobs", "show", "nope"]) == 2
    assert f"unknown run 'nope'; recent runs: {run_id}" in capsys.readouterr().err
    assert main(["jobs", "start", COUNT, "--config", "[1]"]) == 2
    assert "expected a JSON object" in capsys.readouterr().err
    assert main(["jobs", "start", "nope"]) == 2
    assert "unknown job kind 'nope'" in capsys.readouterr().err
    assert main(["jobs", "wait", run_id]) == 1


def test_wait_timeout_and_busy_device(capsys, start, tmp_path):
    hold = json.dumps({"steps": 100, "hold": str(tmp_path / "never")})
    run_id = _start_cli(capsys, "--config", hold)
    assert main(["jobs", "wait", run_id, "--timeout", "0.2"]) == 124
    assert "still" in capsys.readouterr().err
    assert main(["jobs", "start", COUNT, "--device", "cpu"]) == 2
    assert f"device cpu is busy with run {run_id}" in capsys.readouterr().err
    queued = _start_cli(capsys, "--queue", "--config", '{"steps": 2}')
    assert main(["jobs", "cancel", run_id]) == 0
    assert jobs.wait_job(queued, timeout=PATIENCE)["state"] == "completed"


def test_cli_started_job_survives_the_cli_process():
    # The CLI process has exited when run() returns; the worker must still finish the job.
    proc = subprocess.run(
        [sys.executable, "-m", "core.cli", "jobs", "start", "dummy", "--device", "cpu",
         "--config", '{"steps": 10}'],
        capture_output=True, text=True, timeout=PATIENCE,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    run_id = proc.stdout.strip()
    assert jobs.wait_job(run_id, timeout=PATIENCE)["state"] == "completed"
    assert jobs.read_run(run_id)["result"]["sum"] == 55
