"""The implosion sweep: AD and generation quality as the number of poisoned concepts C_P grows.

For each seed a random poisoning order and random targets are drawn once; level C_P poisons the
first C_P concepts of that order (nested sets), with dirty-label pairs *added* to the clean data
(caption of A on copies of target B's images, ``poison_ratio`` × A's clean pairs) — conflicting
poison, the lever that makes implosion appear in small models (shared/SCIENCE.md). Each (C_P, seed)
fine-tunes the clean base from scratch, measures AD of its training pairs and judges generations.

Output folder: ``results.json`` ({"config", "records", "summary"}, rewritten atomically after each
record, so a resumed sweep skips finished records), ``levels/cp{C}_seed{S}.npz`` (embeddings and
generations), ``grids/cp{C}_seed{S}.png``, and on completion ``embeddings.npz`` /
``generations.npz`` / ``training.json`` in the demo-pack format (core/results/pack.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.io import atomic_write_json, ensure_writable_dir, run_metadata
from core.results.pack import METRICS as PACK_METRICS
from core.training.finetune import FinetuneConfig

# The demo-pack metric names (core/results/pack.py reads these), the AD of the model's own generations
# (core/sweep_level.generated_ad) and the sweep's timing.
METRICS = (*PACK_METRICS, "ad_generated", "finetune_seconds")


@dataclass(frozen=True)
class SweepConfig:
    """One sweep. levels: C_P values (ascending, ≤ K); seeds: one poisoning order each."""

    preset: str = "custom"
    levels: tuple[int, ...] = (0, 1, 2, 4, 8, 16, 24, 32)
    seeds: tuple[int, ...] = (0, 1, 2)
    n_clean_per_concept: int = 64
    poison_ratio: float = 1.0
    method: str = "dirty-label"
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    eval_samples: int = 8
    eval_steps: int = 20
    guidance: float = 3.0
    grid_samples: int = 4
    embeddings_per_level: int = 2048
    probe_every: int = 0  # fine-tune steps between training probes (0: none); see sweep_level
    model: str | None = None
    device: str = "cpu"

    def __post_init__(self) -> None:
        if not self.levels:
            raise ValueError("levels: empty; give C_P values such as 0 4 8 16")
        if list(self.levels) != sorted(set(self.levels)) or self.levels[0] < 0:
            raise ValueError(f"levels must be distinct, ascending and ≥ 0, got {list(self.levels)}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be non-empty and distinct, got {list(self.seeds)}")
        if self.n_clean_per_concept < 1:
            raise ValueError(f"n_clean_per_concept must be ≥ 1, got {self.n_clean_per_concept}")
        if self.poison_ratio <= 0:
            raise ValueError(f"poison_ratio must be > 0, got {self.poison_ratio}")
        if self.method != "dirty-label":
            raise ValueError(f"method: the sweep supports 'dirty-label', got {self.method!r}")
        if self.probe_every < 0:
            raise ValueError(
                f"probe_every must be ≥ 0 (0 turns probes off), got {self.probe_every}"
            )
        if self.eval_samples < 1 or self.grid_samples < 1:
            raise ValueError("eval_samples and grid_samples must be ≥ 1")
        if self.grid_samples > self.eval_samples:
            raise ValueError(
                f"grid_samples ({self.grid_samples}) must be ≤ eval_samples ({self.eval_samples})"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> SweepConfig:
        d = dict(d)
        d["finetune"] = FinetuneConfig(**d.get("finetune", {}))
        for k in ("levels", "seeds"):
            if k in d:
                d[k] = tuple(d[k])
        return SweepConfig(**d)


PRESETS: dict[str, SweepConfig] = {
    # seconds: for tests and smoke runs of the whole pipeline
    "ci-smoke": SweepConfig(
        preset="ci-smoke",
        levels=(0, 2),
        seeds=(0,),
        n_clean_per_concept=4,
        finetune=FinetuneConfig(steps=2, batch=8),
        eval_samples=1,
        eval_steps=2,
        grid_samples=1,
        embeddings_per_level=64,
        probe_every=1,
    ),
    # the trend on 2 CPU cores in about 10 minutes
    "cpu-quick": SweepConfig(
        preset="cpu-quick",
        levels=(0, 4, 16, 28, 32),
        seeds=(0, 1, 2),
        n_clean_per_concept=32,
        finetune=FinetuneConfig(steps=60, batch=64, lr=5e-4),
        eval_samples=4,
        eval_steps=10,
        grid_samples=4,
        probe_every=20,
    ),
    # gpu-full's C_P levels on 2 CPU cores (~30 min): the cpu-quick fine-tune, 5 seeds, 8
    # judged samples per concept; bench/levers.py shows why 60 steps at lr 5e-4 (the disruption
    # is largest early in fine-tuning; with 200 steps the model partly fits the conflicts)
    "cpu-full": SweepConfig(
        preset="cpu-full",
        levels=(0, 1, 2, 4, 8, 16, 24, 32),
        seeds=(0, 1, 2, 3, 4),
        n_clean_per_concept=32,
        finetune=FinetuneConfig(steps=60, batch=64, lr=5e-4),
        eval_samples=8,
        eval_steps=10,
        grid_samples=4,
        probe_every=10,
    ),
    # the faithful experiment (shared/SCIENCE.md): one H200, 400 steps × 256 per level
    "gpu-full": SweepConfig(
        preset="gpu-full",
        levels=(0, 1, 2, 4, 8, 16, 24, 32),
        seeds=(0, 1, 2),
        n_clean_per_concept=256,
        finetune=FinetuneConfig(steps=400, batch=256, lr=2e-4),
        eval_samples=16,
        eval_steps=20,
        grid_samples=4,
        probe_every=50,
        device="cuda",
    ),
}


# Worker processes per preset when none are asked for: gpu-full's 24 fine-tunes of a 4 M-parameter
# UNet each leave most of an H200 idle, so 8 run side by side (one process per level).
DEFAULT_WORKERS: dict[str, int] = {"gpu-full": 8}


def preset(name: str, **overrides: Any) -> SweepConfig:
    """A named preset with optional field overrides; unknown names list the valid ones."""
    if name not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {name!r}")
    return replace(PRESETS[name], **{k: v for k, v in overrides.items() if v is not None})


def poisoning_plan(n_concepts: int, seed: int) -> tuple[list[int], dict[int, int]]:
    """Random order of all concepts and a random target B ≠ A for each (fixed per seed)."""
    rng = np.random.default_rng([seed, 1234])
    order = [int(x) for x in rng.permutation(n_concepts)]
    targets = {}
    for a in range(n_concepts):
        b = int(rng.integers(n_concepts - 1))
        targets[a] = b + (b >= a)
    return order, targets


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per metric: c_p list with mean and 95 % t-interval over seeds (nulls ignored)."""
    from scipy import stats

    levels = sorted({r["c_p"] for r in records})
    out: dict[str, Any] = {}
    for m in METRICS:
        row: dict[str, list[Any]] = {"c_p": [], "mean": [], "ci_low": [], "ci_high": [], "n": []}
        for c in levels:
            v = np.array(
                [r[m] for r in records if r["c_p"] == c and r.get(m) is not None], dtype=float
            )
            if v.size == 0:
                continue
            mean = float(v.mean())
            half = (
                float(stats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size))
                if v.size > 1
                else 0.0
            )
            row["c_p"].append(c)
            row["mean"].append(mean)
            row["ci_low"].append(mean - half)
            row["ci_high"].append(mean + half)
            row["n"].append(int(v.size))
        out[m] = row
    return out


def run_sweep(
    config: SweepConfig,
    out: Path,
    on_progress: Callable[[int, int, str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    workers: int = 1,
) -> dict[str, Any]:
    """Run (or resume) a sweep into ``out``; returns the results dict. ``workers`` > 1 runs
    levels in that many processes on the same device (core/sweep/parallel.py)."""
    from core.sweep.level import SweepRunner

    if workers < 1:
        raise ValueError(f"workers must be ≥ 1, got {workers}")
    out = ensure_writable_dir(Path(out), "out")
    if workers > 1:
        from core.sweep.parallel import run_sweep_parallel

        return run_sweep_parallel(config, out, workers, on_progress, should_stop)
    runner = SweepRunner(config, out)
    results_path = out / "results.json"
    results = runner.load_previous(results_path)
    done = {(r["c_p"], r["seed"]) for r in results["records"]}
    todo = [(c, s) for s in config.seeds for c in config.levels if (c, s) not in done]
    total = len(config.seeds) * len(config.levels)
    for i, (c_p, seed) in enumerate(todo):
        if should_stop is not None and should_stop():
            results["complete"] = False
            return results
        if on_progress is not None:
            on_progress(total - len(todo) + i, total, f"C_P={c_p} seed={seed}")
        t0 = time.time()
        rec = runner.run_level(c_p, seed, should_stop)
        if rec is None:  # stopped mid-level: the level is redone on resume
            results["complete"] = False
            return results
        rec["wall_seconds"] = round(time.time() - t0, 2)
        results["records"].append(rec)
        results["records"].sort(key=lambda r: (r["seed"], r["c_p"]))
        results["summary"] = summarize(results["records"])
        atomic_write_json(results_path, results)
    if on_progress is not None:
        on_progress(total, total, "assembling demo pack files")
    runner.assemble()
    results["complete"] = True
    results["summary"] = summarize(results["records"])
    atomic_write_json(results_path, results)
    return results


def new_results(
    config: SweepConfig, world_names: list[str], plans: dict[int, Any], extra: dict[str, Any]
) -> dict[str, Any]:
    seed0 = config.seeds[0]
    order, targets = plans[seed0]
    cfg = config.to_dict()
    cfg.update(
        concepts=world_names,
        poison_order=order,
        targets={str(a): b for a, b in targets.items()},
        plans={
            str(s): {"order": o, "targets": {str(a): b for a, b in t.items()}}
            for s, (o, t) in plans.items()
        },
        **extra,
    )
    return {
        "config": cfg,
        "records": [],
        "summary": {},
        "complete": False,
        "metadata": run_metadata(seed0),
    }


def run_job(config: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """Job kind ``sweep``: config {"preset": name, "out": dir?, **overrides}."""
    cfg = dict(config)
    name = cfg.pop("preset", "ci-smoke")
    out = Path(cfg.pop("out", None) or (Path(ctx.run_dir) / "sweep"))
    ft = cfg.pop("finetune", None)
    workers = int(cfg.pop("workers", None) or DEFAULT_WORKERS.get(name, 1))
    sc = preset(name, **cfg)
    if ft:
        sc = replace(sc, finetune=replace(sc.finetune, **ft))
    torch.set_num_threads(max(1, torch.get_num_threads()))

    def progress(i: int, total: int, msg: str) -> None:
        ctx.progress(i, total, message=msg)

    res = run_sweep(sc, out, progress, ctx.should_stop, workers=workers)
    return {"out": str(out), "complete": res.get("complete", False), "records": len(res["records"])}
