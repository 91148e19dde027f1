"""``implosion jobs …``: list, inspect and control background jobs (see :mod:`core.jobs`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from core import jobs
from core.jobs.progress import format_left, time_left


def register(subparsers: Any) -> None:
    """Add ``implosion jobs {list,show,start,stop,pause,resume,cancel,rm,logs,wait}``."""
    p = subparsers.add_parser(
        "jobs",
        help="list, inspect and control background jobs",
        description="Background jobs run in detached worker processes; their files live in "
        "IMPLOSION_RUNS (default <repo>/runs).",
    )
    sub = p.add_subparsers(dest="jobs_command", metavar="ACTION", required=True)

    q = sub.add_parser("list", help="runs, newest first")
    q.add_argument("--limit", type=int, default=None, help="show at most N runs")
    q.add_argument("--json", action="store_true", help="print JSON")
    q.set_defaults(func=_list)

    q = sub.add_parser("show", help="config, status, progress and result of a run")
    q.add_argument("run", metavar="RUN")
    q.add_argument("--json", action="store_true", help="print JSON")
    q.set_defaults(func=_show)

    q = sub.add_parser("start", help="start a job of a registered kind (or module:function)")
    q.add_argument("kind", metavar="KIND", help=f"one of {', '.join(sorted(jobs.kinds()))}")
    q.add_argument("--config", default="{}", help="JSON object, or @path/to/config.json")
    q.add_argument("--device", default="auto", help="auto, cpu, mps, cuda or cuda:N")
    q.add_argument("--seed", type=int, default=None, help="recorded in the run metadata")
    q.add_argument("--queue", action="store_true", help="wait for a busy device instead of failing")
    q.set_defaults(func=_start)

    for name, help_ in (
        ("stop", "stop after the current step (resumable)"),
        ("pause", "pause a running job (keeps its device)"),
        (
            "resume",
            "resume a paused job, or restart a stopped/failed/broken one from its checkpoint",
        ),
        ("cancel", "cancel a job for good (killed after a grace period)"),
    ):
        q = sub.add_parser(name, help=help_)
        q.add_argument("run", metavar="RUN")
        if name == "resume":
            q.add_argument(
                "--queue", action="store_true", help="wait for a busy device instead of failing"
            )
        if name == "cancel":
            q.add_argument("--no-wait", action="store_true", help="return without waiting")
        q.set_defaults(func=_control, action=name)

    q = sub.add_parser("rm", help="delete a finished, failed or broken run (not an active one)")
    q.add_argument("run", metavar="RUN")
    q.set_defaults(func=_rm)

    q = sub.add_parser("logs", help="the worker log of a run")
    q.add_argument("run", metavar="RUN")
    q.add_argument("--tail", type=int, default=None, metavar="N", help="only the last N lines")
    q.set_defaults(func=_logs)

    q = sub.add_parser(
        "wait",
        help="block until a run is stopped, cancelled, failed or completed",
        description="Exit code: 0 completed, 1 stopped/cancelled/failed, 124 on timeout.",
    )
    q.add_argument("run", metavar="RUN")
    q.add_argument("--timeout", type=float, default=None, metavar="S", help="give up after S s")
    q.set_defaults(func=_wait)


def _fmt_eta(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _fmt_progress(step: Any, total: Any) -> str:
    if step is None:
        return "-"
    return f"{step}/{total}" if total else str(step)


def _fmt_loss(loss: Any) -> str:
    return "-" if loss is None else f"{loss:.4g}"


def _list(args: argparse.Namespace) -> int:
    runs = jobs.list_runs(limit=args.limit)
    if args.json:
        print(json.dumps(runs, indent=2))
        return 0
    if not runs:
        print("no runs yet (start one with `implosion jobs start KIND`)")
        return 0
    rows = [("RUN", "KIND", "STATE", "DEVICE", "PROGRESS", "LOSS", "ETA")]
    for r in runs:
        active = r["state"] in jobs.ACTIVE_STATES
        rows.append(
            (
                r["run_id"],
                str(r["kind"]),
                r["state"],
                str(r["device"]),
                _fmt_progress(r["step"], r["total"]),
                _fmt_loss(r["loss"]),
                _fmt_eta(r["eta_seconds"]) if active else "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _show(args: argparse.Namespace) -> int:
    run = jobs.read_run(args.run)
    if args.json:
        print(json.dumps(run, indent=2))
        return 0
    config, status, progress = run["config"], run["status"], run["progress"] or {}
    print(f"run       {run['run_id']}")
    print(f"kind      {config.get('kind')} ({config.get('target')})")
    print(
        f"state     {status.get('state')} (attempt {status.get('attempt')}, pid {status.get('pid')})"
    )
    print(f"device    {config.get('device')}")
    print(f"created   {config.get('created')}")
    print(
        f"progress  {_fmt_progress(progress.get('step'), progress.get('total'))}"
        f"  loss {_fmt_loss(progress.get('loss'))}  left {format_left(*time_left(progress))}"
        + (f"  {progress['message']}" if progress.get("message") else "")
    )
    print(f"config    {json.dumps(config.get('config'))}")
    if status.get("error_message"):
        print(f"error     {status['error_message']}")
    if run["result"] is not None:
        print(f"result    {json.dumps(run['result'])}")
    print(f"dir       {run['run_dir']}")
    return 0


def _start(args: argparse.Namespace) -> int:
    text = args.config
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text()
        except OSError as e:
            raise ValueError(f"--config: cannot read {text[1:]} ({e.strerror or e})") from e
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"--config: not valid JSON ({e}); pass a JSON object or @file") from e
    if not isinstance(config, dict):
        raise ValueError("--config: expected a JSON object such as '{\"steps\": 100}'")
    run_id = jobs.start_job(args.kind, config, device=args.device, queue=args.queue, seed=args.seed)
    print(run_id)
    return 0


def _control(args: argparse.Namespace) -> int:
    action = args.action
    if action == "stop":
        jobs.stop_job(args.run)
        print(f"stop requested for {args.run} (it stops after the current step)")
    elif action == "pause":
        jobs.pause_job(args.run)
        print(f"pause requested for {args.run}")
    elif action == "resume":
        status = jobs.resume_job(args.run, queue=args.queue)
        verb = "restarted" if status.get("state") == "queued" else "resume requested for"
        print(f"{verb} {args.run}")
    else:
        status = jobs.cancel_job(args.run, wait=not args.no_wait)
        print(f"{args.run}: {status.get('state')}" + ("" if not args.no_wait else " (cancelling)"))
    return 0


def _rm(args: argparse.Namespace) -> int:
    print(f"removed {jobs.remove_job(args.run)}")
    return 0


def _logs(args: argparse.Namespace) -> int:
    if args.tail is not None and args.tail < 0:
        raise ValueError("--tail: expected a number of lines >= 0")
    sys.stdout.write(jobs.read_log(args.run, tail=args.tail))
    return 0


def _wait(args: argparse.Namespace) -> int:
    try:
        status = jobs.wait_job(args.run, timeout=args.timeout)
    except TimeoutError as e:
        print(f"implosion jobs wait: {e}", file=sys.stderr)
        return 124
    print(f"{args.run}: {status.get('state')}")
    if status.get("error_message"):
        print(f"error: {status['error_message']}", file=sys.stderr)
    return 0 if status.get("state") == "completed" else 1
