"""Metrics: Alignment Difficulty (AD) and its decompositions.

Public API::

    alignment_difficulty(image_emb, text_emb, alpha=0.8, scale=(0.2, 0.45), block=None, sample=None)
    calibrate_scale(image_emb, text_emb, lo_q=0.05, hi_q=0.95) -> Calibration
    sampled_alignment_difficulty(...)   # exact D_fea, sampled D_stru with a 95 % CI
    pair_contributions / per_concept / subset_ad / attribute_delta
    embed_folder(folder, embedder)      # image + .txt caption folders → (n, d) embeddings
"""

from core.metrics.ad import alignment_difficulty, calibrate_scale
from core.metrics.decompose import (
    ConceptShare,
    DeltaAttribution,
    PairContributions,
    attribute_delta,
    pair_contributions,
    per_concept,
    subset_ad,
)
from core.metrics.folder import FolderEmbeddings, embed_folder, find_pairs
from core.metrics.result import CLIP_CALIBRATION, CLIP_SCALE, ADResult, Calibration
from core.metrics.sampled import SampledAD, sampled_alignment_difficulty

__all__ = [
    "CLIP_CALIBRATION",
    "CLIP_SCALE",
    "ADResult",
    "Calibration",
    "ConceptShare",
    "DeltaAttribution",
    "FolderEmbeddings",
    "PairContributions",
    "SampledAD",
    "alignment_difficulty",
    "attribute_delta",
    "calibrate_scale",
    "embed_folder",
    "find_pairs",
    "pair_contributions",
    "per_concept",
    "sampled_alignment_difficulty",
    "subset_ad",
]
