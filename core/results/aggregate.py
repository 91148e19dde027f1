"""Aggregation of a pack's records over seeds: the one place for means, 95 % t-intervals and
per-concept accuracy drops.

A record is one (C_P, seed) level (:class:`core.results.schema.LevelRecord`). Seeds are
independent replicates, so a level's value is the mean over its seeds with a Student-t interval
(``mean ± t₀.₉₇₅(n−1) · s / √n``, s the sample standard deviation; the interval is the mean
itself when n = 1). Values that are missing (None) or not finite are left out. Differences
against the clean model are paired by seed: seed s at C_P is compared with seed s at C_P 0.

Per concept, each seed poisons its own set, so a per-concept drop is averaged only over the
seeds in which that concept plays the role it is shown in (``include``); averaging across seeds
where it was poisoned and seeds where it was not would mix two different questions.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import numpy as np


def concept_drop(
    records: Sequence[Mapping[str, Any]],
    k: int,
    c_p: int,
    include: Callable[[int], Collection[int] | None] | None = None,
) -> np.ndarray | None:
    """Per concept, how much judged accuracy fell from C_P = 0 to ``c_p``: ``per_concept_acc``
    at 0 minus at ``c_p`` of the same seed, averaged over seeds.

    ``include(seed)``: the concept ids that count in that seed (None: skip the seed); default
    every concept of every seed. Returns (K,) float64 (positive = the prompt got worse; NaN for a
    concept no seed counts), or None when no seed has per-concept accuracy at both levels."""
    base = {
        int(r["seed"]): np.asarray(r["per_concept_acc"], dtype=np.float64)
        for r in records
        if int(r["c_p"]) == 0 and len(r.get("per_concept_acc") or []) == k
    }
    diffs, masks = [], []
    for r in records:
        seed = int(r["seed"])
        if int(r["c_p"]) != int(c_p) or seed not in base:
            continue
        if len(r.get("per_concept_acc") or []) != k:
            continue
        mask = np.ones(k, dtype=bool)
        if include is not None:
            ids = include(seed)
            if ids is None:
                continue
            mask[:] = False
            mask[list(ids)] = True
        diffs.append(base[seed] - np.asarray(r["per_concept_acc"], dtype=np.float64))
        masks.append(mask)
    if not diffs:
        return None
    d, m = np.asarray(diffs), np.asarray(masks)
    n = m.sum(axis=0)
    total = np.where(m, d, 0.0).sum(axis=0)
    return np.where(n > 0, total / np.maximum(n, 1), np.nan)


__all__ = ["concept_drop"]
