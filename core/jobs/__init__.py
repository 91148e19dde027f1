"""Background jobs: long tasks (fine-tuning, sweeps) in detached worker processes.

A job runs ``kind(config, ctx) -> metrics`` in ``python -m core.jobs.worker <run_dir>`` and talks to
the world only through files in its run directory (see :mod:`core.jobs.store` for the layout), so
it outlives the browser tab and the app server, and any reader can show its state. Control
(stop / pause / resume / cancel) goes through an atomic ``control.json`` request. One job runs per
device at a time; others queue or are refused.

Typical use::

    run_id = start_job("finetune", {"steps": 500, "seed": 0}, device="auto", queue=True)
    read_run(run_id)["progress"]       # step, total, loss, eta_seconds, history
    stop_job(run_id); resume_job(run_id)   # continues from ctx.latest_checkpoint()
    remove_job(run_id)                     # delete a finished, failed or broken run

A run whose ``status.json`` is unreadable is state ``broken``: :func:`resume_job` restarts it from
its last checkpoint, :func:`remove_job` deletes it (both refused while a worker of it is alive).
"""

from core.jobs.access import LOCAL, AccessDenied, Principal, Quota, QuotaExceeded
from core.jobs.api import (
    cancel_job,
    pause_job,
    pending_request,
    remove_job,
    resume_job,
    start_job,
    stop_job,
    wait_job,
)
from core.jobs.context import JobContext, RunContext, TrainContext
from core.jobs.devices import check_device, normalize_device
from core.jobs.kinds import kinds, register_kind
from core.jobs.store import (
    ACTIVE_STATES,
    STATES,
    TERMINAL_STATES,
    JobState,
    list_runs,
    read_log,
    read_metrics,
    read_run,
)

__all__ = [
    "LOCAL",
    "ACTIVE_STATES",
    "AccessDenied",
    "STATES",
    "TERMINAL_STATES",
    "JobContext",
    "JobState",
    "Principal",
    "Quota",
    "QuotaExceeded",
    "RunContext",
    "TrainContext",
    "cancel_job",
    "check_device",
    "kinds",
    "list_runs",
    "normalize_device",
    "pause_job",
    "pending_request",
    "read_log",
    "read_metrics",
    "read_run",
    "register_kind",
    "remove_job",
    "resume_job",
    "start_job",
    "stop_job",
    "wait_job",
]
