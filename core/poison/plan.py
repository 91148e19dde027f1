"""The poisoning plan: who is poisoned at (C_P, seed), with which targets, and which unpoisoned
concepts are related or unrelated; plus the one poison config and the previews of Poison setup.

One definition serves the mini sweep, the real-model sweep, training probes, the pack reader and
Poison setup: for each seed a random order of all K concepts and a random target B ≠ A per
concept are drawn once (:func:`poisoning_plan`); level C_P poisons the first C_P concepts of that
order (nested sets). A run on chosen concepts replaces the order by the chosen list (its prefix
is the poisoned set) and may fix targets explicitly. Unpoisoned concepts are *related* when they
share enough with some poisoned concept (mini world: ≥ 2 attribute words, ``World.relation``;
real datasets: a shared keyword or co-occurring caption, a boolean relation matrix) and
*unrelated* otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from core.world import World, WorldConfig

Method = Literal["dirty-label", "nightshade"]
METHODS: tuple[str, ...] = ("dirty-label", "nightshade")
TargetRule = Literal["random", "nearest", "farthest"]
TARGET_RULES: tuple[str, ...] = ("random", "nearest", "farthest")
# Mini world: an unpoisoned concept is related to a poisoned one when they share ≥ 2 of the three
# attribute words (size, colour, shape); see docs/science.md.
RELATED_MIN_SHARED = 2


def poisoning_plan(
    n_concepts: int,
    seed: int,
    concepts: Sequence[int] | None = None,
    targets: dict[int, int] | None = None,
) -> tuple[list[int], dict[int, int]]:
    """The poisoning order and a target B ≠ A for every concept A, fixed per seed.

    Returns (order, targets): by default order is the seed's random permutation of 0..K-1 and
    targets a random other concept per A (rng seeded with [seed, 1234]); level C_P poisons
    order[:C_P]. ``concepts``: a chosen order instead (a run on named concepts; ids checked with
    :func:`check_concepts`); ``targets``: explicit {A: B} overriding the seed's for those A.
    """
    if n_concepts < 2:
        raise ValueError(
            f"n_concepts must be ≥ 2 (a target needs another concept), got {n_concepts}"
        )
    rng = np.random.default_rng([seed, 1234])
    order = [int(x) for x in rng.permutation(n_concepts)]
    tmap = {}
    for a in range(n_concepts):
        b = int(rng.integers(n_concepts - 1))
        tmap[a] = b + (b >= a)
    if concepts is not None:
        order = list(check_concepts(concepts, n_concepts))
    if targets:
        given = {int(a): int(b) for a, b in targets.items()}
        check_concepts(list(given), n_concepts, "targets")
        bad = sorted({b for b in given.values() if not 0 <= b < n_concepts})
        if bad:
            raise ValueError(f"targets: ids {bad} are not concepts 0..{n_concepts - 1}")
        same = [a for a, b in given.items() if a == b]
        if same:
            raise ValueError(f"targets: concepts {same} target themselves; choose another target")
        tmap.update(given)
    return order, tmap


def check_concepts(
    concepts: Sequence[int], n_concepts: int, field: str = "concepts"
) -> tuple[int, ...]:
    """Concept ids as a tuple, checked once: ints, distinct, within 0..K-1 (ValueError names
    ``field`` and the fix)."""
    ids = []
    for c in concepts:
        if isinstance(c, bool) or not isinstance(c, int | np.integer):
            raise ValueError(f"{field}: {c!r} is not a concept id; give ids 0..{n_concepts - 1}")
        ids.append(int(c))
    dup = sorted({c for c in ids if ids.count(c) > 1})
    if dup:
        raise ValueError(f"{field}: ids {dup} are listed twice; list each concept once")
    bad = [c for c in ids if not 0 <= c < n_concepts]
    if bad:
        raise ValueError(
            f"{field}: ids {bad} are not concepts of this model; valid ids are 0..{n_concepts - 1}"
        )
    return tuple(ids)


def split_unpoisoned(
    n_concepts: int,
    poisoned: Sequence[int],
    relation: np.ndarray | None = None,
    related_min: int = RELATED_MIN_SHARED,
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(related, unrelated) unpoisoned concept ids, ascending.

    ``relation``: (K, K) ints or bools; j is related when ``relation[j, i] >= related_min`` for
    some poisoned i (pass a boolean matrix with ``related_min=1`` for real datasets). Without a
    relation every unpoisoned concept is unrelated."""
    pois = set(int(i) for i in poisoned)
    unp = [j for j in range(n_concepts) if j not in pois]
    if relation is None or not pois:
        return (), tuple(unp)
    rel = np.asarray(relation).astype(np.int64)
    if rel.shape != (n_concepts, n_concepts):
        raise ValueError(f"relation: shape {rel.shape} does not match K={n_concepts} concepts")
    cols = sorted(pois)
    related = tuple(j for j in unp if int(rel[j, cols].max()) >= related_min)
    return related, tuple(j for j in unp if j not in related)


@dataclass(frozen=True)
class PoisonLevel:
    """Who is poisoned at (C_P, seed): ``poisoned`` (in poisoning order), ``targets`` {A: B} for
    each poisoned A, and the unpoisoned concepts split into ``related`` / ``unrelated``."""

    c_p: int
    seed: int
    poisoned: tuple[int, ...]
    targets: dict[int, int]
    related: tuple[int, ...]
    unrelated: tuple[int, ...]

    @property
    def unpoisoned(self) -> tuple[int, ...]:
        return tuple(sorted((*self.related, *self.unrelated)))

    def groups(self) -> dict[str, list[int]]:
        """{"poisoned", "related", "unrelated"}: concept id lists (what pages group by)."""
        return {
            "poisoned": list(self.poisoned),
            "related": list(self.related),
            "unrelated": list(self.unrelated),
        }


def plan_level(
    n_concepts: int,
    c_p: int,
    seed: int,
    *,
    relation: np.ndarray | None = None,
    related_min: int = RELATED_MIN_SHARED,
    order: Sequence[int] | None = None,
    targets: dict[int, int] | None = None,
) -> PoisonLevel:
    """The one answer to "who is poisoned at (C_P, seed)".

    Default: the first C_P of the seed's random order, each with the seed's random target
    (:func:`poisoning_plan`: exactly the sweep's level). ``order``: a chosen poisoning order
    (a run on named concepts; C_P ≤ len(order)); ``targets``: explicit {A: B} overriding the
    seed's targets for the concepts it names. ``relation`` splits the rest (:func:`split_unpoisoned`).
    """
    use, tmap = poisoning_plan(n_concepts, seed, order, targets)
    if not 0 <= c_p <= len(use):
        what = "the chosen concepts" if order is not None else "K"
        raise ValueError(f"C_P must be in [0, {len(use)}] ({what}), got {c_p}")
    pois = tuple(use[:c_p])
    related, unrelated = split_unpoisoned(n_concepts, pois, relation, related_min)
    return PoisonLevel(c_p, seed, pois, {a: tmap[a] for a in pois}, related, unrelated)


def choose_targets(
    world: World, concepts: Sequence[int], rule: str = "random", seed: int = 0
) -> dict[int, int]:
    """Target B ≠ A for every poisoned A by a rule. random: the seed's plan targets
    (:func:`poisoning_plan`, the same as the sweep); nearest / farthest: most / fewest attribute
    words shared (``World.relation``), ties broken with ``seed``."""
    if rule not in TARGET_RULES:
        raise ValueError(f"targets: rule {rule!r}; choose one of {', '.join(TARGET_RULES)}")
    if rule == "random":
        _, t = poisoning_plan(world.n_concepts, seed)
        return {int(a): t[int(a)] for a in concepts}
    rng = np.random.default_rng([seed, 4321])
    out = {}
    for a in concepts:
        others = np.array([b for b in range(world.n_concepts) if b != a])
        shared = world.relation[a, others]
        best = shared.max() if rule == "nearest" else shared.min()
        out[int(a)] = int(rng.choice(others[shared == best]))
    return out


@dataclass(frozen=True)
class PoisonConfig:
    """What to poison and how.

    concepts: ids of the poisoned concepts A (non-empty, distinct).
    targets: a rule (random / nearest / farthest by shared attributes) or explicit {A: B}.
    budget: poison pairs per concept: an int count ≥ 1, or a float ratio of A's clean pairs.
    mode: "add" keeps A's clean pairs (conflicting poison); "substitute" replaces that many.
    epsilon: Nightshade L∞ bound in [-1, 1] pixel units (0 < ε ≤ 0.5); steps: PGD steps.
    """

    concepts: tuple[int, ...]
    method: Method = "dirty-label"
    targets: TargetRule | tuple[tuple[int, int], ...] = "random"
    budget: int | float = 1.0
    mode: Literal["add", "substitute"] = "add"
    epsilon: float = 16 / 255
    steps: int = 60
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {list(METHODS)}, got {self.method!r}")
        if self.mode not in ("add", "substitute"):
            raise ValueError(f"mode must be 'add' or 'substitute', got {self.mode!r}")
        if isinstance(self.targets, str) and self.targets not in TARGET_RULES:
            raise ValueError(
                f"targets must be one of {list(TARGET_RULES)} or explicit pairs, got {self.targets!r}"
            )
        if len(set(self.concepts)) != len(self.concepts):
            raise ValueError(
                f"concepts: duplicates in {list(self.concepts)}; list each concept once"
            )
        if (
            isinstance(self.budget, bool)
            or not isinstance(self.budget, int | float)
            or self.budget <= 0
        ):
            raise ValueError(f"budget must be a positive count or ratio, got {self.budget!r}")
        if not 0 < self.epsilon <= 0.5:
            raise ValueError(
                f"epsilon must be in (0, 0.5] (pixel units of [-1, 1]), got {self.epsilon}"
            )
        if self.steps < 1:
            raise ValueError(f"steps must be ≥ 1, got {self.steps}")

    def validate(self, world: World) -> None:
        """Checks that need the world (concept ids, explicit targets)."""
        k = world.n_concepts
        if not self.concepts:
            raise ValueError("concepts: empty selection; choose at least one concept to poison")
        if len(self.concepts) > k:
            raise ValueError(f"concepts: C_P={len(self.concepts)} exceeds K={k}")
        bad = [c for c in self.concepts if not 0 <= c < k]
        if bad:
            raise ValueError(f"concepts: unknown concept ids {bad}; valid ids are 0..{k - 1}")
        if not isinstance(self.targets, str):
            tmap = dict(self.targets)
            for a, b in tmap.items():
                if b == a:
                    raise ValueError(
                        f"targets: concept {world.names[a]!r} targets itself; pick another target"
                    )
                if not 0 <= b < k:
                    raise ValueError(f"targets: unknown target id {b}; valid ids are 0..{k - 1}")
            missing = [a for a in self.concepts if a not in tmap]
            if missing:
                raise ValueError(f"targets: no target given for concepts {missing}")


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


def world_for(n_concepts: int) -> World:
    """The concept world with ``n_concepts`` concepts (default image size and seed)."""
    return World(WorldConfig(n_concepts=n_concepts))


# Largest seed: fine-tunes derive torch seeds as seed · 1000 + C_P, times 100,003, which must
# stay below 2⁶³ (torch.manual_seed); 2³¹ − 1 leaves that with room to spare.
MAX_SEED = 2**31 - 1


def check_levels_and_seeds(levels: tuple[int, ...], seeds: tuple[int, ...], example: str) -> None:
    """The sweep grid every sweep config shares: C_P levels distinct, ascending, ≥ 0; seeds
    non-empty, distinct, ≥ 0. ValueError naming the field; ``example`` shows valid levels."""
    if not levels:
        raise ValueError(f"levels: empty; give C_P values such as {example}")
    if list(levels) != sorted(set(levels)) or levels[0] < 0:
        raise ValueError(f"levels must be distinct, ascending and ≥ 0, got {list(levels)}")
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be non-empty and distinct, got {list(seeds)}")
    if min(seeds) < 0:
        raise ValueError(f"seeds must be ≥ 0 (they seed numpy/torch), got {list(seeds)}")
    if max(seeds) > MAX_SEED:
        raise ValueError(
            f"seeds must be ≤ {MAX_SEED} (2³¹ − 1; derived torch seeds must fit 64 bits), "
            f"got {max(seeds)}"
        )
