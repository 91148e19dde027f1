"""Attacked vs defended: AD and unpoisoned accuracy per C_P, and how much of the gap is recovered.

Both packs are ordinary sweep results; records are matched on (C_P, seed) so the comparison uses
only the seeds both ran. The *implosion gap* at level c is ``acc_unpoisoned(C_P=0) −
acc_unpoisoned_attacked(c)``; the defense *recovers* ``(acc_defended(c) − acc_attacked(c)) / gap``
of it. Targets: AD lower at every C_P ≥ 4, recovery ≥ ½ at the largest C_P that still
has unpoisoned concepts.

Only a pack and its own defended sweep are compared (:func:`check_pair`): same model, K and
concepts, same sweep settings but the defense, seeds the attacked pack ran, and the same
poisoning plan per seed. Two unrelated packs would otherwise give a meaningless "recovery".
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


# Sweep-config fields a defended sweep may change: the defense itself and subsets of the grid.
_MAY_DIFFER = {"defense", "levels", "seeds", "preset"}


def _sweep_fields(pack: Pack) -> dict[str, Any]:
    """The pack's sweep config as given (``sweep_config``; older packs: the top-level fields
    whose meaning did not change), without the fields a defended sweep may change."""
    cfg = pack.config
    given = cfg.get("sweep_config")
    if isinstance(given, dict):
        return {k: v for k, v in given.items() if k not in _MAY_DIFFER}
    skip = _MAY_DIFFER | {"concepts", "targets", "plans", "poison_order", "sweep_config"}
    skip |= {"ad_scale", "ad_calibration"}
    return {k: v for k, v in cfg.items() if k not in skip}


def pair_mismatch(attacked: Pack, defended: Pack) -> list[str]:
    """What keeps ``defended`` from being a defended sweep of ``attacked`` (empty: they belong
    together): the defense, model, K and concept names, the other sweep settings, the seeds and
    each shared seed's poisoning plan (order and targets)."""
    why: list[str] = []
    if attacked.config.get("defense"):
        why.append(f"{attacked.root} is itself a defended sweep")
    if not defended.config.get("defense"):
        why.append(f"{defended.root} is not a defended sweep (its config has no defense)")
    a_cfg, d_cfg = attacked.config, defended.config
    if a_cfg.get("model") != d_cfg.get("model"):
        why.append(f"model differs ({a_cfg.get('model') or 'shipped base'} vs "
                   f"{d_cfg.get('model') or 'shipped base'})")  # fmt: skip
    ka, kd = len(attacked.concepts), len(defended.concepts)
    if ka != kd:
        why.append(f"K differs ({ka} vs {kd} concepts)")
    elif attacked.concepts != defended.concepts:
        why.append("concept names differ")
    fa, fd = _sweep_fields(attacked), _sweep_fields(defended)
    differ = sorted(k for k in set(fa) | set(fd) if fa.get(k) != fd.get(k))
    if differ and not any(w.startswith("model") for w in why):
        why.append(f"sweep settings differ: {', '.join(differ)}")
    seeds_a = {int(s) for s in a_cfg.get("seeds", [])}
    seeds_d = {int(s) for s in d_cfg.get("seeds", [])}
    if seeds_d - seeds_a:
        why.append(f"seeds {sorted(seeds_d - seeds_a)} were not run by the attacked pack")
    plans_a, plans_d = a_cfg.get("plans") or {}, d_cfg.get("plans") or {}
    for s in sorted(seeds_a & seeds_d):
        pa, pd = plans_a.get(str(s)), plans_d.get(str(s))
        if pa is not None and pd is not None and pa != pd:
            why.append(f"the poisoning plan of seed {s} differs (order or targets)")
            break
    return why


def check_pair(attacked: Pack, defended: Pack) -> None:
    """ValueError naming what differs unless ``defended`` is a defended sweep of ``attacked``."""
    why = pair_mismatch(attacked, defended)
    if why:
        raise ValueError(
            f"defended: {defended.root} is not a defended sweep of {attacked.root}: "
            f"{'; '.join(why)}. Compare a pack with its own defended sweep "
            f"(implosion defend --pack {attacked.root} --sweep)"
        )


def compare(attacked: Pack, defended: Pack) -> Comparison:
    """Match records on (C_P, seed) and summarise (see module docstring); ValueError if the two
    packs do not belong together (:func:`check_pair`)."""
    check_pair(attacked, defended)
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
