"""Evaluate detectors on a pack: ROC, AUC and recall at 1 % / 5 % FPR per detector × method × C_P.

``defense.json`` in the pack holds the result ({"settings", "rows", "metadata"}); one row per
(detector, method, c_p) with ``auc``, ``recall_at_1pct_fpr``, ``recall_at_5pct_fpr``, counts,
seconds and the thinned ROC curve (``fpr``, ``tpr``). The pack's own ``defense.json`` is a cache:
settings it covers are answered from it, others recompute it (replaced atomically). A file the
user named with ``out`` is never overwritten.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.defend.config import METHODS, REPORT_DETECTORS
from core.defend.detectors import score
from core.defend.pairs import (
    build_nightshade_cache,
    level_pairs,
    nightshade_file,
    reconstruction_level,
)
from core.defend.reconstruction import RECON, Unavailable
from core.defend.roc import roc
from core.io import atomic_write_json, run_metadata
from core.results.pack import Pack
from core.results.validate import check_defense, exists, read_json

DEFENSE = "defense.json"


@dataclass(frozen=True)
class DefenseReport:
    """Rows of a pack's detector evaluation (see module docstring) and the settings that made them."""

    settings: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"settings": self.settings, "rows": self.rows, "metadata": self.metadata}

    def table(self) -> list[dict[str, Any]]:
        """Rows without the curves (for printing)."""
        return [{k: v for k, v in r.items() if k not in ("fpr", "tpr")} for r in self.rows]

    def best(self, method: str) -> dict[str, Any] | None:
        """The detector with the highest mean AUC for ``method`` over C_P (ties broken by the worst
        level; ``tied`` lists every detector within 0.005 on both, so none is named alone)."""
        rows = [r for r in self.rows if r["method"] == method]
        if not rows:
            return None
        by_det: dict[str, list[float]] = {}
        for r in rows:
            by_det.setdefault(r["detector"], []).append(r["auc"])

        def score(d: str) -> tuple[float, float]:
            return (sum(by_det[d]) / len(by_det[d]), min(by_det[d]))

        det = max(by_det, key=score)  # mean AUC, then the worst level
        # within 0.005 of the best on both: equal at the two decimals every page shows
        tied = [d for d in by_det if all(abs(a - b) < 0.005 for a, b in zip(score(d), score(det)))]
        mean_auc, min_auc = score(det)
        return {"detector": det, "tied": tied, "mean_auc": mean_auc, "min_auc": min_auc}


def check_choice(values: Sequence[str], allowed: Sequence[str], field: str) -> tuple[str, ...]:
    bad = [v for v in values if v not in allowed]
    if bad or not values:
        raise ValueError(
            f"{field}: unknown or empty {bad or list(values)}; choose from {list(allowed)}"
        )
    return tuple(values)


def scorable_levels(pack: Pack) -> list[int]:
    """The pack's levels whose training pairs hold both poisoned and clean pairs (a ROC needs
    both): C_P > 0, and below K when poisons replace the poisoned concepts' clean pairs (at C_P = K
    every pair is poisoned)."""
    k = len(pack.concepts)
    replace = pack.config.get("poison_mode") == "replace"
    return [c for c in pack.levels if c > 0 and not (replace and c >= k)]


def evaluate_pack(
    pack: Pack,
    detectors: Sequence[str] = REPORT_DETECTORS,
    methods: Sequence[str] = ("dirty-label",),
    levels: Sequence[int] | None = None,
    epsilon: float = 16 / 255,
    steps: int = 60,
    on_progress: Callable[[int, int, str], None] | None = None,
) -> DefenseReport:
    """ROC per detector × method × C_P over the pack's poisoned levels (C_P > 0 by default).

    Nightshade rows need the pack's model (builds and caches the poisons on first use)."""
    detectors = check_choice(detectors, REPORT_DETECTORS, "detectors")
    methods = check_choice(methods, METHODS, "methods")
    lv = scorable_levels(pack) if levels is None else list(levels)
    missing = [c for c in lv if c not in pack.levels]
    if missing:
        raise ValueError(f"levels: {missing} not in this pack (it has {pack.levels})")
    unscorable = [c for c in lv if c not in scorable_levels(pack)]
    if unscorable:
        raise ValueError(
            f"levels: C_P {unscorable} have no clean pairs or no poisoned pairs, so no ROC; "
            f"choose from {scorable_levels(pack)}"
        )
    if not lv:
        raise ValueError("levels: none with poison (C_P > 0); a ROC needs poisoned pairs")
    check_attack(epsilon, steps)
    settings = evaluate_settings(pack, detectors, methods, lv, epsilon, steps)
    if "nightshade" in methods:
        build_nightshade_cache(pack, epsilon, steps)
    rows: list[dict[str, Any]] = []
    unavailable: dict[str, str] = {}
    total, done = len(lv) * len(methods) * len(detectors), 0
    for method in methods:
        for c in lv:
            kw = {"epsilon": epsilon, "steps": steps} if method == "nightshade" else {}
            p = level_pairs(pack, c, method, **kw)
            for det in detectors:
                if on_progress is not None:
                    on_progress(done, total, f"{det} · {method} · C_P={c}")
                done += 1
                if det in unavailable:
                    continue
                t0 = time.perf_counter()
                if det == RECON:
                    try:
                        s, truth = reconstruction_level(pack, c, method, epsilon, steps)
                    except Unavailable as e:
                        unavailable[det] = str(e)
                        continue
                else:
                    s, truth = score(det, p.image, p.text, p.caption_concept), p.poisoned
                r = roc(s, truth)
                rows.append(
                    {
                        "detector": det,
                        "method": method,
                        "c_p": c,
                        "n": len(p),
                        **r.to_dict(),
                        "seconds": round(time.perf_counter() - t0, 4),
                    }
                )
    if unavailable:
        settings = {**settings, "unavailable": unavailable}
    return DefenseReport(settings, rows, {**run_metadata(None), "pack": str(pack.root)})


def check_attack(epsilon: float, steps: int) -> None:
    """The Nightshade-style attack's settings: ``epsilon`` (L∞ bound on [0, 1] pixels) finite in
    (0, 1], ``steps`` (PGD steps) an integer in [1, 100000]; ValueError naming the field."""
    if not isinstance(epsilon, int | float) or not math.isfinite(epsilon) or not 0 < epsilon <= 1:
        raise ValueError(
            f"epsilon: {epsilon} is not an L∞ bound in (0, 1] on [0, 1] pixels; "
            "e.g. --epsilon 0.0627 (16/255, the default)"
        )
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= 100_000:
        raise ValueError(f"pgd-steps: {steps} is not an integer in [1, 100000]; e.g. 60")


def load_report(path: Path) -> DefenseReport | None:
    """A stored report, or None if the file does not exist. The file sits in a pack, so it is
    read like one (core.results.validate: no links, size and depth limits); one that is not a
    report is :class:`~core.results.validate.BrokenPack` (a ValueError) saying so."""
    path = Path(path)
    if not exists(path.parent, path.name):
        return None
    d = check_defense(read_json(path.parent, path.name), path.parent, path.name)
    rows = d.get("rows", [])
    return DefenseReport(d["settings"], rows, d.get("metadata", {}))


def save_report(report: DefenseReport, path: Path, replace: bool = False) -> Path:
    """Write ``report`` to ``path`` atomically. A file already there is a user's file and is
    refused (ValueError naming the fix) unless ``replace`` (the pack's own derived cache)."""
    path = Path(path)
    if path.exists() and not replace:
        raise ValueError(
            f"out: {path} exists (nothing was overwritten); pass another --out file, "
            "or remove it yourself if it is stale"
        )
    atomic_write_json(path, report.to_dict())
    return path


def pack_report(
    pack: Pack, out: Path | None = None, **kwargs: Any
) -> tuple[DefenseReport, Path, bool]:
    """Evaluate and store in the pack (``defense.json`` or ``out``); ``False`` = not recomputed.

    A stored report that covers the settings asked for (same or more detectors, methods and
    levels, the same Nightshade budget) answers with its matching rows. Otherwise the pack's own
    ``defense.json``, a cache derived from the pack, is recomputed and replaced atomically; a
    user's ``out`` file is never replaced (ValueError naming the fix)."""
    check_attack(kwargs.get("epsilon", 16 / 255), kwargs.get("steps", 60))
    path = Path(out) if out is not None else pack.root / DEFENSE
    prev = load_report(path)
    if prev is not None:
        want = evaluate_settings(pack, **kwargs)
        if prev.settings == want:
            return prev, path, False
        covered = covering(prev, want, pack)
        if covered is not None:
            return covered, path, False
    report = evaluate_pack(pack, **kwargs)
    save_report(report, path, replace=out is None)
    return report, path, True


def covering(
    report: DefenseReport, want: dict[str, Any], pack: Pack | None = None
) -> DefenseReport | None:
    """``report`` cut to the settings ``want`` when it holds every row they ask for, else None.
    A detector the report found unavailable counts as covered while ``pack``'s Nightshade cache
    still cannot score it (without ``pack``, never)."""
    have = report.settings
    for key in ("detectors", "methods", "levels"):
        if not set(want[key]) <= set(have.get(key) or ()):
            return None
    gone = have.get("unavailable") or {}
    gone = (
        {d: why for d, why in gone.items() if d in want["detectors"]}
        if isinstance(gone, dict)
        else {}
    )
    builds = "nightshade" in want["methods"]  # a run for these settings builds a missing cache
    if gone and (pack is None or still_unavailable(pack, have, builds) is None):
        return None  # the cache may have its scores now: recompute
    if want.get("nightshade") is not None and want["nightshade"] != have.get("nightshade"):
        return None
    rows = [
        r
        for r in report.rows
        if r["detector"] in want["detectors"]
        and r["method"] in want["methods"]
        and r["c_p"] in want["levels"]
    ]
    return DefenseReport({**want, "unavailable": gone} if gone else want, rows, report.metadata)


def still_unavailable(
    pack: Pack, settings: dict[str, Any], builds_cache: bool = True
) -> str | None:
    """Why the reconstruction detector still cannot be scored on ``pack`` with a stored
    report's Nightshade budget, or None if it now can (the cache was rebuilt, or is missing and
    ``builds_cache``: a run asking for Nightshade-style rows builds it, scores included)."""
    ns = settings.get("nightshade")
    ns = ns if isinstance(ns, dict) else {}
    try:
        eps, steps = float(ns.get("epsilon", 16 / 255)), int(ns.get("steps", 60))
        check_attack(eps, steps)
    except (TypeError, ValueError):
        eps, steps = 16 / 255, 60
    if builds_cache and not nightshade_file(pack, eps, steps).is_file():
        return None
    c = scorable_levels(pack)
    if not c:
        return "no scorable level"
    try:
        reconstruction_level(pack, c[0], "nightshade", eps, steps)
    except Unavailable as e:
        return str(e)
    return None


def evaluate_settings(
    pack: Pack,
    detectors: Sequence[str] = REPORT_DETECTORS,
    methods: Sequence[str] = ("dirty-label",),
    levels: Sequence[int] | None = None,
    epsilon: float = 16 / 255,
    steps: int = 60,
    **_: Any,
) -> dict[str, Any]:
    """The ``settings`` dict :func:`evaluate_pack` would record (to recognise a stored report)."""
    lv = scorable_levels(pack) if levels is None else list(levels)
    return {
        "detectors": list(detectors),
        "methods": list(methods),
        "levels": lv,
        "nightshade": {"epsilon": epsilon, "steps": steps} if "nightshade" in methods else None,
    }
