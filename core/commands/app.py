"""``implosion app``: start the Streamlit explorer (the same thing as ``streamlit run app.py``)."""

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
    """Add ``implosion app [--port P] [--host H]``."""
    p = subparsers.add_parser("app", help="start the interactive explorer in your browser")
    p.add_argument("--port", type=int, default=8501, help="port to serve on (default 8501)")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)"
    )
    p.add_argument("--dry-run", action="store_true", help="print the command instead of running it")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if not 1 <= args.port <= 65535:
        raise ValueError(f"--port {args.port}: use a port between 1 and 65535, e.g. 8501")
    cmd = app_command(args.port, args.host)
    if args.dry_run:
        print(" ".join(cmd))
        return 0
    print(f"Implosion Lab at http://{args.host}:{args.port}  (Ctrl-C to stop)", flush=True)
    # Become the server (exec) rather than start a child: SIGTERM/SIGINT to `implosion app` then
    # reach Streamlit itself, and no server is left behind serving the port.
    os.execv(cmd[0], cmd)
    return 0  # not reached
