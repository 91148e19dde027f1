"""Defend: AD-based poison detection, scored against a pack's ground truth.

Public API::

    DefenseConfig(detector, fpr)                 # what a defended sweep drops (config.py)
    DETECTORS / score(name, image, text, caption_concept) -> (n,) suspicion scores
    roc(scores, truth) -> ROC (fpr, tpr, auc, recall_at, threshold_at); threshold_at_fpr
    reconstruction_level(pack, c_p, method) -> (scores, truth) of the VAE reconstruction detector
        (pixels, stored in the Nightshade cache; Unavailable with the reason otherwise)
    dirty_label_pairs / nightshade_pairs / level_pairs(pack, c_p, method) -> Pairs
    evaluate_pack(pack, ...) -> DefenseReport;  pack_report(pack) stores defense.json
    apply_defense(defense, x, y, caption_concept, poisoned) -> keep mask, record fields

The defended sweep is a sweep variant (:mod:`core.sweep.mini.defended`, job kind ``defended-sweep``):
the sweep depends on defend (its config and filter), never the other way round. The
attacked-vs-defended comparison (``core.defend.compare``) reads two packs.
"""

from core.defend.config import DETECTOR_NAMES, METHODS, DefenseConfig
from core.defend.detectors import (
    DETECTORS,
    concept_share,
    knn_disagreement,
    misalignment,
    score,
    structural_outlier,
)
from core.defend.filter import apply_defense
from core.defend.pairs import (
    Pairs,
    dirty_label_pairs,
    level_pairs,
    nightshade_pairs,
    reconstruction_level,
)
from core.defend.reconstruction import Unavailable
from core.defend.report import DefenseReport, evaluate_pack, pack_report
from core.defend.roc import ROC, roc, threshold_at_fpr

__all__ = [
    "DETECTORS",
    "DETECTOR_NAMES",
    "METHODS",
    "ROC",
    "DefenseConfig",
    "DefenseReport",
    "Pairs",
    "apply_defense",
    "concept_share",
    "dirty_label_pairs",
    "evaluate_pack",
    "knn_disagreement",
    "level_pairs",
    "misalignment",
    "nightshade_pairs",
    "pack_report",
    "roc",
    "score",
    "structural_outlier",
    "reconstruction_level",
    "threshold_at_fpr",
    "Unavailable",
]
