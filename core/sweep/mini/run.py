"""The implosion sweep: AD and generation quality as the number of poisoned concepts C_P grows.

For each seed a random poisoning order and random targets are drawn once
(:func:`core.poison.plan.poisoning_plan`); level C_P poisons the first C_P concepts of that order
(nested sets) with dirty-label pairs: caption of A on copies of target B's images,
``poison_ratio`` × A's clean pairs, either *added* to the clean data (``poison_mode="add"``: A keeps
its clean images too) or *replacing* A's clean pairs (``"replace"``, the CPU presets: a pure
structure conflict; bench/results/science.md). Each (C_P, seed) fine-tunes the clean base from
scratch (all UNet weights, cross-attention only, or LoRA adapters: ``FinetuneConfig.params``),
measures AD of its training pairs and judges generations.

:func:`run_sweep` is the mini-model sweep: :class:`core.sweep.mini.runner.SweepRunner` run by the one
driver (:func:`core.sweep.engine.drive`, which owns resume, progress, stop, the files) on an
executor: ``local`` (this process, or ``workers`` processes) or ``ray`` (core/sweep/executors/).

Output folder: ``results.json`` ({"config", "records", "summary"}, rewritten atomically after each
record, so a resumed sweep skips finished records), ``levels.json`` (state of each level),
``levels/cp{C}_seed{S}.npz`` (embeddings and generations), ``grids/cp{C}_seed{S}.png``, and on
completion ``embeddings.npz`` / ``generations.npz`` / ``training.json`` in the demo-pack format
(core/results/pack.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from core.io import ensure_writable_dir
from core.jobs.context import JobContext
from core.results.aggregate import summarize
from core.results.schema import SUMMARY_METRICS as METRICS
from core.sweep.engine import ProgressFn, drive
from core.sweep.executors import ExecutorOptions, make_executor
from core.sweep.job import SweepJob, run_sweep_job
from core.sweep.mini.config import (
    DEFAULT_WORKERS,
    PRESETS,
    SweepConfig,
    from_settings,
    preset,
    seed_plan,
)
from core.sweep.mini.runner import SweepRunner
from core.sweep.runner import new_results

__all__ = [
    "DEFAULT_WORKERS",
    "METRICS",
    "PRESETS",
    "SweepConfig",
    "job_progress",
    "new_results",
    "preset",
    "run_job",
    "run_sweep",
    "seed_plan",
    "summarize",
]


def run_sweep(
    config: SweepConfig,
    out: Path,
    on_progress: Callable[[int, int, str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    workers: int = 1,
    *,
    executor: str = "local",
    options: ExecutorOptions | None = None,
    pause_requested: Callable[[], bool] | None = None,
    on_units: ProgressFn | None = None,
) -> dict[str, Any]:
    """Run (or resume) a sweep into ``out``; returns the results dict (``complete`` False if
    stopped). ``on_progress(levels done, levels, message)``; ``on_units(units, total, message,
    loss)`` the driver's finer units (fine-tune steps and one per level's end, for a job's
    progress). ``workers`` > 1 runs levels in that many processes on the same device;
    ``executor="ray"`` runs each level as a Ray task (``options``: address, resources per
    level)."""
    if workers < 1:
        raise ValueError(f"workers must be ≥ 1, got {workers}")
    out = ensure_writable_dir(Path(out), "out")
    opts = options or ExecutorOptions()
    ex = make_executor(executor, replace(opts, workers=workers))
    runner = SweepRunner(config, out)
    per_level = max(1, runner.steps_per_level) + 1  # core/sweep/engine.py: steps + the level's end

    def progress(units: int, total: int, msg: str, loss: float | None) -> None:
        if on_progress is not None:
            on_progress(units // per_level, total // per_level, msg)
        if on_units is not None:
            on_units(units, total, msg, loss)

    return drive(runner, out, ex, progress, should_stop, pause_requested)


def run_job(config: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Job kind ``sweep``: a :class:`core.sweep.job.SweepJob` whose settings are a preset name
    and SweepConfig overrides (:func:`core.sweep.mini.config.from_settings`); results go to
    ``out`` or ``<run dir>/sweep``; ``workers`` defaults to the preset's."""
    return run_sweep_job(config, ctx, read=lambda d, _: from_settings(d), run=_run_for_job)


def _run_for_job(
    sc: SweepConfig, out: Path, job: SweepJob, ctx: JobContext
) -> tuple[dict[str, Any], dict[str, Any]]:
    opts = job.options(DEFAULT_WORKERS.get(sc.preset, 1))
    torch.set_num_threads(max(1, torch.get_num_threads()))
    progress = job_progress(ctx, sc)
    res = run_sweep(
        sc, out, None, ctx.should_stop, workers=opts.workers, executor=job.executor, options=opts,
        pause_requested=ctx.pause_requested, on_units=progress,
    )  # fmt: skip
    return res, {}


def job_progress(ctx: JobContext, sc: SweepConfig, rates: Any = None) -> Any:
    """The progress callback of a sweep job (core.sweep.mini.estimate.SweepProgress): work weighed by
    this machine's measured rates (``rates``, else the cached ones; never measured here), or by
    fine-tune steps when the machine has none yet. Reports the start before any set-up."""
    from core.sweep.mini.estimate import SweepProgress, cached_rates, estimate
    from core.world import model_world

    ft = sc.finetune
    rates = rates or cached_rates(sc.model, sc.device, ft.precision, ft.params)
    est = None if rates is None else estimate(sc, model_world(sc.model).n_concepts, rates)
    progress = SweepProgress(ctx, est, ft.steps)
    progress.start(len(sc.levels) * len(sc.seeds) * (max(1, ft.steps) + 1), "loading the model")
    return progress
