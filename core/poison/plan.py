"""Planning a poisoning run from the UI: poisoned set, targets, previews, run-time estimate.

The plan becomes a ``finetune`` job config (see :meth:`PoisonPlan.job_config`); the fine-tuning
itself lives in the jobs/poison code, this module only prepares and explains it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from core.world import World, WorldConfig

Method = Literal["dirty-label", "nightshade"]
METHODS: tuple[str, ...] = ("dirty-label", "nightshade")
TargetMode = Literal["random", "nearest", "farthest", "chosen"]
TARGET_MODES: tuple[str, ...] = ("random", "nearest", "farthest", "chosen")
# Measured throughput of the mini model (shared/SCIENCE.md), images per second of training.
THROUGHPUT: dict[str, float] = {"cpu": 150.0, "cuda": 2700.0}
SAMPLING_S_PER_128: dict[str, float] = {"cpu": 10.0, "cuda": 1.0}


@dataclass(frozen=True)
class PoisonPlan:
    """One poisoning fine-tune. ``budget``: poisoned samples per poisoned concept; ``epsilon``:
    Nightshade-style perturbation bound (L∞ in [-1, 1] pixel units, 0 < ε ≤ 0.5)."""

    n_concepts: int
    poisoned: tuple[int, ...]
    targets: dict[int, int] = field(default_factory=dict)
    method: str = "dirty-label"
    budget: int = 64
    epsilon: float = 16 / 255
    steps: int = 400
    batch: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method {self.method!r}: choose one of {', '.join(METHODS)}")
        bad = [i for i in self.poisoned if not 0 <= i < self.n_concepts]
        if bad:
            raise ValueError(f"poisoned: ids {bad} are not concepts 0..{self.n_concepts - 1}")
        missing = [i for i in self.poisoned if i not in self.targets]
        if missing:
            raise ValueError(f"targets: poisoned concepts {missing} have no target; pick one each")
        same = [i for i in self.poisoned if self.targets.get(i) == i]
        if same:
            raise ValueError(f"targets: concepts {same} target themselves; choose a different one")
        if self.budget < 1:
            raise ValueError(f"budget must be ≥ 1 poisoned sample per concept, got {self.budget}")
        if not 0 < self.epsilon <= 0.5:
            raise ValueError(f"epsilon must be in (0, 0.5], got {self.epsilon}")
        if self.steps < 1:
            raise ValueError(f"steps must be ≥ 1, got {self.steps}")

    def job_config(self, names: list[str], model: str | None = None) -> dict[str, Any]:
        """JSON config for the ``finetune`` job kind (``core.sweep.experiment``): concepts and targets by
        name (explicit targets, so the run poisons exactly what the preview showed)."""
        d: dict[str, Any] = {
            "concepts": [names[i] for i in self.poisoned],
            "targets": {names[i]: names[self.targets[i]] for i in self.poisoned},
            "method": self.method,
            "budget": self.budget,
            "epsilon": self.epsilon,
            "steps": self.steps,
            "batch": self.batch,
            "seed": self.seed,
        }
        if model is not None:
            d["model"] = model
        return d


def random_poison_set(n_concepts: int, c_p: int, seed: int = 0) -> list[int]:
    """``c_p`` distinct concept ids drawn with ``seed`` (nested: more C_P only adds concepts)."""
    if not 0 <= c_p <= n_concepts:
        raise ValueError(f"C_P must be in [0, {n_concepts}], got {c_p}")
    return sorted(int(i) for i in np.random.default_rng(seed).permutation(n_concepts)[:c_p])


def choose_targets(
    world: World,
    poisoned: list[int],
    mode: str = "random",
    seed: int = 0,
    chosen: dict[int, int] | None = None,
) -> dict[int, int]:
    """Target concept per poisoned concept.

    random: any other concept; nearest: most shared attribute words (``World.relation``);
    farthest: fewest shared words; chosen: ``chosen`` (every poisoned id must be in it).
    Ties are broken with ``seed`` so the choice is reproducible.
    """
    if mode not in TARGET_MODES:
        raise ValueError(f"target mode {mode!r}: choose one of {', '.join(TARGET_MODES)}")
    if mode == "chosen":
        chosen = dict(chosen or {})
        missing = [i for i in poisoned if i not in chosen]
        if missing:
            raise ValueError(f"chosen targets: pick a target for concepts {missing}")
        return {i: int(chosen[i]) for i in poisoned}
    rng = np.random.default_rng(seed)
    rel = world.relation
    out: dict[int, int] = {}
    for i in poisoned:
        others = np.array([j for j in range(world.n_concepts) if j != i])
        if mode == "random":
            out[i] = int(rng.choice(others))
            continue
        score = rel[i, others] if mode == "nearest" else -rel[i, others]
        best = others[score == score.max()]
        out[i] = int(rng.choice(best))
    return out


def _uint8(images: np.ndarray) -> np.ndarray:
    return ((images.transpose(0, 2, 3, 1) + 1) * 127.5).round().clip(0, 255).astype(np.uint8)


def preview_pairs(
    world: World,
    source: int,
    target: int,
    method: str = "dirty-label",
    n: int = 4,
    epsilon: float = 16 / 255,
    seed: int = 0,
) -> dict[str, Any]:
    """Clean vs poisoned training pairs for one poisoned concept (for display).

    Returns {"clean": (images (n,S,S,3) uint8, captions), "poisoned": (images, captions),
    "note": str}. Dirty-label: the source's captions on target images. Nightshade-style: source
    images nudged toward the target within an L∞ budget ``epsilon`` (an illustration in pixel
    space; the real attack optimises the perturbation against the VAE encoder).
    """
    if method not in METHODS:
        raise ValueError(f"method {method!r}: choose one of {', '.join(METHODS)}")
    src = world.sample(n, seed=seed, concepts=[source])
    tgt = world.sample(n, seed=seed, concepts=[target])
    if method == "dirty-label":
        pois = tgt.images
        note = (
            f"Dirty-label: captions of “{world.names[source]}” on images of "
            f"“{world.names[target]}”. Easy to spot by eye."
        )
    else:
        delta = np.clip(tgt.images - src.images, -epsilon, epsilon)  # L∞ ≤ ε in [-1, 1] units
        pois = np.clip(src.images + delta, -1, 1)
        note = (
            f"Nightshade-style: images of “{world.names[source]}” perturbed toward "
            f"“{world.names[target]}” within ε = {epsilon:.2f}; they still look like the source. "
            "(Illustration in pixel space; the attack optimises it in the VAE latent space.)"
        )
    return {
        "clean": (_uint8(src.images), list(src.captions)),
        "poisoned": (_uint8(pois), list(src.captions)),
        "note": note,
    }


def estimate_seconds(plan: PoisonPlan, device: str = "cpu", n_per_concept: int = 64) -> float:
    """Rough wall time: fine-tune steps × batch ÷ measured throughput + evaluation sampling.

    Throughput from shared/SCIENCE.md (CPU ~150 img/s at 16 px, one H200 ~2,700 img/s).
    """
    dev = "cuda" if str(device).startswith("cuda") else "cpu"
    train = plan.steps * plan.batch / THROUGHPUT[dev]
    n_eval = plan.n_concepts * 8
    sample = SAMPLING_S_PER_128[dev] * n_eval / 128
    return float(train + sample + 5.0)


def world_for(n_concepts: int) -> World:
    """The concept world with ``n_concepts`` concepts (default image size and seed)."""
    return World(WorldConfig(n_concepts=n_concepts))
