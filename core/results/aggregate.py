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
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from core.results.schema import SUMMARY_METRICS, LevelSummary, SummaryRow

Records = Sequence[Mapping[str, Any]]


@dataclass(frozen=True)
class Interval:
    """Mean and 95 % t-interval of ``n`` values (``low == high == mean`` when n = 1)."""

    mean: float
    low: float
    high: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def t_interval(values: Sequence[float] | np.ndarray) -> Interval:
    """Mean and 95 % Student-t interval of the finite ``values`` (ValueError if none)."""
    from scipy import stats

    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        raise ValueError("t_interval: no finite values")
    mean = float(v.mean())
    half = (
        float(stats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size))
        if v.size > 1
        else 0.0
    )
    return Interval(mean, mean - half, mean + half, int(v.size))


def by_seed(records: Records, c_p: int, key: str) -> dict[int, float]:
    """{seed: value} of ``key`` at level ``c_p`` (missing and non-finite values left out)."""
    return {
        int(r["seed"]): float(r[key])
        for r in records
        if int(r["c_p"]) == int(c_p) and r.get(key) is not None and np.isfinite(r[key])
    }


def levels_of(records: Records) -> list[int]:
    """The C_P levels the records cover, ascending."""
    return sorted({int(r["c_p"]) for r in records})


def level_means(records: Records, key: str) -> dict[int, float]:
    """{C_P: mean over seeds of ``key``} for the levels where some seed has a value."""
    out = {}
    for c in levels_of(records):
        v = list(by_seed(records, c, key).values())
        if v:
            out[c] = float(np.mean(v))
    return out


def interval_at(records: Records, c_p: int, key: str) -> Interval | None:
    """Mean and t-interval over seeds of ``key`` at ``c_p`` (None without values)."""
    v = list(by_seed(records, c_p, key).values())
    return t_interval(v) if v else None


def paired_ratio(records: Records, c_p: int, key: str) -> Interval | None:
    """Per-seed ratio key(c_p) / key(0) over seeds that have both (clean value > 0)."""
    num, den = by_seed(records, c_p, key), by_seed(records, 0, key)
    r = [num[s] / den[s] for s in sorted(num) if s in den and den[s] > 0]
    return t_interval(r) if r else None


def summarize(records: Records, metrics: Sequence[str] = SUMMARY_METRICS) -> dict[str, SummaryRow]:
    """``results.json["summary"]``: per metric, the levels with values and their mean and 95 %
    t-interval over seeds (:class:`core.results.schema.SummaryRow`)."""
    levels = levels_of(records)
    out: dict[str, SummaryRow] = {}
    for m in metrics:
        row = SummaryRow(c_p=[], mean=[], ci_low=[], ci_high=[], n=[])
        for c in levels:
            iv = interval_at(records, c, m)
            if iv is None:
                continue
            row["c_p"].append(c)
            row["mean"].append(iv.mean)
            row["ci_low"].append(iv.low)
            row["ci_high"].append(iv.high)
            row["n"].append(iv.n)
        out[m] = row
    return out


def level_summaries(records: Records) -> list[LevelSummary]:
    """Per level (ascending C_P): means over seeds of the records' metrics (None where no seed
    has a value): what ``implosion runs show`` prints."""

    def mean(c: int, m: str) -> float | None:
        v = list(by_seed(records, c, m).values())
        return float(np.mean(v)) if v else None

    return [
        LevelSummary(
            c_p=c,
            n_seeds=len({int(r["seed"]) for r in records if int(r["c_p"]) == c}),
            ad=mean(c, "ad"),
            acc_unpoisoned=mean(c, "acc_unpoisoned"),
            acc_poisoned=mean(c, "acc_poisoned"),
            incoherence=mean(c, "incoherence"),
            alignment_unpoisoned=mean(c, "alignment_unpoisoned"),
            attack_success=mean(c, "attack_success"),
        )
        for c in levels_of(records)
    ]


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


__all__ = [
    "Interval",
    "by_seed",
    "concept_drop",
    "interval_at",
    "level_means",
    "level_summaries",
    "levels_of",
    "paired_ratio",
    "summarize",
    "t_interval",
]
