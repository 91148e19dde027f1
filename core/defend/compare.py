"""Attacked vs defended: AD and unpoisoned accuracy per C_P, and how much of the gap is recovered.

Both packs are ordinary sweep results; records are matched on (C_P, seed) so the comparison uses
only the seeds both ran. The *implosion gap* at level c is ``acc_unpoisoned(C_P=0) −
acc_unpoisoned_attacked(c)``; the defense *recovers* ``(acc_defended(c) − acc_attacked(c)) / gap``
of it. Targets (issue 16): AD lower at every C_P ≥ 4, recovery ≥ ½ at the largest C_P that still
has unpoisoned concepts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from core.results.pack import Pack

COMPARED = ("ad", "ad_feature", "ad_structure", "acc_unpoisoned", "acc_poisoned", "incoherence")


@dataclass(frozen=True)
class Comparison:
    """rows: one per C_P both packs ran ({"c_p", "seeds", "<metric>_attacked", "<metric>_defended",
    "defense_removed", "defense_recall", "defense_fpr_measured"}); gap/recovery at ``c_recovery``."""

    rows: list[dict[str, Any]]
    clean_acc: float | None
    c_recovery: int | None
    gap: float | None
    recovered: float | None
    ad_lower_from_4: bool | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "clean_acc": self.clean_acc,
            "c_recovery": self.c_recovery,
            "gap": self.gap,
            "recovered": self.recovered,
            "ad_lower_from_4": self.ad_lower_from_4,
        }


def _mean(records: list[dict[str, Any]], key: str) -> float | None:
    v = [r[key] for r in records if r.get(key) is not None]
    return float(np.mean(v)) if v else None


def compare(attacked: Pack, defended: Pack) -> Comparison:
    """Match records on (C_P, seed) and summarise (see module docstring)."""
    att = {(r["c_p"], r["seed"]): r for r in attacked.records}
    dfd = {(r["c_p"], r["seed"]): r for r in defended.records}
    common = sorted(set(att) & set(dfd))
    if not common:
        raise ValueError(
            f"defended: {defended.root} shares no (C_P, seed) record with {attacked.root}; "
            "is it a defended sweep of this pack?"
        )
    seeds = sorted({s for _, s in common})
    k = len(attacked.concepts)
    rows = []
    for c in sorted({c for c, _ in common}):
        a = [att[(c, s)] for s in seeds if (c, s) in dfd]
        d = [dfd[(c, s)] for s in seeds if (c, s) in dfd]
        row: dict[str, Any] = {"c_p": c, "seeds": [r["seed"] for r in a]}
        for m in COMPARED:
            row[f"{m}_attacked"], row[f"{m}_defended"] = _mean(a, m), _mean(d, m)
        for m in ("defense_removed", "defense_recall", "defense_fpr_measured", "n_pairs_before"):
            row[m] = _mean(d, m)
        rows.append(row)
    # clean accuracy: the attacked pack's C_P = 0 on the same seeds (every seed if needed)
    clean = [att[(0, s)] for s in seeds if (0, s) in att] or [
        r for r in attacked.records if r["c_p"] == 0
    ]
    clean_acc = _mean(clean, "acc_unpoisoned")
    with_unpoisoned = [
        r for r in rows if 0 < r["c_p"] < k and r["acc_unpoisoned_defended"] is not None
    ]
    c_rec = max((r["c_p"] for r in with_unpoisoned), default=None)
    gap = recovered = None
    if c_rec is not None and clean_acc is not None:
        r = next(r for r in rows if r["c_p"] == c_rec)
        gap = clean_acc - r["acc_unpoisoned_attacked"]
        if gap > 0:
            recovered = (r["acc_unpoisoned_defended"] - r["acc_unpoisoned_attacked"]) / gap
    ge4 = [r for r in rows if r["c_p"] >= 4]
    lower = all(r["ad_defended"] < r["ad_attacked"] for r in ge4) if ge4 else None
    return Comparison(rows, clean_acc, c_rec, gap, recovered, lower)
