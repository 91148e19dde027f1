"""ROC of a detector against ground truth: curve, AUC, recall at a false-positive rate.

For scores s (n,) (higher = more suspicious) and truth p (n,) bool (True = poisoned), flagging
every pair with s ≥ τ gives ``TPR(τ) = |{s ≥ τ} ∩ P| / |P|`` and ``FPR(τ) = |{s ≥ τ} \\ P| / |N|``.
The curve has one point per distinct score (tied scores move together), starting at (0, 0).
AUC is the trapezoid area, equal to the Mann–Whitney probability that a random poisoned pair
outscores a random clean one, ties counting ½. Recall at FPR f is the largest TPR among points
with FPR ≤ f. Cost: one sort, O(n log n) (10⁵ pairs in milliseconds).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from core.defend.config import REPORT_FPRS, check_fpr


@dataclass(frozen=True)
class ROC:
    """fpr, tpr, thresholds: (m + 1,) float64 (thresholds[0] = +inf: nothing flagged)."""

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray
    auc: float
    n_poisoned: int
    n_clean: int

    def recall_at(self, fpr: float) -> float:
        """Largest TPR with FPR ≤ ``fpr``."""
        f = check_fpr(fpr)
        return float(self.tpr[self.fpr <= f + 1e-12].max())

    def threshold_at(self, fpr: float) -> float:
        """Lowest threshold τ (flag s ≥ τ) whose FPR is ≤ ``fpr``."""
        f = check_fpr(fpr)
        ok = np.flatnonzero(self.fpr <= f + 1e-12)
        return float(self.thresholds[ok[-1]])

    def to_dict(self, points: int = 200) -> dict[str, Any]:
        """AUC, recall at 1 % / 5 % FPR, counts and the curve thinned to ≈ ``points`` points."""
        idx = thin(len(self.fpr), points)
        return {
            "auc": self.auc,
            **{f"recall_at_{round(f * 100)}pct_fpr": self.recall_at(f) for f in REPORT_FPRS},
            "n_poisoned": self.n_poisoned,
            "n_clean": self.n_clean,
            "fpr": np.round(self.fpr[idx], 5).tolist(),
            "tpr": np.round(self.tpr[idx], 5).tolist(),
        }


def thin(m: int, points: int) -> np.ndarray:
    """Indices of ≈ ``points`` evenly spaced points of an m-point curve, first and last kept."""
    if m <= points:
        return np.arange(m)
    return np.unique(np.r_[np.linspace(0, m - 1, points).round().astype(int), m - 1])


def check_truth(scores: Any, truth: Any) -> tuple[np.ndarray, np.ndarray]:
    """(scores float64 (n,), truth bool (n,)); ValueError naming the field on bad input."""
    s = np.asarray(scores, dtype=np.float64)
    p = np.asarray(truth)
    if s.ndim != 1 or p.shape != s.shape:
        raise ValueError(
            f"scores/truth: expected two 1-D arrays of the same length, got {s.shape} and {p.shape}"
        )
    if p.dtype != bool:
        raise ValueError(f"truth: expected a boolean array (True = poisoned), got dtype {p.dtype}")
    if not np.isfinite(s).all():
        raise ValueError("scores: contain NaN or inf; a detector must score every pair")
    n_pos = int(p.sum())
    if n_pos == 0 or n_pos == p.size:
        raise ValueError(
            f"truth: need both poisoned and clean pairs for a ROC, got {n_pos} poisoned of {p.size}"
        )
    return s, p


def roc(scores: Any, truth: Any) -> ROC:
    """ROC of ``scores`` (n,) against ``truth`` (n,) bool; see the module docstring."""
    s, p = check_truth(scores, truth)
    order = np.argsort(-s, kind="stable")
    s_sorted, p_sorted = s[order], p[order]
    tp = np.cumsum(p_sorted, dtype=np.int64)
    fp = np.cumsum(~p_sorted, dtype=np.int64)
    last = np.r_[np.flatnonzero(np.diff(s_sorted) != 0), s.size - 1]  # end of each tie run
    n_pos, n_neg = int(tp[-1]), int(fp[-1])
    tpr = np.r_[0.0, tp[last] / n_pos]
    fpr = np.r_[0.0, fp[last] / n_neg]
    thresholds = np.r_[np.inf, s_sorted[last]]
    auc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))
    return ROC(fpr, tpr, thresholds, auc, n_pos, n_neg)


def threshold_at_fpr(clean_scores: Any, fpr: float) -> float:
    """Lowest τ such that at most a fraction ``fpr`` of ``clean_scores`` is ≥ τ (+inf if none
    can be flagged): the operating point a defender sets on trusted clean pairs."""
    f = check_fpr(fpr)
    s = np.sort(np.asarray(clean_scores, dtype=np.float64))[::-1]
    if s.size == 0:
        raise ValueError("clean_scores: empty; need clean pairs to set a threshold")
    allowed = int(np.floor(f * s.size + 1e-9))  # clean pairs we may flag
    if allowed == 0:
        return float("inf")
    # flag s ≥ τ: τ must exceed every clean score beyond the allowed ones (ties move together)
    tau = s[allowed - 1]
    if allowed < s.size and s[allowed] == tau:  # the tie run would overshoot: step above it
        tau = float(np.nextafter(tau, np.inf))
    return float(tau)
