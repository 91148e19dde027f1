"""Unbiased sampled estimate of the structure term D_stru, with a 95 % confidence interval.

D_stru = (1/n²) Σ_{i≠j} v_ij with v_ij = |cos(x_i,x_j) − cos(y_i,y_j)|. There are n(n−1) ordered
distinct pairs, so D_stru = ((n−1)/n) · E[v_IJ] for (I, J) uniform over them. With M pairs drawn
independently and uniformly (I uniform in [0, n), J uniform over the other n − 1 rows)::

    D̂_stru = ((n−1)/n) · (1/M) Σ_k v_k,     SE = ((n−1)/n) · std(v, ddof=1) / √M
    95 % CI = D̂_stru ± 1.96 · SE   (normal approximation; M ≥ ~1,000 recommended)

Cost is O(M·d), independent of n: about 2·10⁴ pairs give ±1 % for typical embeddings. D_fea is
still exact (one O(n·d) streaming pass), so the AD interval is α·D_fea + (1 − α)·CI.

I/O: the pairs are drawn before the data is read, and the sorted set of their rows is kept while
the one sequential pass (validation + matched cosines for D_fea) has each block in cache, so a
memory-mapped file is read once, front to back, with no random reads afterwards (up to
``COLLECT_BYTES`` of kept rows; beyond that, rows are read per chunk in sorted order).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.metrics import _backends, _engine
from core.metrics.result import (
    CLIP_SCALE,
    ADResult,
    Calibration,
    check_alpha,
    rescale,
    resolve_scale,
)

Z_95 = 1.959963984540054  # two-sided 95 % normal quantile
CHUNK = 16384  # pairs per gather; keeps memory O(CHUNK·d)
COLLECT_BYTES = 2**28  # at most 256 MiB of sampled rows kept from the sequential pass


@dataclass(frozen=True)
class SampledStructure:
    """Sampled D_stru: ``estimate``, standard error ``se``, 95 % ``ci``; ``i`` (M,) int64 are the
    first rows of the sampled pairs and ``v`` (M,) float64 their |Δcos| (for per-concept shares)."""

    estimate: float
    se: float
    ci: tuple[float, float]
    samples: int
    i: np.ndarray
    v: np.ndarray


@dataclass(frozen=True)
class SampledAD:
    result: ADResult
    structure: SampledStructure
    s_hat: np.ndarray


def check_samples(samples: Any) -> int:
    if isinstance(samples, bool) or not isinstance(samples, int | np.integer) or samples < 2:
        raise ValueError(f"sample: number of random pairs must be an integer ≥ 2, got {samples!r}")
    return int(samples)


def draw_pairs(n: int, samples: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``samples`` ordered pairs (i, j), i ≠ j, uniform over all n(n−1): two (m,) int64 arrays."""
    m = check_samples(samples)
    rng = np.random.default_rng(seed)
    i = rng.integers(0, n, size=m, dtype=np.int64)
    j = rng.integers(0, n - 1, size=m, dtype=np.int64)
    j += j >= i  # uniform over the n − 1 rows other than i
    return i, j


def rows_to_collect(i: np.ndarray, j: np.ndarray, d: int, itemsize: int) -> np.ndarray | None:
    """Sorted unique rows of the pairs, to be kept during the one sequential pass over the data,
    or None when keeping them would exceed ``COLLECT_BYTES`` (then rows are read per chunk)."""
    rows = np.unique(np.concatenate([i, j]))
    return rows if len(rows) * 2 * d * itemsize <= COLLECT_BYTES else None


def sample_d_stru(
    prep: _engine.Prepared, samples: int, seed: int = 0, chunk: int = CHUNK
) -> SampledStructure:
    """Estimate D_stru from ``samples`` uniformly random ordered pairs i ≠ j (see module doc)."""
    m, n = check_samples(samples), prep.n
    i, j = draw_pairs(n, m, seed)
    v = np.empty(m, dtype=np.float64)
    for a in range(0, m, chunk):
        b = min(a + chunk, m)
        v[a:b] = prep.pair_values(i[a:b], j[a:b])
    factor = (n - 1) / n
    est = factor * float(v.mean())
    se = factor * float(v.std(ddof=1)) / math.sqrt(m)
    return SampledStructure(est, se, (est - Z_95 * se, est + Z_95 * se), m, i, v)


def sampled_alignment_difficulty(
    image_emb: Any,
    text_emb: Any,
    samples: int,
    alpha: float = 0.8,
    scale: tuple[float, float] | Calibration | None = CLIP_SCALE,
    seed: int = 0,
    *,
    device: Any = None,
    precision: str | None = None,
    calibration: str | None = None,
    threads: int | None = None,
) -> SampledAD:
    """AD with exact D_fea and sampled D_stru; ``result.ci`` holds the 95 % intervals.

    Args: as :func:`core.metrics.ad.alignment_difficulty`; ``samples`` = M random pairs ≥ 2.
    Returns: :class:`SampledAD`; ``result.ci = {"level": 0.95, "ad": [lo, hi],
    "structure": [lo, hi], "samples": M}``.
    """
    alpha = check_alpha(alpha)
    m = check_samples(samples)
    lohi, cal = resolve_scale(scale, calibration)
    source = _engine.check_pairs(image_emb, text_emb)
    dev = _engine.resolve_device(device, source)
    # Same precision rule as the exact path, so D_fea is identical to the exact evaluation's.
    prec = _engine.resolve_precision(precision, dev, source.n, source.d)
    # The pairs are drawn first so that the one sequential pass over the data (validation,
    # matched cosines for D_fea) also keeps their rows: no random reads of a memmap afterwards.
    i, j = draw_pairs(source.n, m, seed)
    collect = rows_to_collect(i, j, source.d, 8 if prec == "float64" else 4)
    with _engine.compute_context(threads):
        # Never materialise: the one full pass (validation + matched cosines) streams in blocks.
        prep = _backends.prepare(
            source, dev, prec, _engine.default_block(dev), False, collect=collect, threads=threads
        )
        stru = sample_d_stru(prep, m, seed)
    s_hat = rescale(prep.s, lohi)
    d_fea = float(np.mean(1.0 - s_hat))
    ad = alpha * d_fea + (1.0 - alpha) * stru.estimate
    ci = {
        "level": 0.95,
        "ad": [alpha * d_fea + (1.0 - alpha) * c for c in stru.ci],
        "structure": list(stru.ci),
        "samples": m,
    }
    result = ADResult(ad, d_fea, stru.estimate, source.n, alpha, lohi, cal, ci=ci, samples=m)
    return SampledAD(result, stru, s_hat)
