"""The run store: run directories, their JSON files, and reading them back safely.

Layout of one run (``runs_dir()/<run_id>/``)::

    config.json     kind, target, config, device, created, metadata (seed, git commit, versions),
                    owner ({"name", "role"} of the class member who launched it; null: local user)
    status.json     state, pid, host, attempt, queued_at, started, updated, heartbeat, finished,
                    error (traceback tail), error_message (one line), device
    progress.json   step, total, loss, eta_seconds, message, metrics, history (last N points)
    metrics.jsonl   one JSON line per progress call (appended, flushed; a torn last line is skipped)
    control.json    the pending control request: {"action": stop|pause|resume|cancel}; a request
                    weaker than the pending one is refused, never overwrites it (cancel > stop >
                    pause/resume)
    log.txt         worker stdout/stderr
    result.json     final metrics, written only on completion
    checkpoints/    for the kind; ``latest.json`` points at the newest complete checkpoint
    samples/        for the kind

Every JSON file is written with :func:`core.io.atomic_write_json`; readers treat a missing or
unparsable file as absent, except ``status.json``: a run whose status is unreadable is ``broken``
(shown, resumable and removable, never silently "queued"). Everything in a run directory is
untrusted input: symlinked run folders are not runs, files are opened without following symlinks,
checkpoint names stay inside ``checkpoints/``, and a recorded pid counts as this run's worker only
when its process start time (``/proc/PID/stat``) matches the one recorded. Status changes are read-modify-write under a per-run ``flock`` so the
worker, its heartbeat thread and outside readers never lose each other's updates.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import secrets
import socket
import stat
import subprocess
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from core.io import atomic_write_json, runs_dir
from core.jobs.access import Action, Principal, check, current_actor, owns

JobState = Literal[
    "queued", "running", "paused", "stopped", "cancelled", "failed", "completed", "broken"
]
STATES: tuple[str, ...] = (
    "queued",
    "running",
    "paused",
    "stopped",
    "cancelled",
    "failed",
    "completed",
    "broken",
)
ACTIVE_STATES = frozenset({"queued", "running", "paused"})  # a worker process should exist
# ``broken``: status.json unreadable; nothing waits on it (resume it or remove it).
TERMINAL_STATES = frozenset({"stopped", "cancelled", "failed", "completed", "broken"})

CONFIG, STATUS, PROGRESS, CONTROL, RESULT = (
    "config.json",
    "status.json",
    "progress.json",
    "control.json",
    "result.json",
)
METRICS, LOG = "metrics.jsonl", "log.txt"
CHECKPOINTS, SAMPLES = "checkpoints", "samples"

# A queued run whose worker never recorded its pid within this many seconds is reported failed.
START_TIMEOUT_S = 60.0
# Heartbeat age after which a run on *another host* (pid not checkable) is reported failed.
STALE_HEARTBEAT_S = float(os.environ.get("IMPLOSION_JOB_STALE_S", "300"))

_RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


# ---------------------------------------------------------------- time and ids


def now_iso() -> str:
    """Current UTC time as ISO-8601 with microseconds (sortable, JSON friendly)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def age_s(iso: str | None) -> float | None:
    """Seconds since an ISO timestamp written by :func:`now_iso` (None if missing or unparsable)."""
    if not iso:
        return None
    try:
        return (datetime.now(UTC) - datetime.fromisoformat(iso)).total_seconds()
    except (TypeError, ValueError):
        return None


def new_run_id(kind: str) -> str:
    """``<UTC yyyymmdd-hhmmss>-<kind slug>-<6 hex>``: sortable by time and URL-safe."""
    slug = re.sub(r"[^a-z0-9]+", "-", kind.rsplit(":", 1)[-1].lower()).strip("-")[:24] or "job"
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{slug}-{secrets.token_hex(3)}"


# ---------------------------------------------------------------- paths


def jobs_root(create: bool = False) -> Path:
    """The runs directory; with ``create`` make sure it is writable (ValueError naming the fix)."""
    root = runs_dir().expanduser().resolve()
    if create:
        try:
            root.mkdir(parents=True, exist_ok=True)
            probe = root / f".probe-{os.getpid()}-{secrets.token_hex(3)}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise ValueError(
                f"runs directory {root} is not writable ({e.strerror or e}); "
                "set IMPLOSION_RUNS to a writable directory"
            ) from e
    return root


def locks_dir() -> Path:
    """``runs_dir()/.locks``: device locks (flock) live here."""
    path = jobs_root(create=True) / ".locks"
    path.mkdir(exist_ok=True)
    return path


def _is_real_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def _is_run_dir(path: Path) -> bool:
    """A real (not symlinked, not hidden) folder holding a real ``config.json``."""
    config = path / CONFIG
    return (
        not path.name.startswith(".")
        and _is_real_dir(path)
        and config.is_file()
        and not config.is_symlink()
    )


def _run_dirs() -> list[Path]:
    root = jobs_root()
    if not root.is_dir():
        return []
    return [p for p in root.iterdir() if _is_run_dir(p)]


def check_access(run_dir: Path, actor: Principal | None, action: Action) -> None:
    """Raise :class:`core.jobs.access.AccessDenied` unless ``actor`` (None: the current one,
    :func:`core.jobs.access.current_actor`) may ``action`` this run (its owner is read from
    ``config.json``)."""
    actor = current_actor(actor)
    if not actor.is_admin:
        check(actor, action, Path(run_dir).name, read_json(Path(run_dir) / CONFIG))


def run_path(run_id: str) -> Path:
    """Directory of ``run_id``; ValueError listing the most recent ids when it does not exist.

    A symlinked run folder is refused: operating on it would act on files outside the runs dir.
    """
    run_id = str(run_id).strip().rstrip("/")
    if run_id and _RUN_ID_RE.match(run_id):
        path = jobs_root() / run_id
        if path.is_symlink():
            raise ValueError(
                f"run {run_id}: {path} is a symbolic link, not a run folder; runs are real "
                f"folders inside {jobs_root()} (remove the link)"
            )
        if _is_run_dir(path):
            return path
    recent = [r["run_id"] for r in list_runs(limit=5, refresh=False)]
    hint = f"recent runs: {', '.join(recent)}" if recent else f"no runs yet in {jobs_root()}"
    raise ValueError(f"unknown run {run_id!r}; {hint} (see `implosion jobs list`)")


# ---------------------------------------------------------------- reading and writing


def read_bytes_nofollow(path: Path) -> bytes:
    """Bytes of a regular file, refusing to follow a symlink at ``path`` (OSError ELOOP)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        return f.read()


def read_json(path: Path) -> Any:
    """Parsed JSON at ``path``, or None if missing, unreadable or a symlink (never raises)."""
    try:
        return json.loads(read_bytes_nofollow(Path(path)))
    except (OSError, ValueError):
        return None


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Lines of a JSON-lines file; a torn or unparsable line (killed mid-append) is skipped."""
    out: list[dict[str, Any]] = []
    try:
        lines = read_bytes_nofollow(Path(path)).decode("utf-8", errors="replace").splitlines()
    except OSError:
        return out
    for line in lines:
        with contextlib.suppress(ValueError):
            obj = json.loads(line)
            if isinstance(obj, dict):
                out.append(obj)
    return out


_thread_lock = threading.RLock()


@contextlib.contextmanager
def status_lock(run_dir: Path) -> Iterator[None]:
    """Exclusive lock over a run's status (flock across processes, a mutex across threads)."""
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    with _thread_lock:
        fd = os.open(Path(run_dir) / ".status.lock", flags, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock


def _broken(run_dir: Path, why: str) -> dict[str, Any]:
    name = Path(run_dir).name
    return {
        "state": "broken",
        "broken": why,
        "error_message": (
            f"{why}; resume it with `implosion jobs resume {name}` (continues from its last "
            f"checkpoint) or delete it with `implosion jobs rm {name}`"
        ),
    }


def read_status(run_dir: Path) -> dict[str, Any]:
    """``status.json`` as written (no crash detection).

    A missing, truncated, non-object or unknown-state status is reported as state ``broken`` with
    an ``error_message`` naming the way out (resume or rm), never as a live state.
    """
    try:
        status = json.loads(read_bytes_nofollow(Path(run_dir) / STATUS))
    except FileNotFoundError:
        return _broken(run_dir, "status.json is missing")
    except OSError as e:
        return _broken(run_dir, f"status.json cannot be read ({e.strerror or e})")
    except ValueError:
        return _broken(run_dir, "status.json is corrupt (truncated or not JSON)")
    if not isinstance(status, dict):
        return _broken(run_dir, f"status.json holds a {type(status).__name__}, not an object")
    if status.get("state") not in STATES or status.get("state") == "broken":
        return _broken(run_dir, f"status.json has an unknown state {status.get('state')!r}")
    return status


def update_status(
    run_dir: Path, change: Callable[[dict[str, Any]], dict[str, Any] | None]
) -> dict[str, Any]:
    """Read-modify-write ``status.json`` under the run lock.

    ``change(status)`` returns the fields to update (``updated`` is stamped), or None to leave the
    file alone; it may raise ValueError to refuse a transition. Returns the resulting status.
    """
    with status_lock(run_dir):
        status = read_status(run_dir)
        fields = change(dict(status))
        if fields is None:
            return status
        if status.get("state") == "broken":  # rewritten from scratch, not merged into garbage
            status = {}
        status.update(fields)
        status["updated"] = now_iso()
        atomic_write_json(Path(run_dir) / STATUS, status)
        return status


# ---------------------------------------------------------------- liveness

# Workers started by this process: polled so that dead ones are reaped instead of lingering as
# zombies (a zombie still answers kill(pid, 0)).
_children: dict[int, subprocess.Popen[bytes]] = {}


def track_child(proc: subprocess.Popen[bytes]) -> None:
    """Remember a worker started by this process so it can be reaped when it exits."""
    _children[proc.pid] = proc


def _reap_children() -> None:
    for pid, proc in list(_children.items()):
        if proc.poll() is not None:
            _children.pop(pid, None)


def process_start_time(pid: int) -> int | None:
    """Start time of process ``pid`` in clock ticks since boot (``/proc/PID/stat`` field 22).

    With the pid it identifies one process for the life of the machine: a recycled pid has a
    later start time. None where there is no /proc (macOS) or no such process.
    """
    try:
        stat_line = Path(f"/proc/{int(pid)}/stat").read_text()
        return int(stat_line.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _proc_state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def _worker_cmdline_matches(pid: int, run_dir: Path | None) -> bool | None:
    """Whether ``pid`` runs ``core.jobs.worker`` (for ``run_dir`` if given); None without /proc."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    if b"core.jobs.worker" not in argv:
        return False
    if run_dir is None:
        return True
    return bool(argv) and any(
        a and Path(os.fsdecode(a)).name == Path(run_dir).name for a in argv[-2:]
    )


def pid_alive(pid: int | None, start_time: int | None = None, run_dir: Path | None = None) -> bool:
    """Whether ``pid`` is a live job worker on this host (zombies and reused pids count as dead).

    The process must run ``core.jobs.worker`` (for ``run_dir`` when given) and, when
    ``start_time`` was recorded, have started at that time: a pid recycled by any other process,
    even another run's worker, does not count. Without /proc (macOS) ``kill(pid, 0)`` decides.
    """
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False  # also never kill(0 / -1, …): a crafted status must not reach other groups
    _reap_children()
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists but belongs to another user: /proc decides
    except OverflowError:
        return False
    state = _proc_state(pid)
    if state is None:
        return True  # no /proc (macOS): trust kill(0)
    if state in ("Z", "X"):
        return False
    if start_time is not None and process_start_time(pid) != start_time:
        return False
    return bool(_worker_cmdline_matches(pid, run_dir))


def worker_alive(status: dict[str, Any], run_dir: Path) -> bool:
    """Whether the worker recorded in ``status`` (pid + start time) is alive and is this run's."""
    return pid_alive(status.get("pid"), status.get("pid_start"), run_dir)


def worker_pids(run_dir: Path) -> list[int]:
    """Live ``core.jobs.worker`` processes for ``run_dir`` found in /proc (empty without /proc).

    Used where status.json cannot be trusted (a broken run) before resuming or deleting it.
    """
    out: list[int] = []
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return out
    for entry in entries:
        pid = int(entry)
        if pid == os.getpid() or _proc_state(pid) in (None, "Z", "X"):
            continue
        if _worker_cmdline_matches(pid, run_dir):
            out.append(pid)
    return out


def _log_tail(run_dir: Path, n: int = 3) -> str:
    lines = read_log(run_dir, tail=n).strip().splitlines()
    return " | ".join(line.strip() for line in lines if line.strip())


def _death_reason(status: dict[str, Any], run_dir: Path) -> str | None:
    """Why an active-looking status is actually dead, or None if its worker looks alive."""
    if status.get("state") not in ACTIVE_STATES:
        return None
    pid = status.get("pid")
    if status.get("host") not in (None, socket.gethostname()):
        hb = age_s(status.get("heartbeat") or status.get("updated"))
        if hb is not None and hb > STALE_HEARTBEAT_S:
            return f"no heartbeat from host {status.get('host')} for {hb:.0f} s"
        return None
    if pid is None:
        waited = age_s(status.get("queued_at"))
        if waited is not None and waited > START_TIMEOUT_S:
            return f"worker did not start within {START_TIMEOUT_S:.0f} s"
        return None
    if worker_alive(status, run_dir):
        return None
    return f"worker process {pid} died unexpectedly (killed, out of memory or crashed)"


def refresh_status(run_dir: Path) -> dict[str, Any]:
    """Status with crash detection: an active run whose worker is dead is persisted as failed."""
    status = read_status(run_dir)
    if _death_reason(status, run_dir) is None:
        return status

    def mark_failed(current: dict[str, Any]) -> dict[str, Any] | None:
        reason = _death_reason(current, run_dir)  # re-check under the lock
        if reason is None:
            return None
        tail = _log_tail(run_dir)
        msg = f"{reason}; resume it with `implosion jobs resume {run_dir.name}`"
        return {
            "state": "failed",
            "error_message": msg,
            "error": msg + (f"\nlast log lines: {tail}" if tail else ""),
            "finished": now_iso(),
        }

    try:
        return update_status(run_dir, mark_failed)
    except OSError:  # a read-only view of someone else's runs: report it, persist nothing
        return {**status, **(mark_failed(status) or {})}


# ---------------------------------------------------------------- listing


def read_log(run: str | Path, tail: int | None = None, actor: Principal | None = None) -> str:
    """Worker log of a run (a run id or directory); only the last ``tail`` lines if given."""
    run_dir = Path(run) if isinstance(run, Path) else run_path(run)
    check_access(run_dir, actor, "open")
    try:
        # Never follow a symlinked log.txt: it would show another file's contents.
        fd = os.open(run_dir / LOG, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | os.O_NONBLOCK)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return f"({LOG} is a symbolic link; not shown)\n"
        return ""
    try:
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                return f"({LOG} is not a regular file; not shown)\n"
            if tail is not None:
                # Read only the end of big logs.
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - max(4096, 400 * tail)))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    if tail is None:
        return text
    lines = text.splitlines(keepends=True)
    return "".join(lines[-tail:]) if tail > 0 else ""


def _summary(run_dir: Path, refresh: bool) -> dict[str, Any]:
    config = read_json(run_dir / CONFIG) or {}
    status = refresh_status(run_dir) if refresh else read_status(run_dir)
    progress = read_json(run_dir / PROGRESS) or {}
    found = config.get("owner")
    owner: dict[str, Any] = found if isinstance(found, dict) else {}
    return {
        "run_id": run_dir.name,
        "kind": config.get("kind"),
        "owner": owner.get("name") if isinstance(owner.get("name"), str) else None,
        "state": status.get("state", "broken"),
        "device": config.get("device"),
        "created": config.get("created"),
        "step": progress.get("step"),
        "total": progress.get("total"),
        "loss": progress.get("loss"),
        "eta_seconds": progress.get("eta_seconds"),
        "message": progress.get("message"),
        "error_message": status.get("error_message"),
    }


def list_runs(
    limit: int | None = None, refresh: bool = True, actor: Principal | None = None
) -> list[dict[str, Any]]:
    """Runs newest first: run_id, kind, owner, state, device, created, step, total, loss, eta,
    message; only those ``actor`` may open (a student: their own and pinned ones).

    With ``refresh`` (default) dead workers are detected and their runs persisted as failed.
    """
    visible = _run_dirs()
    actor = current_actor(actor)
    if not actor.is_admin:
        visible = [p for p in visible if _may_open(p, actor)]
    dirs = sorted(
        visible,
        key=lambda p: ((read_json(p / CONFIG) or {}).get("created") or "", p.name),
        reverse=True,
    )
    if limit is not None:
        dirs = dirs[:limit]
    return [_summary(p, refresh) for p in dirs]


def owned_by(run_dir: Path, actor: Principal) -> bool:
    """Whether ``actor`` (a student or the teacher) launched the run in ``run_dir``."""
    return owns(actor, read_json(Path(run_dir) / CONFIG))


def _may_open(run_dir: Path, actor: Principal) -> bool:
    try:
        check_access(run_dir, actor, "open")
    except ValueError:
        return False
    return True


def read_run(run_id: str, actor: Principal | None = None) -> dict[str, Any]:
    """Everything about one run: run_id, run_dir, config, status, progress, result (or None).

    Dead workers are detected here (state persisted as failed). Unknown ids raise ValueError;
    a run ``actor`` may not open raises :class:`core.jobs.access.AccessDenied`.
    """
    run_dir = run_path(run_id)
    check_access(run_dir, actor, "open")
    return {
        "run_id": run_dir.name,
        "run_dir": str(run_dir),
        "config": read_json(run_dir / CONFIG) or {},
        "status": refresh_status(run_dir),
        "progress": read_json(run_dir / PROGRESS),
        "result": read_json(run_dir / RESULT),
    }


def read_metrics(run_id: str, actor: Principal | None = None) -> list[dict[str, Any]]:
    """Per-step records from ``metrics.jsonl`` (the last record wins for steps redone on resume)."""
    by_step: dict[Any, dict[str, Any]] = {}
    run_dir = run_path(run_id)
    check_access(run_dir, actor, "open")
    for rec in read_jsonl(run_dir / METRICS):
        by_step[rec.get("step")] = rec
    return list(by_step.values())
