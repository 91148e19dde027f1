"""A planned poisoning of the base's training set, as audit pairs, before any fine-tune.

The plan is the calibration packs' sweep on a chosen (C_P, seed): the same clean training set
(``n_clean_per_concept`` world images per concept, seed 10 000 + seed), the same poisoning order
and targets (core.poison.plan via ``core.sweep.mini.config.seed_plan``) or a chosen concept list, the
same poison ratio and add/replace mode. The pairs are built by the sweep's own level runner
(``SweepRunner.pairs`` / ``pair_embeddings``), so a plan's AD is exactly the AD the sweep records
for that level (tests/audit checks it on the demo pack's seeds). Nightshade-style plans replace
each dirty-label poison by a Nightshade poison of the same concept (core.poison.builders:
images of the caption's own concept perturbed so the VAE sees the target; PGD, ≈ 0.5 s per image
on 2 CPU cores at 60 steps). Only the mini model's dual encoder runs: no training.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from core.audit.pairs import AuditPairs
from core.poison.plan import METHODS


@dataclass(frozen=True)
class PlannedAttack:
    """C_P concepts poisoned on ``seed`` by ``method``; ``concepts``: a chosen poisoning order
    (its first C_P are poisoned) instead of the seed's random one."""

    c_p: int
    seed: int
    method: str = "dirty-label"
    concepts: tuple[int, ...] | None = None
    epsilon: float = 16 / 255
    steps: int = 60

    def __post_init__(self) -> None:
        if isinstance(self.c_p, bool) or not isinstance(self.c_p, int) or self.c_p < 0:
            raise ValueError(f"--c-p: the number of poisoned concepts must be ≥ 0, got {self.c_p}")
        if self.seed < 0:
            raise ValueError(f"--seed: must be ≥ 0, got {self.seed}")
        if self.method not in METHODS:
            raise ValueError(f"--method: {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.concepts is not None and self.c_p > len(self.concepts):
            raise ValueError(
                f"--c-p: {self.c_p} exceeds the {len(self.concepts)} chosen concepts; "
                "choose more concepts or a lower C_P"
            )

    def check(self, n_concepts: int) -> None:
        """C_P ≤ K of the model (ValueError before any work)."""
        if self.c_p > n_concepts:
            raise ValueError(
                f"--c-p: C_P={self.c_p} exceeds K={n_concepts} concepts of this model; "
                f"choose 0..{n_concepts}"
            )

    def label(self) -> str:
        return f"planned {self.method} C_P={self.c_p} seed {self.seed}"


def sweep_config_of(pack_config: dict[str, Any]) -> Any:
    """The SweepConfig a pack ran (its ``sweep_config``, else the shared keys of its config)."""
    from core.sweep.mini.config import SweepConfig

    saved = pack_config.get("sweep_config")
    if saved is None:
        fields = set(SweepConfig.__dataclass_fields__)
        saved = {k: v for k, v in pack_config.items() if k in fields}
        saved["concepts"] = saved["targets"] = None
    return SweepConfig.from_dict(saved)


def _uint8(images: np.ndarray) -> np.ndarray:
    """(N, 3, S, S) float in [-1, 1] → (N, S, S, 3) uint8."""
    return (
        ((np.asarray(images).transpose(0, 2, 3, 1) + 1) * 127.5)
        .round()
        .clip(0, 255)
        .astype(np.uint8)
    )


def plan_runner(
    pack_config: dict[str, Any],
    seeds: Sequence[int],
    levels: Sequence[int],
    concepts: tuple[int, ...] | None = None,
    model: str | Path | None = None,
    device: str = "cpu",
) -> Any:
    """The sweep's level runner (core.sweep.mini.runner.SweepRunner) for the pack's sweep on ``seeds``
    × ``levels``: it loads the model once and builds any of those levels' pairs."""
    from core.sweep.mini.runner import SweepRunner

    base = sweep_config_of(pack_config)
    cfg = replace(
        base,
        levels=tuple(sorted(set(int(c) for c in levels))),
        seeds=tuple(dict.fromkeys(int(s) for s in seeds)),
        concepts=concepts,
        targets=None,
        model=str(model) if model else base.model,
        device=device,
        defense=None,
    )
    with tempfile.TemporaryDirectory(prefix="audit-plan-") as tmp:
        return SweepRunner(cfg, Path(tmp))  # loads the model; writes nothing that outlives tmp


def planned_pairs(
    attack: PlannedAttack,
    pack_config: dict[str, Any],
    scale: tuple[float, float] | None,
    model: str | Path | None = None,
    device: str = "cpu",
    runner: Any = None,
) -> AuditPairs:
    """The training pairs of ``attack`` under the sweep of ``pack_config`` (a calibration pack's
    config), embedded by the model's dual encoder; ground truth in ``poisoned``. ``runner``: a
    :func:`plan_runner` covering the attack's seed and C_P, reused across plans.

    Returns AuditPairs with thumbnails (the world images, and the Nightshade images when used)."""
    import torch

    from core.sweep.mini.runner import text_rows

    if runner is None:
        runner = plan_runner(
            pack_config, [attack.seed], [attack.c_p], attack.concepts, model, device
        )
    cfg = runner.config
    attack.check(runner.world.n_concepts)
    runner.calibration = scale
    p = runner.pairs(attack.c_p, attack.seed)
    x, y = runner.pair_embeddings(p, attack.seed)
    clean = runner.clean(attack.seed)
    thumbs = _uint8(clean["data"].images)
    thumb_index = np.asarray(p["image"], dtype=np.int64)
    captions = list(p["captions"])
    concept = np.asarray(p["caption_concept"], dtype=np.int64)
    poisoned = np.asarray(p["poisoned"], dtype=bool)
    if attack.method == "nightshade" and poisoned.any():
        from core.poison.builders import build_poison
        from core.poison.plan import PoisonConfig

        lv = runner.level(attack.c_p, attack.seed)
        n_p = int(poisoned.sum()) // max(1, len(lv.poisoned))
        ps = build_poison(
            runner.world,
            PoisonConfig(
                tuple(lv.poisoned),
                "nightshade",
                tuple((a, lv.targets[a]) for a in lv.poisoned),
                n_p,
                epsilon=attack.epsilon,
                steps=attack.steps,
                seed=attack.seed,
            ),
            cfg.n_clean_per_concept,
            vae=runner.ldm.vae,
            device=device,
        )
        with torch.no_grad():
            xs = runner.ldm.image_embeds(torch.from_numpy(ps.images).to(device)).cpu().numpy()
        ys = text_rows(runner.ldm, list(ps.captions))
        keep = ~poisoned
        x = np.concatenate([x[keep], xs])
        y = np.concatenate([y[keep], ys])
        captions = [c for c, k in zip(captions, keep, strict=True) if k] + list(ps.captions)
        concept = np.concatenate([concept[keep], ps.caption_concept.astype(np.int64)])
        thumb_index = np.concatenate([thumb_index[keep], len(thumbs) + np.arange(len(ps))])
        thumbs = np.concatenate([thumbs, _uint8(ps.images)])
        poisoned = np.r_[np.zeros(int(keep.sum()), bool), np.ones(len(ps), bool)]
    return AuditPairs(
        x.astype(np.float32),
        y.astype(np.float32),
        concept,
        tuple(runner.world.names),
        attack.label(),
        poisoned=poisoned,
        captions=tuple(captions),
        thumbnails=thumbs,
        thumb_index=thumb_index,
    )


def model_concepts(model: str | Path | None = None) -> int:
    """K of a model folder (model.json only; no weights loaded)."""
    from core.sweep.mini.finetune import model_world

    return model_world(model).n_concepts


def resolve_plan_concepts(items: Sequence[Any], model: str | Path | None = None) -> tuple[int, ...]:
    """Concept names or ids → ids of the model's world (ValueError lists valid ones)."""
    from core.sweep.mini.finetune import model_world, resolve_concepts

    return resolve_concepts(model_world(model), list(items))


def plan_order(attack: PlannedAttack, n_concepts: int) -> tuple[list[int], dict[int, int]]:
    """(poisoned concepts in order, their targets) of the plan: the seed's random order and
    targets (core.poison.plan.poisoning_plan), or the chosen concepts with the seed's targets."""
    from core.poison.plan import poisoning_plan

    order, targets = poisoning_plan(n_concepts, attack.seed, attack.concepts)
    ids = order[: attack.c_p]
    return ids, {a: targets[a] for a in ids}


def check_run_job(
    attack: PlannedAttack, pack_config: dict[str, Any], model: str | None = None
) -> dict[str, Any]:
    """The ``finetune`` job config (what Poison setup launches) that trains exactly the planned
    pairs: the calibration's sweep on the plan's concepts and targets, clean baseline (C_P = 0)
    and the planned level, same seed. ValueError for C_P = 0 or a Nightshade plan (runs poison
    with dirty-label pairs)."""
    from core.sweep.mini.finetune import finetune_config, job_config, model_world

    if attack.method != "dirty-label":
        raise ValueError(
            "method: runs poison with dirty-label pairs; a Nightshade plan can be audited, not run"
        )
    if attack.c_p < 1:
        raise ValueError("--c-p: C_P = 0 is the clean baseline every run includes; plan C_P ≥ 1")
    world = model_world(model)
    attack.check(world.n_concepts)
    ids, targets = plan_order(attack, world.n_concepts)
    cfg = finetune_config(
        world,
        ids,
        targets=targets,
        seed=attack.seed,
        model=model,
        base=replace(sweep_config_of(pack_config), model=None, defense=None),
    )
    return job_config(cfg, world.names)
