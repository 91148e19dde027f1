"""The level-runner contract shared by the mini and the real sweep, and the one record builder.

A sweep is a grid of independent levels (C_P, seed). A :class:`LevelRunner` knows how to open
(or resume) a sweep folder and how to run one level; the driver (core/sweep/engine.py) owns
everything around it: order, resume, progress, stop/pause, atomic writes, summary, pack files.
Executors (core/sweep/executors/) run levels in this process, in local worker processes or as
Ray tasks; a worker rebuilds the runner from its :class:`RunnerSpec` (plain JSON), so a level's
result never depends on where it ran: seeds derive from (seed, C_P) alone.

Record (one per level, ``results.json["records"]``): :class:`core.results.schema.LevelRecord`,
built by :func:`level_record` from per-concept scores of the generations.
"""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from core.io import run_metadata
from core.poison.plan import PoisonLevel
from core.results.schema import IMAGES, LEVEL_ARRAYS, LOSS, LevelRecord

SWEEP_CONFIG = "sweep_config"  # results.json config: the sweep's own config, for resume checks
StepFn = Callable[[int, float | None], None]  # (fine-tune step, from 1; loss or None)
StopFn = Callable[[], bool]  # True: save what resumes and return (may block while paused)


def level_record(
    level: PoisonLevel,
    concept: np.ndarray,
    pred: np.ndarray,
    acc: np.ndarray,
    alignment: np.ndarray,
    incoherence: np.ndarray,
) -> LevelRecord:
    """The implosion metrics of one level, mini and real alike (the one record builder).

    level: who is poisoned at (C_P, seed), with targets and the related / unrelated split
    (:func:`core.poison.plan.plan_level`); concept, pred: (N,) prompt concept and predicted
    concept of each generation; acc, alignment, incoherence: (K,) per-concept scores (share
    classified as the concept, image–prompt cosine, normalised classifier entropy). Group means
    are None where the group is empty (the poisoned group at C_P = 0)."""
    pois, unp = list(level.poisoned), list(level.unpoisoned)
    hits = [float(np.mean(pred[concept == a] == level.targets[a])) for a in pois]

    def mean(values: np.ndarray, ix: list[int]) -> float | None:
        return float(np.asarray(values, dtype=float)[ix].mean()) if ix else None

    related, unrelated = list(level.related), list(level.unrelated)
    return LevelRecord(
        c_p=level.c_p,
        seed=level.seed,
        acc_unpoisoned=mean(acc, unp),
        acc_poisoned=mean(acc, sorted(pois)),
        attack_success=float(np.mean(hits)) if hits else None,
        alignment_unpoisoned=mean(alignment, unp),
        incoherence=float(np.mean(incoherence)),
        incoherence_unpoisoned=mean(incoherence, unp),
        acc_related=mean(acc, related) if pois else None,
        acc_unrelated=mean(acc, unrelated) if pois else None,
        per_concept_acc=[round(float(v), 4) for v in acc],
    )


@dataclass(frozen=True)
class LevelResult:
    """What a runner hands the driver for one finished level: the record, the level's pack
    arrays (``levels/cp{C}_seed{S}.npz``: images (K, m, s, s, 3) uint8, image/text (n, d)
    float16, caption_concept/image_concept/poisoned (n,), generated (K, d), loss (steps,),
    optional probe_*) and the image grid (rows × cols, s, s, 3) uint8 with its column count."""

    record: LevelRecord
    arrays: dict[str, np.ndarray]
    grid: np.ndarray
    grid_cols: int


def pack_level(
    record: LevelRecord,
    images: np.ndarray,
    pairs: Mapping[str, np.ndarray],
    eligible: np.ndarray,
    keep: int,
    generated: np.ndarray,
    losses: Sequence[float],
    grid_cols: int,
    extra: Mapping[str, np.ndarray] | None = None,
) -> LevelResult:
    """The one packer of a level's arrays, mini and real alike.

    images: (K, m, s, s, 3) uint8, the generations kept per concept (also the grid, one row of
    ``grid_cols`` per concept); pairs: the level's training pairs, ``image`` / ``text`` (n, d)
    joint-space embeddings and ``caption_concept`` / ``image_concept`` / ``poisoned`` (n,), and
    any other per-pair array of ``schema.LEVEL_ARRAYS`` (kept rows only, like these);
    eligible: indices of the pairs that may be kept (concept-labelled ones); keep: at most this
    many are kept, a random subsample drawn from (seed, C_P) alone; generated: (K, d) mean
    embedding of each concept's generations; losses: the fine-tune loss per step; extra: more
    arrays (per-concept ones, probe_*), saved as given. Embeddings are stored as float16."""
    rng = np.random.default_rng([int(record["seed"]), int(record["c_p"]), 5])
    kept = np.sort(rng.choice(eligible, size=min(int(eligible.size), keep), replace=False))
    per_pair = {  # every per-pair array of the schema the runner computed, same subsample
        name: pairs[name][kept].astype(np.float16) if rule.ndim == 2 else pairs[name][kept]
        for name, rule in LEVEL_ARRAYS.items()
        if rule.rows == "pairs" and name in pairs
    }
    arrays = {
        IMAGES: images,
        **per_pair,
        "generated": np.asarray(generated).astype(np.float16),
        LOSS: np.asarray(losses, dtype=np.float32),
        **(extra or {}),
    }
    return LevelResult(record, arrays, images.reshape(-1, *images.shape[2:]), grid_cols)


@dataclass(frozen=True)
class RunnerSpec:
    """How a worker rebuilds a runner: ``factory`` ("module:function") called with
    (config, out, state); all three are JSON, so a spec crosses processes and Ray nodes."""

    factory: str
    config: dict[str, Any]
    out: str
    state: dict[str, Any] = field(default_factory=dict)

    def key(self) -> str:
        return json.dumps([self.factory, self.config, self.out, self.state], sort_keys=True)


class LevelRunner(Protocol):
    """A sweep kind. The parent calls :meth:`open`, :meth:`spec`, :meth:`level_done` and
    :meth:`assemble`; workers (or the parent, serially) call :meth:`run_level`."""

    steps_per_level: int  # progress units per level (fine-tune steps, or 1)

    def open(self) -> dict[str, Any]:
        """Results to resume (same sweep) or new ones; ValueError if ``out`` holds another."""
        ...

    def spec(self) -> RunnerSpec: ...

    def run_level(self, c_p: int, seed: int, on_step: StepFn, stop: StopFn) -> LevelResult | None:
        """Run one level; None if ``stop`` said so (the level is redone or resumed later)."""
        ...

    def level_done(self, c_p: int, seed: int) -> None:
        """Called when a level's record is saved (e.g. delete its mid-level checkpoints)."""
        ...

    def assemble(self) -> None:
        """Write the demo-pack files once every level is saved."""
        ...


def run_timed(
    runner: LevelRunner, c_p: int, seed: int, on_step: StepFn, stop: StopFn
) -> LevelResult | None:
    """``runner.run_level`` with the level's wall time in its record (``wall_seconds``)."""
    t0 = time.time()
    result = runner.run_level(c_p, seed, on_step, stop)
    if result is not None:
        result.record["wall_seconds"] = round(time.time() - t0, 2)
    return result


_BUILT: dict[str, LevelRunner] = {}


def build_runner(spec: RunnerSpec) -> LevelRunner:
    """The runner a spec describes; built once per process (a worker keeps its model loaded)."""
    key = spec.key()
    if key not in _BUILT:
        module, _, name = spec.factory.partition(":")
        factory = getattr(importlib.import_module(module), name)
        _BUILT.clear()  # one sweep per worker process at a time
        _BUILT[key] = factory(spec.config, spec.out, spec.state)
    return _BUILT[key]


def new_results(
    config: dict[str, Any],
    concepts: list[str],
    plans: Mapping[int, tuple[list[int], Mapping[int, int]]],
    extra: dict[str, Any],
) -> dict[str, Any]:
    """A fresh ``results.json`` dict: the config (with concepts, poisoning plans per seed and
    ``extra``), no records yet, run metadata."""
    seed0 = int(config["seeds"][0])
    order, targets = plans[seed0]
    cfg = dict(config)
    cfg[SWEEP_CONFIG] = dict(config)  # as given: the keys below may shadow config fields
    cfg.update(
        concepts=concepts,
        poison_order=list(order),
        targets={str(a): b for a, b in targets.items()},
        plans={
            str(s): {"order": list(o), "targets": {str(a): b for a, b in t.items()}}
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
