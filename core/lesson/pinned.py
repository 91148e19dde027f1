"""The pinned prompts: one set of rows the room follows from the clean model to implosion.

A pack's generated images come from one seed (the first of ``config["seeds"]``, the seed its
grids were written for), and each seed poisons its own concepts, so every choice here is made in
that seed's plan (:meth:`core.results.pack.Pack.seed_plan`, :meth:`~core.results.pack.Pack.groups`
with that seed) and from that seed's own per-concept accuracies, never from means over seeds whose
poisoned sets differ.

The rows are chosen once per pack, not per level:

* ``poisoned``: the first concept the attack poisons (poisoned at every C_P > 0);
* ``related`` / ``unrelated``: concepts that stay unpoisoned up to :func:`last_open_level` and share
  ≥ 2 attribute words (related) or fewer (unrelated) with that first poisoned concept, the ones
  whose accuracy fell most by :func:`last_open_level` first (they are what implosion looks like).

:func:`row_roles` names each row's role *at a given level* (a concept unrelated to the first
poison may become related to a later one): the row stays, its mark changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from core.results.pack import Pack

Role = Literal["poisoned", "related", "unrelated"]
ROLES: tuple[Role, ...] = ("poisoned", "related", "unrelated")
MARK: dict[str, str] = {"poisoned": "× ", "related": "≈ ", "unrelated": ""}
PER_GROUP = 2  # related and unrelated rows (one poisoned row): five rows fit a projector


@dataclass(frozen=True)
class PinnedPrompts:
    """The rows a lesson follows across levels (concept ids into ``Pack.concepts``).

    ``seed``: the seed whose plan and images they come from; ``last_open``: the highest C_P
    level at which that seed still has unpoisoned concepts (where ▶ Play stops); ``role``: each
    row's role relative to the first poisoned concept (the grouping at the first poisoned level).
    """

    seed: int
    ids: tuple[int, ...]
    role: tuple[Role, ...]
    names: tuple[str, ...]
    last_open: int

    def to_dict(self) -> dict[str, object]:
        return {
            "seed": self.seed,
            "ids": list(self.ids),
            "role": list(self.role),
            "names": list(self.names),
            "last_open": self.last_open,
        }


def seed_order(pack: Pack, seed: int) -> list[int]:
    """Concept ids in the order ``seed`` poisons them (its plan; [] when the pack has none)."""
    plan = pack.seed_plan(seed)
    return list(plan[0]) if plan is not None else []


def last_open_level(pack: Pack, levels: list[int] | None = None) -> int:
    """The highest level (of ``levels``, default the pack's) at which the shown seed still has
    an unpoisoned concept; the lowest level when none has (ValueError on no levels)."""
    levels = sorted(pack.levels if levels is None else levels)
    if not levels:
        raise ValueError("levels: the pack has no C_P level; run a sweep with --levels 0 …")
    k = len(pack.concepts)
    n_order = len(seed_order(pack, pack.shown_seed)) or k
    open_ = [c for c in levels if min(c, n_order) < k]
    return open_[-1] if open_ else levels[0]


def play_levels(pack: Pack, levels: list[int]) -> list[int]:
    """The levels ▶ Play steps through: up to :func:`last_open_level`, where "even unpoisoned
    prompts fail" can still be shown."""
    if not levels:
        return []
    last = last_open_level(pack, levels)
    return [c for c in sorted(levels) if c <= last]


def seed_drop(pack: Pack, c_p: int, seed: int | None = None) -> np.ndarray | None:
    """(K,) float64: judged accuracy of each concept at C_P 0 minus at ``c_p``, in one seed's
    own records (default the shown seed); None when that seed lacks per-concept accuracy."""
    seed = pack.shown_seed if seed is None else seed
    k = len(pack.concepts)
    acc = {
        int(r["c_p"]): r["per_concept_acc"]
        for r in pack.records
        if int(r["seed"]) == seed and len(r.get("per_concept_acc") or []) == k
    }
    if 0 not in acc or int(c_p) not in acc:
        return None
    return np.asarray(acc[0], dtype=np.float64) - np.asarray(acc[int(c_p)], dtype=np.float64)


def pinned_prompts(pack: Pack, per_group: int = PER_GROUP) -> PinnedPrompts:
    """Choose the pinned rows of ``pack`` once (see module docstring)."""
    seed = pack.shown_seed
    order = seed_order(pack, seed)
    k = len(pack.concepts)
    last = last_open_level(pack)
    first = order[0] if order and max(pack.levels, default=0) > 0 else None
    survivors = [j for j in range(k) if j not in order[:last] and j != first]
    drop = seed_drop(pack, last, seed)
    survivors.sort(key=lambda j: (-(drop[j] if drop is not None else 0.0), j))
    if first is None:
        related: list[int] = []
        unrelated = survivors
    else:
        # related to the first poisoned concept: the grouping at C_P 1 of this seed's plan
        near = set(pack.groups(1, seed)["related"])
        related = [j for j in survivors if j in near]
        unrelated = [j for j in survivors if j not in near]
    # one group short (few concepts survive): the other fills the rows
    n_rel = min(len(related), max(per_group, 2 * per_group - len(unrelated)))
    n_unrel = min(len(unrelated), 2 * per_group - n_rel)
    ids = ([first] if first is not None else []) + related[:n_rel] + unrelated[:n_unrel]
    rel_role: list[Role] = ["related"]
    unrel_role: list[Role] = ["unrelated"]
    roles: list[Role] = ["poisoned"] if first is not None else []
    roles += rel_role * n_rel + unrel_role * n_unrel
    return PinnedPrompts(
        seed=seed,
        ids=tuple(ids),
        role=tuple(roles),
        names=tuple(pack.concepts[i] for i in ids),
        last_open=last,
    )


def row_roles(pack: Pack, pinned: PinnedPrompts, c_p: int) -> tuple[Role, ...]:
    """Each pinned row's role at level ``c_p`` in the plan of the seed the rows come from."""
    groups = pack.groups(c_p, pinned.seed)
    where = {i: g for g in ROLES for i in groups.get(g, [])}
    return tuple(where.get(i, "unrelated") for i in pinned.ids)


def row_labels(pack: Pack, pinned: PinnedPrompts, c_p: int) -> tuple[str, ...]:
    """Row labels at ``c_p``: ``× `` poisoned, ``≈ `` related, plain unrelated, then the name."""
    return tuple(MARK[r] + n for r, n in zip(row_roles(pack, pinned, c_p), pinned.names))


def pinned_images(
    gens: dict[int, np.ndarray], pinned: PinnedPrompts, c_p: int, samples: int = 2
) -> np.ndarray:
    """(R, 2·samples, S, S, 3) uint8: for each pinned row, ``samples`` clean images (C_P 0) then
    the same sampling seeds at ``c_p`` (at ``c_p`` 0: 2·samples clean images, nothing repeated).
    KeyError naming the level when one is missing."""
    for c in (0, c_p):
        if c not in gens:
            raise KeyError(f"c_p: this pack has no generated images for C_P {c}")
    ids = list(pinned.ids)
    if c_p == 0:
        return gens[0][ids, : min(2 * samples, gens[0].shape[1])]
    m = min(samples, gens[0].shape[1], gens[c_p].shape[1])
    return np.concatenate([gens[0][ids, :m], gens[c_p][ids, :m]], axis=1)
