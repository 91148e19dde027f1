"""Shared helpers for the AD tests: a naive reference and small synthetic embedding sets."""

from __future__ import annotations

import math

import numpy as np


def naive_ad(x, y, alpha=0.8, scale=(0.2, 0.45)):
    """Literal double loop over pairs in float64 (the definition in SCIENCE.md)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    y = y / np.linalg.norm(y, axis=1, keepdims=True)
    n = len(x)
    fea = []
    for i in range(n):
        s = float(x[i] @ y[i])
        if scale is not None:
            lo, hi = scale
            s = min(max((s - lo) / (hi - lo), 0.0), 1.0)
        fea.append(1.0 - s)
    stru = []
    for i in range(n):
        for j in range(n):
            if i != j:
                stru.append(abs(float(x[i] @ x[j]) - float(y[i] @ y[j])))
    d_fea = math.fsum(fea) / n
    d_stru = math.fsum(stru) / n**2
    return alpha * d_fea + (1 - alpha) * d_stru, d_fea, d_stru


def worked_example():
    """Two pairs with x1·x2 = 0.5, y1·y2 = 0.1, s1 = 0.45, s2 = 0.20 (SCIENCE.md)."""
    gram = np.array(
        [
            [1.0, 0.5, 0.45, 0.3],
            [0.5, 1.0, 0.3, 0.2],
            [0.45, 0.3, 1.0, 0.1],
            [0.3, 0.2, 0.1, 1.0],
        ]
    )
    v = np.linalg.cholesky(gram)  # rows have exactly these inner products
    return v[:2], v[2:]


def pairs(n, d=16, seed=0, noise=0.8, dtype=np.float64):
    """n correlated image/text pairs: text = image + noise, so cosines span a useful range."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    y = x + noise * rng.standard_normal((n, d))
    return x.astype(dtype), y.astype(dtype)
