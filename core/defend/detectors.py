"""Poison detectors: one suspicion score per training pair, higher = more likely poisoned.

Every detector reads the same (image, text) embedding pairs the AD engine uses (core/metrics;
rows L2-normalised here), plus the concept each caption names. With x_i, y_i the normalised
image and text embeddings of pair i and κ(i) its caption concept:

* ``misalignment``  (the CLIP-score filter): ``1 − cos(x_i, y_i)``, pair i's feature term
  before the calibration clip (clipping would tie every pair beyond the interval).
* ``structural_outlier``: pair i's structure contribution
  ``t_i = (1/n²) Σ_{j≠i} |cos(x_i,x_j) − cos(y_i,y_j)|`` (core.metrics.pair_contributions, blocked
  exact kernel, never n×n in memory) divided by the median t_j over its concept's pairs κ(j) = κ(i):
  a pair whose image disagrees with the text graph more than its concept-mates do.
* ``concept_share``: the per-pair AD share of pair i's caption concept,
  ``Σ_{κ(j)=κ(i)} c_j / |{j: κ(j)=κ(i)}|`` (core.metrics.per_concept): which concepts make the
  alignment hard. Every pair of a concept gets the same score, so it ranks concepts, not pairs.
* ``knn_disagreement``: the fraction of pair i's k nearest image embeddings (cosine, i excluded)
  whose caption names another concept: the image's neighbours vote against its caption. Meant for
  feature-space poisons, whose caption fits the image's look but whose image sits elsewhere. On
  the demo pack it does not: Nightshade-style AUC 0.39–0.53, since the perturbation targets the
  VAE, not the joint embedding, where the image stays among its own concept (bench/results/defend.md).

All scores are (n,) float64; ties are allowed (the ROC handles them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from core.defend.config import DETECTOR_NAMES, check_detector
from core.metrics import pair_contributions, per_concept
from core.metrics.decompose import check_labels

Detector = Callable[..., np.ndarray]
KNN_K = 10


def normalise(emb: Any, field: str) -> np.ndarray:
    """(n, d) float64 rows scaled to unit L2 norm; ValueError naming ``field`` on bad input."""
    a = np.asarray(emb, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] < 2 or a.shape[1] < 1:
        raise ValueError(f"{field}: expected an (n, d) array with n ≥ 2 pairs, got {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{field}: contains NaN or inf; check the embedder output")
    norms = np.linalg.norm(a, axis=1, keepdims=True)
    if (norms == 0).any():
        raise ValueError(f"{field}: row {int(np.flatnonzero(norms[:, 0] == 0)[0])} is all zeros")
    return a / norms


def _check(image_emb: Any, text_emb: Any) -> tuple[np.ndarray, np.ndarray]:
    x, y = normalise(image_emb, "image_emb"), normalise(text_emb, "text_emb")
    if x.shape != y.shape:
        raise ValueError(f"image_emb/text_emb: shapes differ, {x.shape} vs {y.shape}")
    return x, y


def misalignment(image_emb: Any, text_emb: Any, caption_concept: Any = None) -> np.ndarray:
    """``1 − cos(x_i, y_i)`` (n,): the classic CLIP-score filter. ``caption_concept`` unused."""
    x, y = _check(image_emb, text_emb)
    return 1.0 - np.einsum("nd,nd->n", x, y)


def _by_concept(values: np.ndarray, caption_concept: Any, fn: Callable[..., Any]) -> np.ndarray:
    """``fn`` over each concept's values, broadcast back to its pairs (n,)."""
    uniq, inv = check_labels(caption_concept, values.shape[0], "caption_concept")
    per = np.array([fn(values[inv == k]) for k in range(len(uniq))], dtype=np.float64)
    return per[inv]


def structural_outlier(image_emb: Any, text_emb: Any, caption_concept: Any) -> np.ndarray:
    """``t_i / median_{κ(j)=κ(i)} t_j`` (n,): structure contribution relative to the concept."""
    x, y = _check(image_emb, text_emb)
    t = pair_contributions(x, y, scale=None).structure
    med = _by_concept(t, caption_concept, np.median)
    return t / np.maximum(med, 1e-12)


def concept_share(
    image_emb: Any, text_emb: Any, caption_concept: Any, alpha: float = 0.8
) -> np.ndarray:
    """Per-pair AD share of the caption's concept (n,), raw cosines (no calibration)."""
    x, y = _check(image_emb, text_emb)
    _, shares = per_concept(x, y, caption_concept, alpha=alpha, scale=None)
    per_pair = {s.label: s.ad / s.n for s in shares}
    return np.array([per_pair[c] for c in np.asarray(caption_concept).tolist()], dtype=np.float64)


def knn_disagreement(
    image_emb: Any,
    text_emb: Any,
    caption_concept: Any,
    k: int = KNN_K,
    block: int = 512,
) -> np.ndarray:
    """Fraction of the k nearest image embeddings (cosine, self excluded) whose caption concept
    differs from pair i's (n,). Blocked: memory O(block·n), never n×n. ``text_emb`` unused."""
    x = normalise(image_emb, "image_emb")
    n = x.shape[0]
    if np.asarray(text_emb).shape[0] != n:
        raise ValueError(f"text_emb: expected {n} rows like image_emb, got {np.shape(text_emb)}")
    _, lab = check_labels(caption_concept, n, "caption_concept")
    if k < 1:
        raise ValueError(f"k: need at least 1 neighbour, got {k}")
    import torch  # topk over blocks; imported here so pages importing core.defend stay light

    k = min(k, n - 1)
    xt = torch.from_numpy(x.astype(np.float32))
    labt = torch.from_numpy(lab)
    out = np.empty(n, dtype=np.float64)
    for a in range(0, n, block):
        b = min(n, a + block)
        sim = xt[a:b] @ xt.T
        sim[torch.arange(b - a), torch.arange(a, b)] = -float("inf")
        nn = sim.topk(k, dim=1).indices
        out[a:b] = (labt[nn] != labt[a:b, None]).double().mean(1).numpy()
    return out


DETECTORS: dict[str, Detector] = {
    "misalignment": misalignment,
    "structural_outlier": structural_outlier,
    "concept_share": concept_share,
    "knn_disagreement": knn_disagreement,
}
assert tuple(DETECTORS) == DETECTOR_NAMES


def score(name: str, image_emb: Any, text_emb: Any, caption_concept: Any) -> np.ndarray:
    """Scores (n,) float64 of detector ``name`` (ValueError listing the detectors if unknown)."""
    return DETECTORS[check_detector(name)](image_emb, text_emb, caption_concept)
