"""Starting, controlling and waiting for jobs (what the CLI and the UI call).

Control is asynchronous: :func:`stop_job`, :func:`pause_job`, :func:`cancel_job` write an atomic
``control.json`` request that the worker reads in ``ctx.should_stop()``; they validate the request
against the current state first. Requests never overwrite a stronger pending one (cancel > stop >
pause/resume): stop → pause → cancel in quick succession ends cancelled, the pause is refused.
:func:`resume_job` either lifts a pause or starts a new worker attempt for a stopped, failed or
broken run, which continues from ``ctx.latest_checkpoint()``. :func:`remove_job` deletes a run
that has no live worker.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from core.io import REPO_ROOT, atomic_write_json, run_metadata
from core.jobs import devices, store
from core.jobs.access import (
    Principal,
    Quota,
    QuotaExceeded,
    check_launch,
    current_actor,
    folder_mb,
)
from core.jobs.kinds import import_root, load_target, resolve_target

DEFAULT_CANCEL_GRACE_S = 10.0


def _spawn(run_dir: Path) -> int:
    """Start a detached worker for ``run_dir`` (own session, output appended to log.txt)."""
    env = dict(os.environ)
    env["IMPLOSION_RUNS"] = str(run_dir.parent)
    env["PYTHONUNBUFFERED"] = "1"
    for secret in ("IMPLOSION_CLASS_CODE", "IMPLOSION_TEACHER_CODE"):
        env.pop(secret, None)  # a job never needs the class server's join codes
    # Make `core` importable even without an editable install (appended: never shadows it).
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join([*paths, str(REPO_ROOT)])
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    try:
        log_fd = os.open(run_dir / store.LOG, flags, 0o644)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise OSError(
                e.errno, f"{store.LOG} is a symbolic link (remove it; the log is written there)"
            ) from e
        raise
    with os.fdopen(log_fd, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "core.jobs.worker", str(run_dir)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # survives the parent and its Ctrl-C / session end
            close_fds=True,
            env=env,
        )
    store.track_child(proc)

    started = store.process_start_time(proc.pid)

    def record_pid(s: dict[str, Any]) -> dict[str, Any] | None:
        if s.get("state") != "queued" or s.get("pid") is not None:
            return None
        return {"pid": proc.pid, "pid_start": started}

    store.update_status(run_dir, record_pid)
    return proc.pid


def _spawn_or_fail(run_dir: Path) -> int:
    """:func:`_spawn`, recording a failure to launch in the run instead of leaving it queued."""
    try:
        return _spawn(run_dir)
    except OSError as e:
        message = f"could not start the worker process: {e}"
        store.update_status(
            run_dir, lambda s: {"state": "failed", "error_message": message, "error": message}
        )
        raise ValueError(f"run {run_dir.name}: {message}") from e


def _busy_error(device: str, holder: str) -> ValueError:
    return ValueError(f"device {device} is busy with run {holder}; wait, stop it, or pass --queue")


@contextlib.contextmanager
def _launch_lock(actor: Principal) -> Iterator[None]:
    """Serialises a student's "count my runs and the disk, then launch" against every other
    launch that is counted (flock across processes, so two racing clicks cannot both pass)."""
    if actor.role != "student":
        yield
        return
    with open(store.locks_dir() / "class-launch.lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _check_quota(actor: Principal, exclude: str | None = None) -> None:
    """Under :func:`_launch_lock`: a student's active runs and the runs folder's disk budget."""
    if actor.role != "student":
        return
    quota = actor.quota or Quota()
    mine = [
        p.name
        for p in store._run_dirs()
        if p.name != exclude
        and store.owned_by(p, actor)
        and store.refresh_status(p).get("state") in store.ACTIVE_STATES
    ]
    if len(mine) >= quota.queued_per_student:
        raise QuotaExceeded(
            f"you already have {len(mine)} run(s) queued or running ({', '.join(sorted(mine))}); "
            f"the class limit is {quota.queued_per_student}: wait for one to finish or stop it"
        )
    used = folder_mb(store.jobs_root())
    if used >= quota.disk_budget_mb:
        raise QuotaExceeded(
            f"disk budget: the class's runs take {used:.0f} MiB of the {quota.disk_budget_mb} MiB "
            "allowed; delete finished runs on the Jobs page or ask the teacher to"
        )


def start_job(
    kind: str,
    config: Mapping[str, Any] | None = None,
    *,
    device: str = "auto",
    queue: bool = False,
    seed: int | None = None,
    cancel_grace_s: float = DEFAULT_CANCEL_GRACE_S,
    actor: Principal | None = None,
) -> str:
    """Start a job in a detached worker process and return its run id.

    ``kind`` is a registered name (see :func:`core.jobs.register_kind`) or ``"module:function"``;
    ``config`` must be JSON-serialisable and is passed to the kind function as a dict. ``device``:
    auto, cpu, mps, cuda or cuda:N. One job runs per device: if it is busy the job is queued when
    ``queue`` is true, else ValueError. ``seed`` (default ``config["seed"]``) goes into metadata.
    ``actor`` becomes the run's owner; a student's launch must fit their quota
    (:class:`core.jobs.access.QuotaExceeded` otherwise) and always queues.
    """
    target = resolve_target(kind)
    load_target(target, kind)  # fail here, not in the worker, on an unknown kind
    config = dict(config or {})
    actor = current_actor(actor)
    check_launch(actor, kind, config)
    queue = queue or actor.role == "student"  # students wait their turn in the class queue
    device = devices.normalize_device(device)
    if cancel_grace_s <= 0:
        raise ValueError("cancel_grace_s must be > 0 seconds")
    root = store.jobs_root(create=True)
    with _launch_lock(actor), devices.start_lock(device):
        _check_quota(actor)
        holder = devices.busy_with(device)
        if holder is not None and not queue:
            raise _busy_error(device, holder)
        run_id = store.new_run_id(kind)
        run_dir = root / run_id
        run_dir.mkdir()
        (run_dir / store.CHECKPOINTS).mkdir()
        (run_dir / store.SAMPLES).mkdir()
        root_path = import_root(target)
        now = store.now_iso()
        atomic_write_json(
            run_dir / store.STATUS,
            {
                "state": "queued",
                "pid": None,
                "attempt": 1,
                "device": device,
                "queued_at": now,
                "started": None,
                "updated": now,
                "heartbeat": None,
                "finished": None,
                "error": None,
                "error_message": None,
            },
        )
        # config.json last: a run directory counts as a run only once it exists.
        atomic_write_json(
            run_dir / store.CONFIG,
            {
                "run_id": run_id,
                "kind": kind,
                "target": target,
                "config": config,
                "device": device,
                "created": now,
                "cancel_grace_s": float(cancel_grace_s),
                "owner": actor.owner_record(),
                "sys_path": [root_path] if root_path else [],
                "metadata": run_metadata(seed if seed is not None else config.get("seed")),
            },
        )
        _spawn_or_fail(run_dir)
    return run_id


def _state(run_dir: Path) -> str:
    return str(store.refresh_status(run_dir).get("state"))


# A pending request is only replaced by one at least as strong: a quick stop → pause → cancel
# ends cancelled (the pause is refused), and a stop is never turned into a pause.
_RANK = {"resume": 1, "pause": 1, "stop": 2, "cancel": 3}


def pending_request(run_dir: Path) -> str | None:
    """The control action waiting for the worker (None if none)."""
    control = store.read_json(Path(run_dir) / store.CONTROL)
    action = control.get("action") if isinstance(control, dict) else None
    return action if action in _RANK else None


def _request(run_dir: Path, action: str) -> None:
    with store.status_lock(run_dir):
        # Re-checked under the lock the worker takes for its final state: a request is either
        # seen by the worker or refused here, never accepted and then dropped.
        current = str(store.read_status(run_dir).get("state"))
        if current not in store.ACTIVE_STATES:
            raise _refuse(action, run_dir.name, current, "it ended meanwhile")
        pending = pending_request(run_dir)
        if pending is not None and _RANK[pending] > _RANK[action]:
            raise ValueError(
                f"cannot {action} run {run_dir.name}: a {pending} request is already pending and "
                f"takes precedence; wait for it (`implosion jobs wait {run_dir.name}`)"
            )
        atomic_write_json(
            run_dir / store.CONTROL,
            {"action": action, "requested": store.now_iso(), "replaces": pending},
        )


def _refuse(action: str, run_id: str, state: str, hint: str) -> ValueError:
    return ValueError(f"cannot {action} run {run_id}: it is {state}; {hint}")


def stop_job(run_id: str, *, actor: Principal | None = None) -> dict[str, Any]:
    """Ask a queued/running/paused job to stop after its current step (resumable later).

    Returns the status at the time of the request; the worker sets ``stopped`` when done.
    """
    run_dir = store.run_path(run_id)
    store.check_access(run_dir, actor, "stop")
    state = _state(run_dir)
    if state not in store.ACTIVE_STATES:
        raise _refuse("stop", run_id, state, "only queued, running or paused jobs can be stopped")
    _request(run_dir, "stop")
    return store.read_status(run_dir)


def pause_job(run_id: str, *, actor: Principal | None = None) -> dict[str, Any]:
    """Ask a running job to pause at its next ``should_stop()`` (it keeps its device)."""
    run_dir = store.run_path(run_id)
    store.check_access(run_dir, actor, "pause")
    state = _state(run_dir)
    if state == "paused":
        raise _refuse("pause", run_id, state, f"resume it with `implosion jobs resume {run_id}`")
    if state != "running":
        raise _refuse("pause", run_id, state, "only running jobs can be paused")
    _request(run_dir, "pause")
    return store.read_status(run_dir)


def resume_job(
    run_id: str, *, queue: bool = False, actor: Principal | None = None
) -> dict[str, Any]:
    """Resume a paused job, or restart a stopped/failed one from its latest checkpoint.

    A restart starts a new worker attempt (``status.attempt`` + 1); if the device is busy it is
    queued when ``queue`` is true, else ValueError. Completed and cancelled runs cannot resume.
    A student's restart counts against their quota like a launch.
    """
    run_dir = store.run_path(run_id)
    actor = current_actor(actor)
    store.check_access(run_dir, actor, "resume")
    queue = queue or actor.role == "student"
    state = _state(run_dir)
    if state == "paused":
        _request(run_dir, "resume")
        return store.read_status(run_dir)
    if state in ("queued", "running"):
        raise _refuse("resume", run_id, state, "it is not paused or stopped")
    if state in ("completed", "cancelled"):
        raise _refuse("resume", run_id, state, "start a new job instead")
    if state == "broken":
        _refuse_live_workers("resume", run_dir)
    device = str((store.read_json(run_dir / store.CONFIG) or {}).get("device", "cpu"))
    with _launch_lock(actor), devices.start_lock(device):
        _check_quota(actor, exclude=run_dir.name)
        holder = devices.busy_with(device, exclude=run_dir.name)
        if holder is not None and not queue:
            raise _busy_error(device, holder)

        def requeue(s: dict[str, Any]) -> dict[str, Any]:
            if s.get("state") not in ("stopped", "failed", "broken"):
                raise _refuse("resume", run_id, str(s.get("state")), "it changed meanwhile")
            now = store.now_iso()
            attempt = s.get("attempt")
            return {
                "state": "queued",
                "pid": None,
                "pid_start": None,
                "attempt": (attempt if isinstance(attempt, int) else 0) + 1,
                "device": device,
                "queued_at": now,
                "started": s.get("started"),
                "heartbeat": None,
                "finished": None,
                "error": None,
                "error_message": None,
                "last_result": None,
            }

        (run_dir / store.CONTROL).unlink(missing_ok=True)  # an old "stop" must not stop it again
        status = store.update_status(run_dir, requeue)
        _spawn_or_fail(run_dir)
    return status


def cancel_job(
    run_id: str, *, wait: bool = False, grace_s: float | None = None, actor: Principal | None = None
) -> dict[str, Any]:
    """Cancel a queued/running/paused job (final state ``cancelled``, not resumable).

    The worker stops at its next ``should_stop()``; if it has not within the run's grace period it
    terminates itself. With ``wait`` this call blocks until then and, as a last resort (a worker
    stuck outside Python), kills the process group itself. Returns the latest status.
    """
    run_dir = store.run_path(run_id)
    store.check_access(run_dir, actor, "cancel")
    state = _state(run_dir)
    if state not in store.ACTIVE_STATES:
        hint = "only queued, running or paused jobs can be cancelled"
        if state == "broken":
            hint = (
                f"resume it (`implosion jobs resume {run_id}`) or delete it "
                f"(`implosion jobs rm {run_id}`)"
            )
        raise _refuse("cancel", run_id, state, hint)
    _request(run_dir, "cancel")
    if not wait:
        return store.read_status(run_dir)
    config = store.read_json(run_dir / store.CONFIG) or {}
    grace = float(grace_s if grace_s is not None else config.get("cancel_grace_s", 10.0))
    try:
        return wait_job(run_id, timeout=grace + 3.0, actor=actor)
    except TimeoutError:
        pass
    status = store.read_status(run_dir)
    pid = status.get("pid")
    # Only this run's worker (pid + start time + command line) is ever killed.
    if isinstance(pid, int) and store.worker_alive(status, run_dir):
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        deadline = time.monotonic() + 5.0
        while store.worker_alive(status, run_dir) and time.monotonic() < deadline:
            time.sleep(0.05)

    def mark(s: dict[str, Any]) -> dict[str, Any] | None:
        if s.get("state") not in store.ACTIVE_STATES:
            return None
        return {"state": "cancelled", "finished": store.now_iso(), "error_message": "killed"}

    return store.update_status(run_dir, mark)


def _refuse_live_workers(action: str, run_dir: Path) -> None:
    live = store.worker_pids(run_dir)
    if live:
        pids = ", ".join(map(str, live))
        raise ValueError(
            f"cannot {action} run {run_dir.name}: its worker (pid {pids}) is still running; "
            f"wait for it to end or end it with `kill {pids}`"
        )


def remove_job(run_id: str, *, actor: Principal | None = None) -> str:
    """Delete a run that is not active (stopped, cancelled, failed, completed or broken).

    Refused while a worker of the run is alive. The folder is first renamed to a hidden name
    (so no reader sees a half-deleted run), then removed without following symlinks. Returns the
    removed folder's path.
    """
    run_dir = store.run_path(run_id)
    store.check_access(run_dir, actor, "remove")
    state = _state(run_dir)
    if state in store.ACTIVE_STATES:
        raise _refuse(
            "remove", run_id, state, f"cancel it first (`implosion jobs cancel {run_id}`)"
        )
    _refuse_live_workers("remove", run_dir)
    trash = run_dir.with_name(f".removing-{run_dir.name}-{os.getpid()}")
    os.rename(run_dir, trash)
    shutil.rmtree(trash)
    return str(run_dir)


def wait_job(
    run_id: str,
    timeout: float | None = None,
    poll_s: float = 0.1,
    *,
    actor: Principal | None = None,
) -> dict[str, Any]:
    """Block until the run is stopped, cancelled, failed or completed; return its status.

    Raises TimeoutError after ``timeout`` seconds (None waits forever).
    """
    run_dir = store.run_path(run_id)
    store.check_access(run_dir, actor, "open")
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        status = store.refresh_status(run_dir)
        if status.get("state") in store.TERMINAL_STATES:
            return status
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError(f"run {run_id} is still {status.get('state')} after {timeout:g} s")
        time.sleep(poll_s)
