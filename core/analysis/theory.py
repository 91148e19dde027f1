"""Theory sandbox: synthetic joint-space embeddings where poisoning provably raises AD.

A toy version of the paper's setting (Ding et al., CCS 2024, §4): every concept k has a text
vector t_k and an image vector v_k = normalise(R t_k + ε) in a shared d-dimensional space, so the
clean text graph and image graph have the same structure. Poisoning concept i adds dirty-label
pairs (caption of i, image of a target j ≠ i). Each poisoned pair has a low matched cosine
(raises D_fea) and disagrees with i's clean pairs about which images are similar to i's caption
(raises D_stru), so AD grows with the number of poisoned concepts C_P.

Shapes: embeddings (n, d) float32 L2-normalised; labels (n,) int64 caption concept; image_labels
(n,) int64; poisoned (n,) bool.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class SyntheticPairs:
    """Synthetic training pairs. ``image`` / ``text``: (n, d) float32, L2-normalised."""

    image: np.ndarray
    text: np.ndarray
    caption_concept: np.ndarray
    image_concept: np.ndarray
    poisoned: np.ndarray
    targets: dict[int, int]


def _normalise(a: np.ndarray) -> np.ndarray:
    return (a / np.linalg.norm(a, axis=-1, keepdims=True).clip(1e-12)).astype(np.float32)


def synthetic_pairs(
    n_concepts: int = 16,
    c_p: int = 0,
    noise: float = 0.3,
    n_per_concept: int = 16,
    dim: int = 32,
    seed: int = 0,
) -> SyntheticPairs:
    """Clean pairs for ``n_concepts`` concepts plus dirty-label pairs for the first ``c_p``.

    ``noise`` is the per-sample spread (in units of the unit concept vectors) of both the images and
    the captions. The poisoned set at C_P = c is the first c concepts and targets are fixed by
    ``seed``, so increasing ``c_p`` only *adds* poison (nested sets, as in the sweeps).
    """
    if n_concepts < 2:
        raise ValueError(f"n_concepts must be ≥ 2, got {n_concepts}")
    if not 0 <= c_p <= n_concepts:
        raise ValueError(f"c_p must be in [0, n_concepts={n_concepts}], got {c_p}")
    if noise < 0:
        raise ValueError(f"noise must be ≥ 0, got {noise}")
    rng = np.random.default_rng(seed)
    t = _normalise(rng.normal(size=(n_concepts, dim)))
    # Image concept vectors: the text vectors plus a little concept-level noise (aligned graphs).
    v = _normalise(t + 0.25 * rng.normal(size=t.shape))
    perm = rng.permutation(n_concepts)
    targets = {int(i): int(perm[i] if perm[i] != i else (i + 1) % n_concepts) for i in range(c_p)}
    # Draw the per-sample noise for the full poisoned set so C_P only adds rows (nested datasets).
    cap = np.repeat(np.arange(n_concepts), n_per_concept)
    img = cap.copy()
    pois = np.zeros(cap.shape[0], dtype=bool)
    for i in range(c_p):
        cap = np.concatenate([cap, np.full(n_per_concept, i)])
        img = np.concatenate([img, np.full(n_per_concept, targets[i])])
        pois = np.concatenate([pois, np.ones(n_per_concept, dtype=bool)])
    n = cap.shape[0]
    sample_rng = np.random.default_rng([seed, 1])
    eps_x = sample_rng.normal(size=(n_concepts * n_per_concept * 2, dim))
    eps_y = sample_rng.normal(size=(n_concepts * n_per_concept * 2, dim))
    scale = noise / np.sqrt(dim)
    x = _normalise(v[img] + scale * eps_x[:n])
    y = _normalise(t[cap] + scale * eps_y[:n])
    return SyntheticPairs(x, y, cap.astype(np.int64), img.astype(np.int64), pois, targets)


def exact_ad(
    image: np.ndarray,
    text: np.ndarray,
    alpha: float = 0.8,
    scale: tuple[float, float] | None = None,
) -> dict[str, float]:
    """Local exact AD (fallback when ``core.metrics`` is unavailable); O(n²·d), fine for n ≲ 4000.

    ``AD = α·D_fea + (1−α)·D_stru``, ``D_fea = (1/n)Σ(1−ŝ_i)``,
    ``D_stru = (1/n²)Σ_{i≠j}|cos(x_i,x_j) − cos(y_i,y_j)|``. Returns ad, d_fea, d_stru, n.
    """
    x = _normalise(np.asarray(image, dtype=np.float64)).astype(np.float64)
    y = _normalise(np.asarray(text, dtype=np.float64)).astype(np.float64)
    n = x.shape[0]
    s = (x * y).sum(1)
    if scale is not None:
        lo, hi = scale
        s = np.clip((s - lo) / (hi - lo), 0.0, 1.0)
    d_fea = float((1.0 - s).mean())
    diff = np.abs(x @ x.T - y @ y.T)
    np.fill_diagonal(diff, 0.0)
    d_stru = float(diff.sum() / (n * n))
    return {"ad": alpha * d_fea + (1 - alpha) * d_stru, "d_fea": d_fea, "d_stru": d_stru, "n": n}


def compute_ad(
    image: np.ndarray,
    text: np.ndarray,
    alpha: float = 0.8,
    scale: tuple[float, float] | None = None,
) -> tuple[dict[str, float], str]:
    """AD via ``core.metrics.alignment_difficulty`` when importable, else :func:`exact_ad`.

    Returns (result with keys ad, d_fea, d_stru, n; a label naming which implementation ran).
    """
    try:
        from core.metrics import alignment_difficulty
    except ImportError:
        return exact_ad(image, text, alpha, scale), "local exact fallback (core.metrics missing)"
    r = alignment_difficulty(image, text, alpha=alpha, scale=scale, device="cpu", threads=1)
    return {"ad": r.ad, "d_fea": r.d_fea, "d_stru": r.d_stru, "n": r.n}, "core.metrics"


def ad_curve(
    n_concepts: int = 16,
    noise: float = 0.3,
    levels: list[int] | None = None,
    n_per_concept: int = 8,
    seed: int = 0,
    alpha: float = 0.8,
) -> dict[str, Any]:
    """AD, D_fea and D_stru of :func:`synthetic_pairs` at each C_P in ``levels``.

    Returns {"c_p": [...], "ad": [...], "d_fea": [...], "d_stru": [...], "source": str}.
    """
    if levels is None:
        levels = sorted({0, *range(0, n_concepts + 1, max(1, n_concepts // 8)), n_concepts})
    out: dict[str, Any] = {"c_p": [], "ad": [], "d_fea": [], "d_stru": [], "source": ""}
    for c in levels:
        p = synthetic_pairs(n_concepts, c, noise, n_per_concept, seed=seed)
        r, source = compute_ad(p.image, p.text, alpha=alpha)
        out["c_p"].append(int(c))
        for k in ("ad", "d_fea", "d_stru"):
            out[k].append(float(r[k]))
        out["source"] = source
    return out
