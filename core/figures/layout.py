"""2-D layouts of joint-space embeddings that stay put across C_P levels.

The layout is fitted *once* on the embeddings of every level stacked together, so a concept that
does not move in embedding space does not move on screen when the C_P slider changes. PCA (numpy
SVD) is the default; UMAP is available on request (imported lazily: its first import compiles for
minutes) with a fixed ``random_state``. :func:`procrustes` aligns two layouts when they had to be
fitted separately.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

Method = Literal["pca", "umap"]
METHODS: tuple[str, ...] = ("pca", "umap")


def fit_layout(
    blocks: Sequence[np.ndarray], method: str = "pca", seed: int = 0
) -> list[np.ndarray]:
    """Project each (n_b, d) block to (n_b, 2) with one layout fitted on all blocks together."""
    if method not in METHODS:
        raise ValueError(f"unknown layout method {method!r}; allowed: {', '.join(METHODS)}")
    sizes = [b.shape[0] for b in blocks]
    x = np.concatenate([np.asarray(b, dtype=np.float64) for b in blocks])
    if method == "pca":
        xc = x - x.mean(0)
        # SVD of the d×d scatter matrix: same principal axes as the SVD of xc, O(n·d²) not O(n·d·n).
        _, _, vt = np.linalg.svd(xc.T @ xc)
        y = xc @ vt[:2].T
        # Fix the sign of each axis (SVD signs are arbitrary) so reruns agree.
        y *= np.where(y[np.abs(y).argmax(0), [0, 1]] < 0, -1.0, 1.0)
    else:
        import umap  # lazy: its first import compiles numba code for minutes

        reducer = umap.UMAP(n_components=2, random_state=seed, metric="cosine", n_neighbors=15)
        y = np.asarray(reducer.fit_transform(x), dtype=np.float64)
    return list(np.split(y, np.cumsum(sizes)[:-1]))


def procrustes(reference: np.ndarray, moving: np.ndarray) -> np.ndarray:
    """Rotate/reflect, scale and translate ``moving`` (n, 2) onto ``reference`` (n, 2).

    Orthogonal Procrustes: R = U Vᵀ from the SVD of Mᵀ A (centred), s = tr(Σ) / ‖M‖².
    """
    a_mu, m_mu = reference.mean(0), moving.mean(0)
    a, m = reference - a_mu, moving - m_mu
    u, s, vt = np.linalg.svd(m.T @ a)
    r = u @ vt
    scale = s.sum() / max((m * m).sum(), 1e-12)
    return (m @ r) * scale + a_mu
