"""The worker process: ``python -m core.jobs.worker <run_dir>`` runs one attempt of one job.

Started detached (own session, output to ``log.txt``) by :func:`core.jobs.start_job` /
:func:`core.jobs.resume_job`, so it outlives the Streamlit server or CLI that started it. It claims
the run (records its pid), waits for the device, calls the kind function, and records the outcome:
completed (with ``result.json``), stopped, cancelled, or failed with the traceback tail.
"""

from __future__ import annotations

import errno
import os
import socket
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from core.io import atomic_write_json
from core.jobs import devices, store
from core.jobs.context import RunContext, install_sigterm
from core.jobs.kinds import load_target

HEARTBEAT_S = 1.0
CANCEL_POLL_S = 0.1


def _ours(pid: int, fields: dict[str, Any]) -> Any:
    """A status change applied only while this worker still owns an active run."""

    def change(s: dict[str, Any]) -> dict[str, Any] | None:
        if s.get("pid") != pid or s.get("state") not in store.ACTIVE_STATES:
            return None
        return fields

    return change


def _finish(run_dir: Path, state: str, **fields: Any) -> None:
    now = store.now_iso()
    pid = os.getpid()
    final = {"state": state, "finished": now, "heartbeat": now, **fields}

    def change(s: dict[str, Any]) -> dict[str, Any] | None:
        if s.get("pid") != pid or s.get("state") not in store.ACTIVE_STATES:
            return None
        # A cancel that arrived after the job saw "stop" still wins (read under the status lock
        # that control requests take, so it is either seen here or refused).
        control = store.read_json(run_dir / store.CONTROL)
        if state == "stopped" and isinstance(control, dict) and control.get("action") == "cancel":
            return {**final, "state": "cancelled"}
        return final

    store.update_status(run_dir, change)


def _describe(e: BaseException, run_dir: Path) -> tuple[str, str]:
    """(one-line message, traceback tail) for status.json."""
    message = f"{type(e).__name__}: {e}"
    if isinstance(e, OSError) and e.errno == errno.ENOSPC:
        message = (
            f"disk full: {e}; free space on the disk holding {run_dir.parent} "
            "or set IMPLOSION_RUNS to a larger disk, then resume the run"
        )
    lines = traceback.format_exception(e)
    tail = "".join(lines).rstrip().splitlines()[-25:]
    return message, "\n".join(tail)[-4000:]


def _watchdog(run_dir: Path, ctx: RunContext, grace_s: float, done: threading.Event) -> None:
    """Heartbeat every second; enforce the cancel grace period if the kind ignores should_stop."""
    pid = os.getpid()
    last_beat, cancel_seen = 0.0, None
    while not done.wait(CANCEL_POLL_S):
        now = time.monotonic()
        if now - last_beat >= HEARTBEAT_S:
            last_beat = now
            try:
                store.update_status(run_dir, _ours(pid, {"heartbeat": store.now_iso()}))
            except OSError as e:  # disk full: keep running, the main thread will hit it too
                print(f"heartbeat failed: {e}", file=sys.stderr, flush=True)
        if ctx.control_action() != "cancel":
            cancel_seen = None
            continue
        cancel_seen = cancel_seen or now
        if now - cancel_seen > grace_s:
            ctx.log(f"cancel: job did not stop within {grace_s:g} s; terminating")
            _finish(
                run_dir,
                "cancelled",
                error_message=f"terminated: did not stop within the {grace_s:g} s grace period",
            )
            os._exit(1)


def run(run_dir: Path) -> int:
    """Run one attempt of the job in ``run_dir`` in this process; returns the exit code."""
    run_dir = Path(run_dir).resolve()
    config = store.read_json(run_dir / store.CONFIG)
    if not isinstance(config, dict):
        print(f"worker: {run_dir / store.CONFIG} is missing or unreadable", file=sys.stderr)
        return 2
    pid = os.getpid()

    def claim(s: dict[str, Any]) -> dict[str, Any]:
        if s.get("state") != "queued" or s.get("pid") not in (None, pid):
            raise ValueError(f"run is {s.get('state')} (pid {s.get('pid')}); not starting")
        return {
            "pid": pid,
            "pid_start": store.process_start_time(pid),  # pins this process (pids get recycled)
            "host": socket.gethostname(),
            "heartbeat": store.now_iso(),
        }

    try:
        status = store.update_status(run_dir, claim)
    except ValueError as e:
        print(f"worker {pid}: {e}", file=sys.stderr, flush=True)
        return 1

    device = str(config.get("device", "cpu"))
    ctx = RunContext(run_dir, device=device, attempt=int(status.get("attempt") or 1))
    install_sigterm(ctx)
    for entry in config.get("sys_path") or []:
        if entry not in sys.path:
            sys.path.append(entry)  # appended: never shadows the installed code
    ctx.log(f"worker pid {pid} attempt {ctx.attempt}: {config.get('kind')} on {device}")

    done = threading.Event()
    grace = float(config.get("cancel_grace_s", 10.0))
    threading.Thread(target=_watchdog, args=(run_dir, ctx, grace, done), daemon=True).start()
    try:

        def give_up() -> bool:
            return ctx.terminate_requested or ctx.control_action() in ("stop", "cancel")

        lock = devices.acquire(run_dir, device, give_up)
        if lock is None:
            state = "cancelled" if ctx.control_action() == "cancel" else "stopped"
            ctx.log(f"{state} while queued")
            _finish(run_dir, state)
            return 0
        store.update_status(run_dir, _ours(pid, {"state": "running", "started": store.now_iso()}))
        ctx.log("running")
        fn = load_target(str(config["target"]), config.get("kind"))
        result = fn(dict(config.get("config") or {}), ctx)
        if result is None:
            result = {}
        ctx.flush()
        if not isinstance(result, dict):
            raise TypeError(
                f"job kind returned {type(result).__name__}; expected a dict of metrics"
            )
        if ctx.stop_reason == "cancel":
            _finish(run_dir, "cancelled")
        elif ctx.stop_reason == "stop":
            _finish(run_dir, "stopped", last_result=result)
        else:
            atomic_write_json(run_dir / store.RESULT, result)
            _finish(run_dir, "completed", error=None, error_message=None)
        ctx.log(f"finished: {store.read_status(run_dir).get('state')}")
        return 0
    except BaseException as e:
        traceback.print_exc()
        try:
            ctx.flush()
        except OSError:
            pass
        message, tail = _describe(e, run_dir)
        try:
            if ctx.stop_reason == "cancel":
                _finish(run_dir, "cancelled", error_message=message, error=tail)
            else:
                _finish(run_dir, "failed", error_message=message, error=tail)
        except OSError as e2:  # e.g. the disk is still full: readers will see a dead worker
            print(f"worker: could not record the failure: {e2}", file=sys.stderr, flush=True)
        return 1
    finally:
        done.set()
        sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m core.jobs.worker RUN_DIR``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m core.jobs.worker RUN_DIR", file=sys.stderr)
        return 2
    return run(Path(args[0]))


if __name__ == "__main__":
    sys.exit(main())
