"""Per-concept scores of a real-sweep level from CLIP zero-shot scores, turned into the level's
record by the one record builder (:func:`core.sweep.runner.level_record`)."""

from __future__ import annotations

import numpy as np

from core.poison.plan import PoisonLevel
from core.results.schema import LevelRecord
from core.sweep.runner import level_record


def clip_level_record(
    level: PoisonLevel, concept: np.ndarray, z: dict[str, np.ndarray]
) -> LevelRecord:
    """Implosion metrics of one level from CLIP zero-shot scores ``z`` of the generations
    (``pred`` (N,), ``cosine`` (N, K), ``incoherence`` (N,)); ``concept`` (N,) is each image's
    prompt concept. Per concept j: accuracy = share of its images classified as j, alignment =
    mean cosine of its images to prompt j, incoherence = mean normalised entropy."""
    k = z["cosine"].shape[1]
    own = [concept == j for j in range(k)]
    acc = np.array([np.mean(z["pred"][m] == j) for j, m in enumerate(own)])
    align = np.array([np.mean(z["cosine"][m, j]) for j, m in enumerate(own)])
    incoh = np.array([np.mean(z["incoherence"][m]) for m in own])
    return level_record(level, concept, np.asarray(z["pred"]), acc, align, incoh)
