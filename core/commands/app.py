"""``implosion app``: start the Streamlit explorer (the same thing as ``streamlit run app.py``).

``--class-code`` (or ``IMPLOSION_CLASS_CODE``) makes it a class server: every page first asks for
the class code and a name; ``--teacher-code`` (or ``IMPLOSION_TEACHER_CODE``) gives the teacher
role. Binding anything but a loopback address without a class code is refused. The codes reach the
server in its environment, not on its command line (other users of a machine can read that).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from core.io import REPO_ROOT


def app_command(port: int = 8501, host: str = "127.0.0.1") -> list[str]:
    """The command line that serves ``<repo>/app.py`` headless on ``host:port``."""
    return [
        sys.executable, "-m", "streamlit", "run", str(REPO_ROOT / "app.py"),
        "--server.address", host,
        "--server.port", str(port),
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
    ]  # fmt: skip


def register(subparsers: Any) -> None:
    """Add ``implosion app [--port P] [--host H] [--class-code C] [--teacher-code T]``."""
    p = subparsers.add_parser("app", help="start the interactive explorer in your browser")
    p.add_argument("--port", type=int, default=8501, help="port to serve on (default 8501)")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)"
    )
    p.add_argument(
        "--class-code",
        default=None,
        help="serve a class: students join with this code and their name "
        "(default: $IMPLOSION_CLASS_CODE; required for a --host other than 127.0.0.1)",
    )
    p.add_argument(
        "--teacher-code",
        default=None,
        help="joining with this code gives the teacher role: sees and cancels every run, pins "
        "packs, drives the lesson (default: $IMPLOSION_TEACHER_CODE)",
    )
    p.add_argument(
        "--allow-ray-address",
        action="store_true",
        help="let the Jobs page send sweeps to a Ray cluster address typed into it (off: Ray "
        "runs on this machine only; only on a trusted network, docs/cluster.md)",
    )
    p.add_argument("--dry-run", action="store_true", help="print the command instead of running it")
    p.set_defaults(func=_run)


def class_env(args: argparse.Namespace, env: dict[str, str]) -> dict[str, str]:
    """The server's environment with the class codes from the flags or ``env``, validated; the
    bind address checked (a non-loopback --host needs a class code)."""
    from core.classroom import CLASS_CODE_ENV, TEACHER_CODE_ENV, ClassConfig, check_bind
    from core.classroom.codes import QUOTA_ENV, parse_quota

    out = dict(env)
    code = getattr(args, "class_code", None) or env.get(CLASS_CODE_ENV) or None
    teacher = getattr(args, "teacher_code", None) or env.get(TEACHER_CODE_ENV) or None
    check_bind(args.host, code)
    out.pop(CLASS_CODE_ENV, None)
    out.pop(TEACHER_CODE_ENV, None)
    if code is None:
        if teacher is not None:
            raise ValueError("--teacher-code: needs a --class-code too (a class server)")
        return out
    ClassConfig(code, teacher, parse_quota(env.get(QUOTA_ENV, "")))  # one clear line if invalid
    out[CLASS_CODE_ENV] = code
    if teacher is not None:
        out[TEACHER_CODE_ENV] = teacher
    return out


def _run(args: argparse.Namespace) -> int:
    if not 1 <= args.port <= 65535:
        raise ValueError(f"--port {args.port}: use a port between 1 and 65535, e.g. 8501")
    from core.classroom import CLASS_CODE_ENV

    env = class_env(args, dict(os.environ))
    if getattr(args, "allow_ray_address", False):
        from core.sweep.executors import ALLOW_RAY_ADDRESS_ENV

        env[ALLOW_RAY_ADDRESS_ENV] = "1"
    cmd = app_command(args.port, args.host)
    gate = "a class server: students join with the class code" if CLASS_CODE_ENV in env else ""
    if args.dry_run:
        print(" ".join(cmd) + (f"  # {gate}" if gate else ""))
        return 0
    print(
        f"Implosion Lab at http://{args.host}:{args.port}  (Ctrl-C to stop)"
        + (f"; {gate}" if gate else ""),
        flush=True,
    )
    # Become the server (exec) rather than start a child: SIGTERM/SIGINT to `implosion app` then
    # reach Streamlit itself, and no server is left behind serving the port.
    os.execve(cmd[0], cmd, env)
    return 0  # not reached
