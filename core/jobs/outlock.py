"""One writer per output folder: a lock that a second sweep into the same ``--out`` meets with a
clear message instead of running beside the first and replacing its files.

The lock is ``<out>/.writer.lock`` held with ``fcntl.flock`` (exclusive, non-blocking) for as
long as the writer runs; the file holds the writer's pid, host, what it is and when it started,
for the message. The kernel drops a flock when its holder exits, killed or not, so a lock left
by a dead writer is never "stale": the next writer simply takes it. Worker processes forked by
the writer share the lock (they are part of the same writer).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

LOCK_NAME = ".writer.lock"


class OutputBusy(ValueError):
    """Another live process writes into the folder (a ValueError: the CLI's exit 2)."""


def _holder(fd: int) -> dict[str, object]:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = json.loads(os.read(fd, 4096) or b"{}")
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _busy(out: Path, field: str, holder: dict[str, object]) -> OutputBusy:
    who = f"pid {holder.get('pid', '?')}"
    if holder.get("host") not in (None, socket.gethostname()):
        who += f" on {holder['host']}"
    what = holder.get("what") or "another writer"
    since = f" since {holder['started']}" if holder.get("started") else ""
    return OutputBusy(
        f"{field}: {out} is being written by {what} ({who}{since}); wait for it to finish, "
        f"stop it (implosion jobs stop RUN), or choose another --{field} folder"
    )


@contextlib.contextmanager
def hold_output(out: Path, what: str, field: str = "out") -> Iterator[None]:
    """Hold ``out``'s writer lock while the block runs; :class:`OutputBusy` (naming the holder)
    if a live process holds it. ``out`` must exist."""
    path = Path(out) / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _busy(Path(out), field, _holder(fd)) from None
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "what": what,
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(info).encode())
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def check_output_free(out: Path, field: str = "out") -> None:
    """:class:`OutputBusy` if a live process holds ``out``'s writer lock (checked by a launcher
    before it accepts a job; the job takes the lock itself when it runs). No-op if ``out`` or
    its lock file does not exist."""
    path = Path(out) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _busy(Path(out), field, _holder(fd)) from None
    finally:
        os.close(fd)
