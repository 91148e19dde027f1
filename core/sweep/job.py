"""The one job adapter of the sweep kinds (``sweep``, ``finetune``, ``real-sweep``) and their one
job-config shape.

A sweep job's config (``config.json`` of its run) is a :class:`SweepJob`: the kind's sweep
settings and the job's own keys side by side::

    {...sweep settings..., "name"?: str, "out"?: folder, "executor"?: "local" | "ray",
     "workers"?: int, "address"?: str, "gpus_per_level"?: float, "cpus_per_level"?: float}

The sweep settings are read by the kind: a ``SweepConfig`` (every field, or a preset name and the
fields that differ from it) for ``sweep`` and ``finetune``, ``RealSweepConfig`` fields for
``real-sweep``. None of those configs has a field named like a job key. Records written with the
settings nested under ``"sweep"`` (older ``finetune`` runs) read the same way.

:func:`run_sweep_job` is every kind's ``run_job``: parse the job once (errors name the field),
read the kind's config, pick the output folder (``out``, else ``<run dir>/<subdir>``), run, and
report ``{"out", "complete", "records"}`` plus what the kind adds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

from core.jobs.context import JobContext
from core.sweep.executors import EXECUTORS, ExecutorOptions

C = TypeVar("C")


@dataclass(frozen=True)
class SweepJob:
    """A sweep job's config: the kind's sweep config (``sweep``, a JSON dict) and where it runs.
    ``workers`` None: the kind's default (a preset's, else 1)."""

    sweep: dict[str, Any]
    name: str = ""
    out: str | None = None
    executor: str = "local"
    workers: int | None = None
    address: str | None = None
    gpus_per_level: float | None = None
    cpus_per_level: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.sweep, dict):
            raise ValueError(
                f"sweep: expected the sweep config as a dict, got {type(self.sweep).__name__}"
            )
        if self.executor not in EXECUTORS:
            raise ValueError(f"executor must be one of {list(EXECUTORS)}, got {self.executor!r}")
        if self.workers is not None and (isinstance(self.workers, bool) or self.workers < 1):
            raise ValueError(f"workers must be ≥ 1, got {self.workers}; omit it for the default")
        self.options(1)  # resources per level: checked once, here

    def options(self, default_workers: int) -> ExecutorOptions:
        """The executor options (``workers`` or ``default_workers``)."""
        return ExecutorOptions(
            workers=self.workers or default_workers,
            address=self.address,
            gpus_per_level=self.gpus_per_level,
            cpus_per_level=self.cpus_per_level,
        )

    def out_dir(self, run_dir: str | Path, subdir: str) -> Path:
        """``out``, else ``<run dir>/<subdir>`` (where the app looks for a job's pack)."""
        return Path(self.out) if self.out else Path(run_dir) / subdir

    def to_dict(self) -> dict[str, Any]:
        """The job config: the sweep settings and every job key that differs from its default."""
        clash = sorted(JOB_KEYS & self.sweep.keys())
        if clash:
            raise ValueError(f"sweep: settings {clash} are job keys; pass them as job fields")
        d = dict(self.sweep)
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name != "sweep" and v != f.default:
                d[f.name] = v
        return d

    @staticmethod
    def from_dict(config: Mapping[str, Any]) -> SweepJob:
        """Parse a job config (settings nested under ``"sweep"``, as older records hold, too)."""
        d = dict(config)
        picked = {k: d.pop(k) for k in JOB_KEYS if k in d}
        picked = {k: v for k, v in picked.items() if v is not None}
        if isinstance(d.get("sweep"), dict):
            nested = d.pop("sweep")
            if d:
                raise ValueError(
                    f"sweep job: keys {sorted(d)} beside 'sweep'; put sweep settings inside it"
                )
            d = dict(nested)
        if "workers" in picked:
            picked["workers"] = int(picked["workers"])
        return SweepJob(sweep=d, **picked)


JOB_KEYS: frozenset[str] = frozenset(f.name for f in fields(SweepJob)) - {"sweep"}


def run_sweep_job(
    config: Mapping[str, Any],
    ctx: JobContext,
    *,
    read: Callable[[dict[str, Any], JobContext], C],
    run: Callable[[C, Path, SweepJob, JobContext], tuple[dict[str, Any], dict[str, Any]]],
    subdir: str = "sweep",
) -> dict[str, Any]:
    """A sweep kind's ``run_job``: ``read(job.sweep, ctx)`` builds the kind's validated config,
    ``run(cfg, out, job, ctx)`` runs (or resumes) it and returns (results dict, extra metrics).
    Returns the job's final metrics ``{"out", "complete", "records", **extra}``."""
    job = SweepJob.from_dict(config)
    cfg = read(job.sweep, ctx)
    out = job.out_dir(ctx.run_dir, subdir)
    res, extra = run(cfg, out, job, ctx)
    return {
        "out": str(out),
        "complete": bool(res.get("complete", False)),
        "records": len(res["records"]),
        **extra,
    }
