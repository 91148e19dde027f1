"""Results of the real sweep: one level's metrics from CLIP zero-shot scores (the demo-pack files
are written by core.results.write.write_pack_files, shared with the mini-model sweep)."""

from __future__ import annotations

from typing import Any

import numpy as np


def level_record(
    c_p: int,
    seed: int,
    plan: tuple[list[int], dict[int, int]],
    relation: np.ndarray,
    concept: np.ndarray,
    z: dict[str, np.ndarray],
) -> dict[str, Any]:
    """Implosion metrics of one level from CLIP zero-shot scores ``z`` of the generations
    (``pred``, ``cosine`` (N, K), ``incoherence`` (N,)); ``concept`` (N,) is each image's prompt
    concept. Means over concepts; None where a group is empty (e.g. acc_poisoned at C_P = 0)."""
    order, targets = plan
    k = relation.shape[0]
    pois = order[:c_p]
    own = [concept == j for j in range(k)]
    acc = np.array([np.mean(z["pred"][m] == j) for j, m in enumerate(own)])
    align = np.array([np.mean(z["cosine"][m, j]) for j, m in enumerate(own)])
    incoh = np.array([np.mean(z["incoherence"][m]) for m in own])
    unp = [j for j in range(k) if j not in pois]
    related = [j for j in unp if pois and relation[j, pois].any()]
    unrelated = [j for j in unp if pois and j not in related]

    def mean(values: np.ndarray | list[float], ix: list[int] | None = None) -> float | None:
        v = np.asarray(values, dtype=float)[ix] if ix is not None else np.asarray(values)
        return float(v.mean()) if v.size else None

    return {
        "c_p": c_p,
        "seed": seed,
        "acc_unpoisoned": mean(acc, unp),
        "acc_poisoned": mean(acc, pois),
        "attack_success": mean([np.mean(z["pred"][own[a]] == targets[a]) for a in pois]),
        "alignment_unpoisoned": mean(align, unp),
        "incoherence": mean(z["incoherence"]),
        "incoherence_unpoisoned": mean(incoh, unp),
        "acc_related": mean(acc, related),
        "acc_unrelated": mean(acc, unrelated),
        "per_concept_acc": [round(float(v), 4) for v in acc],
    }
