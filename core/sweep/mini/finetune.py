"""The Poison-setup run (job kind ``finetune``, ``implosion finetune``): an experiment of two levels.

A fine-tune on chosen concepts is a sweep with an explicit poisoning order: the clean baseline
(C_P = 0) and the poisoned level (C_P = number of chosen concepts), same seed, same steps, run by
:func:`core.sweep.mini.run.run_sweep` into ``<run>/pack``. So it writes the pack every sweep writes
(records with AD on the calibrated scale, training probes, generations of every concept at fixed
seeds, embeddings for the graph), shows up in ``implosion runs list`` and in the explorer as
soon as its first level is saved, and "random C_P with seed" is exactly the sweep's level
(:func:`core.poison.plan.plan_level`).

The job config *is* the sweep config (``SweepConfig.to_dict()``) plus a display ``name``: concept
ids are resolved from names once, by :func:`finetune_config`, and validated by the sweep.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from core.jobs.context import JobContext
from core.poison.plan import TARGET_RULES, check_concepts, choose_targets, poisoning_plan
from core.results.aggregate import level_summaries
from core.sweep.job import SweepJob, run_sweep_job
from core.sweep.mini.config import PRESETS, SweepConfig, from_settings
from core.world import World, model_world

# Where a finetune job writes its pack inside the run directory (core.results.pack.PACK_SUBDIRS).
PACK_SUBDIR = "pack"

# Poison-setup defaults: cpu-quick's attack, fine-tune and evaluation (core.sweep.mini.config: poisons
# replace the chosen captions' clean pairs, three per clean image; rank-1 LoRA for 60 steps; 32
# clean pairs per concept), as a two-level run: the clean baseline and the chosen concepts.
FINETUNE_DEFAULTS = replace(PRESETS["cpu-quick"], preset="finetune", levels=(0, 1), seeds=(0,))


def resolve_concepts(
    world: World, items: Sequence[Any], field: str = "concepts"
) -> tuple[int, ...]:
    """Concept names (``"large red star"``) or ids → ids of ``world`` (ValueError lists valid
    names or the id range, and duplicates)."""
    ids: list[int] = []
    for it in items:
        if isinstance(it, str) and it.strip().isdigit():
            it = int(it)
        ids.append(it if isinstance(it, int) else world.index(str(it)))
    return check_concepts(ids, world.n_concepts, field)


def finetune_config(
    world: World,
    concepts: Sequence[Any],
    *,
    targets: str | dict[Any, Any] = "random",
    budget: int | None = None,
    steps: int | None = None,
    seed: int = 0,
    model: str | None = None,
    device: str = "cpu",
    base: SweepConfig = FINETUNE_DEFAULTS,
    **overrides: Any,
) -> SweepConfig:
    """The two-level sweep of a fine-tune on ``concepts`` (names or ids, in poisoning order).

    targets: ``"random"`` (the seed's plan targets, as the sweep), ``"nearest"`` / ``"farthest"``
    (shared attribute words) or explicit {concept: target} by name or id. budget: poison pairs
    per poisoned concept (default: the preset ratio, 3 per clean pair). steps: fine-tune steps per level.
    ``overrides``: other SweepConfig fields (eval_samples, probe_every, …).
    """
    ids = resolve_concepts(world, concepts)
    if not ids:
        raise ValueError("concepts: empty selection; choose at least one concept to poison")
    explicit: dict[int, int] | None = None
    if isinstance(targets, dict):
        explicit = {}
        for a, b in targets.items():
            (ia,) = resolve_concepts(world, [a], "targets")
            (ib,) = resolve_concepts(world, [b], "targets")
            explicit[ia] = ib
        missing = [world.names[i] for i in ids if i not in explicit]
        if missing:
            raise ValueError(f"targets: no target given for {missing}; give one per concept")
    elif targets not in TARGET_RULES:
        raise ValueError(f"targets: {targets!r}; use one of {', '.join(TARGET_RULES)} or pairs")
    elif targets != "random":
        explicit = choose_targets(world, ids, targets, seed)
    if explicit is not None:
        poisoning_plan(world.n_concepts, seed, ids, explicit)  # checks self-targets and ids
    n_clean = int(overrides.pop("n_clean_per_concept", base.n_clean_per_concept))
    if budget is not None and budget < 1:
        raise ValueError(f"budget: {budget} poison pairs per concept; give a count ≥ 1")
    ft = base.finetune if steps is None else replace(base.finetune, steps=int(steps))
    if "eval_samples" in overrides and "grid_samples" not in overrides:
        overrides["grid_samples"] = min(base.grid_samples, int(overrides["eval_samples"]))
    return replace(
        base,
        levels=(0, len(ids)),
        seeds=(int(seed),),
        n_clean_per_concept=n_clean,
        poison_ratio=base.poison_ratio if budget is None else budget / n_clean,
        finetune=ft,
        model=model,
        device=device,
        concepts=ids,
        targets=None if explicit is None else tuple((a, explicit[a]) for a in ids),
        **overrides,
    )


def run_name(names: Sequence[str], concepts: Sequence[int]) -> str:
    """A readable run name from the poisoned concepts: "large red star + small blue circle"."""
    shown = [names[i] for i in concepts[:3]]
    more = f" + {len(concepts) - 3} more" if len(concepts) > 3 else ""
    return " + ".join(shown) + more


def job_config(config: SweepConfig, names: Sequence[str]) -> dict[str, Any]:
    """The ``finetune`` job config (a :class:`core.sweep.job.SweepJob`): the sweep config and a
    display name."""
    return SweepJob(config.to_dict(), name=run_name(names, config.concepts or ())).to_dict()


def comparison(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Clean baseline vs poisoned level: per level c_p, AD, accuracy (unpoisoned / poisoned),
    incoherence, attack success, alignment (means over seeds), for tables and ``runs show``."""
    return [s.to_dict() for s in level_summaries(list(records))]


def run_finetune(
    config: SweepConfig,
    out: Path,
    on_progress: Callable[[int, int, str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_units: Callable[[int, int, str, float | None], None] | None = None,
) -> dict[str, Any]:
    """Run (or resume) the experiment into ``out``; returns {"out", "complete", "levels"}.
    ``on_units``: the driver's fine-grained progress (core.sweep.mini.run.run_sweep)."""
    if config.concepts is None:
        raise ValueError("concepts: a fine-tune needs its chosen concepts (see finetune_config)")
    from core.sweep.mini.run import run_sweep  # torch and the model code: only when a run starts

    res = run_sweep(config, out, on_progress, should_stop, on_units=on_units)
    return {
        "out": str(out),
        "complete": bool(res.get("complete")),
        "levels": comparison(res["records"]),
    }


def run_job(config: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Job kind ``finetune``: a :class:`core.sweep.job.SweepJob` whose settings are every
    SweepConfig field (:func:`job_config`); the pack goes to ``<run dir>/pack``.

    Progress: the driver's fine-tune steps and level ends weighed by the estimate
    (core.sweep.mini.estimate, this machine's rates, measured once and cached), the driver's
    message, and a time left that blends the estimate with the run's own rate
    (core/jobs/progress.py); one log line per new message."""
    return run_sweep_job(config, ctx, read=_job_sweep, run=_run_for_job, subdir=PACK_SUBDIR)


def _job_sweep(settings: dict[str, Any], ctx: JobContext) -> SweepConfig:
    """The run's SweepConfig; a CPU config runs on the job's GPU when it was given one."""
    sc = from_settings(settings)
    if sc.concepts is None:
        raise ValueError("concepts: a fine-tune job needs its chosen concepts (see job_config)")
    if sc.device == "cpu" and str(ctx.device).startswith("cuda"):
        sc = replace(sc, device=str(ctx.device))
    return sc


def _run_for_job(
    sc: SweepConfig, out: Path, job: SweepJob, ctx: JobContext
) -> tuple[dict[str, Any], dict[str, Any]]:
    import torch

    from core.sweep.mini.estimate import (
        cached_rates,
        estimate,
        format_seconds,
        measure_rates,
        process_age_s,
    )
    from core.sweep.mini.run import job_progress, run_sweep

    torch.set_num_threads(max(1, torch.get_num_threads()))
    ft = sc.finetune
    rates = cached_rates(sc.model, sc.device, ft.precision, ft.params)  # measured by the page
    if rates is None:
        ctx.progress(0, None, message="measuring this machine (once, 10–60 s)")
        rates = measure_rates(
            sc.model, sc.device, ft.precision, start_s=process_age_s(), params=ft.params
        )
        ctx.log(f"measured this machine in {format_seconds(rates.seconds)}")
    est = estimate(sc, model_world(sc.model).n_concepts, rates)
    ctx.log(f"estimated {format_seconds(est.total)} ({est.levels} levels; load {rates.load:.1f})")
    progress = job_progress(ctx, sc, rates)
    last = [""]

    def units(i: int, total: int, msg: str, loss: float | None) -> None:
        progress(i, total, msg, loss)
        level = msg.split(":", 1)[0]
        if level != last[0]:
            ctx.log(msg)
            last[0] = level

    res = run_sweep(sc, out, None, ctx.should_stop, on_units=units)
    return res, {"levels": comparison(res["records"]), "estimate_s": round(est.total, 1)}
