"""One running job per device: device names, the device lock, and the FIFO queue.

The lock is an ``flock`` on ``runs_dir()/.locks/<device>.lock`` held by the worker for the job's
whole life (paused jobs keep it: their model stays in memory). The kernel releases it when the
process dies, so a ``kill -9`` never leaves a device locked. Waiting workers take the lock in
the class queue's order (:mod:`core.jobs.fair`: round-robin by owner, FIFO for one owner).
"""

from __future__ import annotations

import contextlib
import fcntl
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from core.jobs import fair, store

QUEUE_POLL_S = 0.1
_DEVICE_RE = re.compile(r"^(cpu|mps|cuda:\d+)$")


def normalize_device(device: str | None) -> str:
    """``"auto"``/None → ``"cuda:0"`` if available else ``"cpu"``; ``"cuda"`` → ``"cuda:0"``."""
    device = (device or "auto").strip().lower()
    if device == "auto":
        try:
            import torch

            device = "cuda:0" if torch.cuda.is_available() else "cpu"
        except ImportError:
            device = "cpu"
    if device == "cuda":
        device = "cuda:0"
    if not _DEVICE_RE.match(device):
        raise ValueError(f"device {device!r}: use auto, cpu, mps, cuda or cuda:N")
    return device


def check_device(device: str | None, field: str = "--device") -> str:
    """:func:`normalize_device`, then check this machine can run it; the CLI's one device check.

    ValueError naming ``field`` and the fix for an unknown name (``tpu``), CUDA on a torch build
    or machine without it, a CUDA index past the last GPU, or MPS where it is unavailable.
    """
    try:
        name = normalize_device(device)
    except ValueError:
        raise ValueError(
            f"{field} {device!r}: unknown device; use auto, cpu, cuda, cuda:N or mps"
        ) from None
    import torch

    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            build = "a CPU-only build" if torch.version.cuda is None else "no visible GPU"
            raise ValueError(
                f"{field} {device}: CUDA is not available here (torch {torch.__version__}, "
                f"{build}); use --device cpu, or install a CUDA build of torch on a GPU machine"
            )
        index, count = int(name.split(":")[1]), torch.cuda.device_count()
        if index >= count:
            raise ValueError(
                f"{field} {device}: this machine has {count} GPU(s) (cuda:0..cuda:{count - 1})"
            )
    if name == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise ValueError(f"{field} mps: Apple MPS is not available here; use --device cpu")
    return name


def _lock_path(device: str) -> Path:
    return store.locks_dir() / f"{device.replace(':', '_')}.lock"


@contextlib.contextmanager
def start_lock(device: str) -> Iterator[None]:
    """Serialises "is the device busy? then start" between concurrent ``start_job`` calls."""
    with open(store.locks_dir() / f"{device.replace(':', '_')}.start.lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _same_device_active(device: str, exclude: str | None = None) -> list[dict[str, Any]]:
    """Active (queued/running/paused, worker alive) runs on ``device``, oldest queued_at first."""
    out = []
    for run_dir in store._run_dirs():
        if run_dir.name == exclude:
            continue
        config = store.read_json(run_dir / store.CONFIG) or {}
        if config.get("device") != device:
            continue
        status = store.read_status(run_dir)
        if status.get("state") not in store.ACTIVE_STATES:
            continue
        status = store.refresh_status(run_dir)
        if status.get("state") in store.ACTIVE_STATES:
            out.append({"run_id": run_dir.name, **status})
    return sorted(out, key=lambda s: (s.get("queued_at") or "", s["run_id"]))


def busy_with(device: str, exclude: str | None = None) -> str | None:
    """Id of a run holding or waiting for ``device`` (running first), or None if it is free."""
    active = _same_device_active(device, exclude)
    running = [s for s in active if s.get("state") in ("running", "paused")]
    return (running or active or [{"run_id": None}])[0]["run_id"]


def acquire(run_dir: Path, device: str, give_up: Callable[[], bool]) -> IO[str] | None:
    """Block until this run may use ``device``; returns the open locked file (keep it open).

    Waits its turn behind runs queued earlier. Returns None if ``give_up()`` becomes true first
    (a stop or cancel request arrived while queued).
    """
    me = run_dir.name
    path = _lock_path(device)
    last_scan, ahead = float("-inf"), True
    while True:
        if time.monotonic() - last_scan >= 0.5:
            # The class queue decides who goes next: round-robin by owner (FIFO for one owner).
            last_scan = time.monotonic()
            ahead = not fair.may_start(run_dir, device)
        if not ahead:
            fh = open(path, "a+")
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.close()
            else:
                fh.seek(0)
                fh.truncate()
                fh.write(me + "\n")
                fh.flush()
                return fh
        if give_up():
            return None
        time.sleep(QUEUE_POLL_S)
