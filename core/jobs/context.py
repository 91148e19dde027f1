"""``JobContext``: what a kind function gets to report progress, checkpoint, and obey control.

Two protocols make the seam typed: :class:`TrainContext` is what a trainer needs (progress, log,
should_stop, checkpoints); the job's :class:`RunContext`, the real sweep's per-level context and
the CLI's printer implement it. :class:`JobContext` adds what a job kind needs around it (its run
folder, device, attempt, pause requests and the up-front time estimate); :class:`RunContext` (one
per worker attempt) implements it. Progress and time left come from :mod:`core.jobs.progress`.

A kind function looks like::

    def run_job(config: dict, ctx: JobContext) -> dict:
        state, start = init_state(config), 0
        if (ckpt := ctx.latest_checkpoint()) is not None:   # resumed after stop/crash
            state, start = load(ckpt)
        for step in range(start + 1, total + 1):
            loss = train_step(state)
            ctx.progress(step, total, loss=loss)
            if step % every == 0 or step == total:
                ctx.save_checkpoint(f"step-{step:06d}.pt", lambda p: torch.save(state, p), keep=2)
            if ctx.should_stop():                           # stop / cancel / blocks while paused
                ctx.save_checkpoint(f"step-{step:06d}.pt", lambda p: torch.save(state, p), keep=2)
                return {"stopped_at": step}
        return {"final_loss": loss}
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from core.io import _jsonable, atomic_write_json, clean_stale_tmp
from core.jobs import store
from core.jobs.progress import ProgressModel

HISTORY_POINTS = 200  # loss points kept in progress.json; the full series is in metrics.jsonl
PROGRESS_EVERY_S = 0.2  # progress.json is rewritten at most this often (the last step always)
PAUSE_POLL_S = 0.1


class TrainContext(Protocol):
    """What a training loop talks to: progress, log lines, stop requests and checkpoints."""

    def progress(
        self,
        step: int,
        total: int | None,
        loss: float | None = None,
        message: str | None = None,
        *,
        work: tuple[float, float] | None = None,
        **metrics: Any,
    ) -> None:
        """``step`` of ``total`` done (from 1); ``work``: (done, total) in the job's work units
        when they differ from steps (core/jobs/progress.py)."""
        ...

    def log(self, msg: str) -> None: ...

    def should_stop(self) -> bool:
        """True when the loop should save and return (may block while paused)."""
        ...

    def save_checkpoint(
        self, name: str, writer: Callable[[Path], None], keep: int | None = None
    ) -> Path: ...

    def latest_checkpoint(self) -> Path | None: ...


class JobContext(TrainContext, Protocol):
    """What a job kind gets: a :class:`TrainContext` plus its run folder, device, attempt,
    whether a pause is requested, and :meth:`expect` (the up-front estimate of its seconds)."""

    run_dir: Path
    device: str
    attempt: int

    def pause_requested(self) -> bool: ...

    def expect(self, seconds: float | None) -> None: ...

    def flush(self) -> None:
        """Make the latest progress visible to readers now."""
        ...


class RunContext:
    """The :class:`JobContext` of a worker attempt: talks to the run folder's files.

    Attributes: ``run_dir``, ``checkpoint_dir``, ``samples_dir`` (Paths), ``device`` (e.g.
    ``"cpu"``, ``"cuda:0"``), ``run_id``, ``attempt`` (1 for the first start, +1 per resume) and
    ``stop_reason`` (None, ``"stop"`` or ``"cancel"`` once :meth:`should_stop` returned True).
    ``clock``: the monotonic time source of the progress model (injectable for tests).
    """

    def __init__(
        self,
        run_dir: Path,
        device: str = "cpu",
        attempt: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.run_id = self.run_dir.name
        self.device = device
        self.attempt = attempt
        self.checkpoint_dir = self.run_dir / store.CHECKPOINTS
        self.samples_dir = self.run_dir / store.SAMPLES
        for folder in (self.checkpoint_dir, self.samples_dir):
            if folder.is_symlink():  # writes and prunes would land outside the run
                raise ValueError(
                    f"run {self.run_id}: {folder.name}/ is a symbolic link; it must be a real "
                    f"folder inside the run directory (remove the link, then resume)"
                )
            folder.mkdir(parents=True, exist_ok=True)
        self._clean_checkpoint_dir()
        clean_stale_tmp(self.run_dir)
        self.stop_reason: str | None = None
        self.terminate_requested = False  # set by the worker's SIGTERM handler
        self.timer = ProgressModel(clock=clock)
        self._last_write = 0.0
        self._pending: dict[str, Any] | None = None
        previous = store.read_json(self.run_dir / store.PROGRESS) or {}
        self._history: deque[dict[str, Any]] = deque(
            previous.get("history") or [], maxlen=HISTORY_POINTS
        )

    # ------------------------------------------------------------ progress

    def expect(self, seconds: float | None) -> None:
        """The up-front estimate of this run's seconds (core/sweep/mini/estimate), blended with the
        rate the run measures into ``eta_seconds`` (core/jobs/progress.py)."""
        self.timer.expect(seconds)

    def progress(
        self,
        step: int,
        total: int | None,
        loss: float | None = None,
        message: str | None = None,
        *,
        work: tuple[float, float] | None = None,
        **metrics: Any,
    ) -> None:
        """Report that ``step`` of ``total`` is done (steps count from 1).

        Appends ``{step, loss, t, **metrics}`` to ``metrics.jsonl`` and rewrites ``progress.json``
        (step, total, fraction, loss, eta_seconds, eta_estimated, message, metrics, history) at
        most every 0.2 s and on the last step. ``work``: (done, total) work units when steps are
        not the whole work (a sweep's estimated seconds); fraction and time left come from
        :class:`~core.jobs.progress.ProgressModel` over them.
        """
        now = time.time()
        done_w, total_w = work if work is not None else (float(step), total)
        reading = None
        if total_w is not None and total_w > 0:
            reading = self.timer.update(done_w, total_w)
        loss = None if loss is None else float(loss)
        record = {"step": step, "loss": loss, "t": round(now, 3), **metrics}
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
        with os.fdopen(os.open(self.run_dir / store.METRICS, flags, 0o644), "a") as f:
            f.write(json.dumps(_jsonable(record)) + "\n")
            f.flush()
        if loss is not None:
            self._history.append({"step": step, "loss": loss})
        self._pending = {
            "step": step,
            "total": total,
            "fraction": None if reading is None else round(reading.fraction, 4),
            "loss": loss,
            "eta_seconds": None if reading is None else reading.eta_seconds,
            "eta_estimated": None if reading is None else reading.estimated,
            "message": message,
            "metrics": metrics,
            "updated": store.now_iso(),
            "history": list(self._history),
        }
        last = total is not None and step >= total
        if now - self._last_write >= PROGRESS_EVERY_S or last or (work and work[0] >= work[1]):
            self.flush()

    def flush(self) -> None:
        """Write the latest reported progress now (the worker calls it when the job ends)."""
        if self._pending is not None:
            atomic_write_json(self.run_dir / store.PROGRESS, self._pending)
            self._pending = None
            self._last_write = time.time()

    def log(self, msg: str) -> None:
        """Append a timestamped line to the run's ``log.txt`` (the worker's stdout)."""
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    # ------------------------------------------------------------ control

    def pause_requested(self) -> bool:
        """True while a pause is requested (a sweep stops handing out new levels)."""
        return self.control_action() == "pause"

    def control_action(self) -> str | None:
        """The latest control request (``stop``, ``pause``, ``resume``, ``cancel``) or None."""
        control = store.read_json(self.run_dir / store.CONTROL)
        return control.get("action") if isinstance(control, dict) else None

    def should_stop(self) -> bool:
        """True when the job should save and return (stop or cancel requested, or SIGTERM).

        Call it once per step. While a pause is requested it blocks (state ``paused``, heartbeat
        kept fresh) until resume, stop or cancel arrives.
        """
        action = self.control_action()
        if action == "pause":
            self.flush()
            self._set_state("paused")
            self.log("paused")
            while action == "pause" and not self.terminate_requested:
                time.sleep(PAUSE_POLL_S)
                action = self.control_action()
            if action not in ("stop", "cancel"):
                self._set_state("running")
                self.log("resumed")
        if action in ("stop", "cancel"):
            self.stop_reason = action
        elif self.terminate_requested:
            self.stop_reason = "stop"
        else:
            return False
        self.flush()
        return True

    def _set_state(self, state: str) -> None:
        pid = os.getpid()

        def change(s: dict[str, Any]) -> dict[str, Any] | None:
            if s.get("pid") != pid or s.get("state") not in store.ACTIVE_STATES:
                return None
            return {"state": state, "heartbeat": store.now_iso()}

        store.update_status(self.run_dir, change)

    # ------------------------------------------------------------ checkpoints

    def _entry(self, name: Any) -> Path | None:
        """``checkpoint_dir / name`` if ``name`` (read from ``latest.json``, untrusted) is a plain
        checkpoint name: no separator, not hidden, not ``..``; else None (never a path outside)."""
        return checkpoint_entry(self.checkpoint_dir, name)

    def latest_checkpoint(self) -> Path | None:
        """Newest complete checkpoint saved with :meth:`save_checkpoint` (None on a fresh run).

        Names in ``latest.json`` are confined to ``checkpoint_dir``; symlinks are not checkpoints.
        """
        pointer = store.read_json(self.checkpoint_dir / "latest.json")
        if isinstance(pointer, dict):
            path = self._entry(pointer.get("name"))
            if path is not None and path.exists() and not path.is_symlink():
                return path
        # Pointer missing (killed between the rename and the pointer write): newest by mtime.
        candidates = [
            p
            for p in self.checkpoint_dir.iterdir()
            if not p.name.startswith(".") and p.name != "latest.json" and not p.is_symlink()
        ]
        return max(candidates, key=lambda p: p.stat().st_mtime_ns, default=None)

    def _clean_checkpoint_dir(self) -> None:
        """Undo what a worker killed inside :meth:`save_checkpoint` left behind."""
        for path in self.checkpoint_dir.glob(".*"):
            if path.name.endswith(".old") and not (self.checkpoint_dir / path.name[1:-4]).exists():
                os.replace(path, self.checkpoint_dir / path.name[1:-4])  # killed mid-swap
            elif path.name.endswith((".old", ".tmp")):
                _remove(path)

    def save_checkpoint(
        self, name: str, writer: Callable[[Path], None], keep: int | None = None
    ) -> Path:
        """Atomically save checkpoint ``name`` (a file or a folder) under ``checkpoint_dir``.

        ``writer(tmp_path)`` writes to a fresh temporary path (e.g. ``torch.save(state, p)`` or
        ``model.save_pretrained(p)``); it is renamed into place only when complete, then
        ``latest.json`` points at it. ``keep`` prunes all but the newest ``keep`` checkpoints.
        """
        if not name or "/" in name or name.startswith(".") or name == "latest.json":
            raise ValueError(f"checkpoint name {name!r}: use a plain file name like 'step-100.pt'")
        final = self.checkpoint_dir / name
        tmp = self.checkpoint_dir / f".{name}.{os.getpid()}.tmp"
        _remove(tmp)
        try:
            writer(tmp)
            if not tmp.exists():
                raise ValueError(f"checkpoint writer did not create {tmp}")
            _fsync(tmp)
            if final.is_dir() and tmp.is_dir():
                old = self.checkpoint_dir / f".{name}.old"
                _remove(old)
                os.replace(final, old)
                os.replace(tmp, final)
                _remove(old)
            else:
                os.replace(tmp, final)
        except BaseException:
            _remove(tmp)
            raise
        pointer = store.read_json(self.checkpoint_dir / "latest.json")
        listed = pointer.get("saved") if isinstance(pointer, dict) else None
        # Only plain names inside checkpoint_dir are kept (a crafted "../x" is dropped, not pruned).
        saved = [
            str(n)
            for n in (listed if isinstance(listed, list) else [])
            if n != final.name and self._entry(n) is not None
        ] + [final.name]
        keep_n = len(saved) if keep is None or keep <= 0 else keep
        atomic_write_json(
            self.checkpoint_dir / "latest.json",
            {"name": final.name, "saved": saved[-keep_n:], "time": store.now_iso()},
        )
        for old_name in saved[:-keep_n]:  # pruned only once the pointer has moved on
            old_path = self._entry(old_name)
            if old_path is not None:
                _remove(old_path)
        self.log(f"checkpoint {final.name}")
        return final


def checkpoint_entry(checkpoint_dir: Path, name: Any) -> Path | None:
    """``checkpoint_dir / name`` when ``name`` is a plain entry name, else None.

    A name read from a run's files (``latest.json``) is untrusted: ``..``, separators, hidden
    names and non-strings would reach outside ``checkpoint_dir`` or into its temp files.
    """
    if not isinstance(name, str) or not name or name in (".", ".."):
        return None
    if "/" in name or "\\" in name or "\0" in name or name.startswith(".") or name == "latest.json":
        return None
    path = checkpoint_dir / name
    return path if path.parent == checkpoint_dir else None


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    for p in files:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def install_sigterm(ctx: RunContext) -> None:
    """Make SIGTERM a graceful stop request: ``should_stop()`` returns True at the next step."""

    def handler(signum: int, frame: Any) -> None:
        ctx.terminate_requested = True

    signal.signal(signal.SIGTERM, handler)
