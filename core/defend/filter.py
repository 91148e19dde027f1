"""Apply a defense to one level's training pairs: score, threshold, drop (used by the sweep).

The threshold is the ROC operating point at the configured false-positive rate: the lowest τ
that flags at most ``fpr`` of the level's *clean* pairs (:func:`core.defend.roc.threshold_at_fpr`).
For per-pair detectors (misalignment) a clean pair's score does not depend on the poison, so this
is what a defender gets by calibrating on a trusted clean set of the same distribution; for the
set-dependent detectors it uses the ground truth the sweep knows, and says so in the record.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.defend.config import DefenseConfig
from core.defend.detectors import score
from core.defend.roc import threshold_at_fpr


def apply_defense(
    defense: DefenseConfig,
    image_emb: np.ndarray,
    text_emb: np.ndarray,
    caption_concept: np.ndarray,
    poisoned: np.ndarray,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Keep mask (n,) bool and record fields of one defended level.

    Record fields: ``defense_detector``, ``defense_fpr`` (configured), ``defense_threshold``,
    ``n_pairs_before``, ``defense_removed``, ``defense_removed_poisoned``, ``defense_recall``
    (poisoned pairs removed / poisoned pairs; None without poison), ``defense_fpr_measured``
    (clean pairs removed / clean pairs)."""
    truth = np.asarray(poisoned, dtype=bool)
    s = score(defense.detector, image_emb, text_emb, caption_concept)
    tau = threshold_at_fpr(s[~truth], defense.fpr) if (~truth).any() else float("inf")
    flagged = s >= tau
    n_pois = int(truth.sum())
    stats = {
        "defense_detector": defense.detector,
        "defense_fpr": defense.fpr,
        "defense_threshold": None if not np.isfinite(tau) else float(tau),
        "n_pairs_before": int(truth.size),
        "defense_removed": int(flagged.sum()),
        "defense_removed_poisoned": int((flagged & truth).sum()),
        "defense_recall": float((flagged & truth).sum() / n_pois) if n_pois else None,
        "defense_fpr_measured": float((flagged & ~truth).sum() / max(1, int((~truth).sum()))),
    }
    keep = ~flagged
    if keep.sum() < 2:
        raise ValueError(
            f"defense: {defense.detector} at fpr={defense.fpr} flags {int(flagged.sum())} of "
            f"{truth.size} pairs, leaving fewer than 2 to train on; lower defense.fpr"
        )
    return keep, stats
