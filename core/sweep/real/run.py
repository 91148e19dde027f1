"""The real-model sweep's front door: :func:`run_real_sweep` and the ``real-sweep`` job.

The level runner (:class:`core.sweep.real.runner.RealSweepRunner`) run by the one engine
(:func:`core.sweep.engine.drive`) on an executor (core/sweep/executors/); the mini sweep's front
door is core/sweep/mini/run.py.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from core.io import ensure_writable_dir
from core.jobs.context import JobContext
from core.sweep.engine import ProgressFn, drive
from core.sweep.executors import ExecutorOptions, make_executor
from core.sweep.job import SweepJob, run_sweep_job
from core.sweep.real.config import RealSweepConfig, check_inputs
from core.sweep.real.runner import RealSweepRunner


def run_real_sweep(
    cfg: RealSweepConfig,
    out: Path,
    on_progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
    *,
    executor: str = "local",
    options: ExecutorOptions | None = None,
    pause_requested: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Run (or resume) a real-model sweep into ``out``; returns the results dict (``complete``
    False if stopped). ``on_progress(fine-tune steps done, total, message, loss)``. Bad inputs
    raise ValueError / FileNotFoundError before any model loads. ``executor``/``options``:
    core/sweep/executors (``ray``: one level per Ray task, e.g. ``gpus_per_level=1``)."""
    index = check_inputs(cfg)
    ex = make_executor(executor, options)
    out = ensure_writable_dir(Path(out), "out")
    runner = RealSweepRunner(cfg, out, index)
    return drive(runner, out, ex, on_progress, should_stop, pause_requested)


def run_job(config: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Job kind ``real-sweep``: a :class:`core.sweep.job.SweepJob` whose settings are
    :class:`RealSweepConfig` fields; results go to ``out`` or ``<run dir>/sweep`` (where the app
    finds packs); the device comes from the job."""
    return run_sweep_job(config, ctx, read=_job_sweep, run=_run_for_job)


def _job_sweep(settings: dict[str, Any], ctx: JobContext) -> RealSweepConfig:
    return RealSweepConfig.from_dict({**settings, "device": ctx.device})


def _run_for_job(
    cfg: RealSweepConfig, out: Path, job: SweepJob, ctx: JobContext
) -> tuple[dict[str, Any], dict[str, Any]]:
    torch.set_num_threads(max(1, os.cpu_count() or 1))

    def progress(step: int, total: int, msg: str, loss: float | None) -> None:
        ctx.progress(step, total, loss=loss, message=msg)  # no estimate: the run's own rate

    res = run_real_sweep(
        cfg, out, progress, ctx.should_stop, executor=job.executor, options=job.options(1),
        pause_requested=ctx.pause_requested,
    )  # fmt: skip
    return res, {}
