"""Alignment Difficulty (AD), Ding et al., *Understanding Implosion in Text-to-Image Generative
Models*, CCS 2024 (arXiv 2409.12314). See ``docs/science.md`` for the definition and a worked case.

For n pairs (x_i image embedding, y_i text embedding), each L2-normalised::

    s_i    = cos(x_i, y_i)
    ŝ_i    = clip((s_i − lo) / (hi − lo), 0, 1)                 (no rescaling: ŝ_i = s_i)
    D_fea  = (1/n) Σ_i (1 − ŝ_i)                                  feature term
    D_stru = (1/n²) Σ_{i≠j} |cos(x_i, x_j) − cos(y_i, y_j)|       structure term (raw cosines)
    AD     = α D_fea + (1 − α) D_stru,   α ∈ [0, 1]

The default ``scale=(0.20, 0.45)`` is the released code's calibration for CLIP ViT-B/32 on LAION
captions; for other embedding spaces use :func:`calibrate_scale` on a clean reference set, or
``scale=None``. The choice is recorded in :attr:`ADResult.calibration`.

The structure term is computed exactly by a blocked Gram kernel (``core.metrics._engine``): O(n²·d)
work in float32 or float64 GEMMs, O(block² + n·d) memory, float64 accumulation (equal to the float64
reference to 1e-6 relative; ~1e-10 measured), all CPU threads, CUDA when available. The CPU path
needs numpy only. For very large n, ``sample=M`` estimates D_stru from M random pairs with a 95 % CI
(:mod:`.sampled`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from core.metrics import _backends, _engine
from core.metrics._engine import ProgressFn
from core.metrics.result import (
    CLIP_CALIBRATION,
    CLIP_SCALE,
    ADResult,
    Calibration,
    check_alpha,
    rescale,
    resolve_scale,
)
from core.metrics.sampled import sampled_alignment_difficulty

__all__ = [
    "CLIP_CALIBRATION",
    "CLIP_SCALE",
    "ADResult",
    "Calibration",
    "Exact",
    "alignment_difficulty",
    "calibrate_scale",
    "check_alpha",
    "evaluate",
    "rescale",
    "resolve_scale",
]


def calibrate_scale(
    image_emb: Any,
    text_emb: Any,
    lo_q: float = 0.05,
    hi_q: float = 0.95,
    name: str | None = None,
) -> Calibration:
    """Derive the rescaling interval from a *clean* reference set of matched pairs.

    lo and hi are the ``lo_q`` and ``hi_q`` quantiles of the matched cosines s_i = cos(x_i, y_i)
    (n,), float64. This mirrors what [0.20, 0.45] does for CLIP ViT-B/32 on LAION: the worst ~5 %
    of clean pairs count as fully misaligned (ŝ = 0), the best ~5 % as perfectly aligned (ŝ = 1),
    and the bulk is spread linearly in between, so D_fea is comparable across embedding spaces.
    Calibrate once on clean data and reuse the interval for poisoned variants of it.

    Args: image_emb, text_emb: (n, d) float arrays of the clean reference pairs, n ≥ 2.
    Returns: :class:`Calibration` ``(lo, hi, name)``, usable as ``scale=`` anywhere.
    """
    if not (0.0 <= lo_q < hi_q <= 1.0):
        raise ValueError(f"lo_q/hi_q: need 0 ≤ lo_q < hi_q ≤ 1, got lo_q={lo_q}, hi_q={hi_q}")
    source = _engine.check_pairs(image_emb, text_emb)
    with _engine.compute_context():
        prep = _backends.prepare(source, "cpu", "float64", _engine.DEFAULT_BLOCK_CPU, False)
    lo, hi = (float(v) for v in np.quantile(prep.s, [lo_q, hi_q]))
    if not hi - lo > 1e-9:  # identical cosines up to rounding: no interval to map
        raise ValueError(
            f"image_emb/text_emb: matched cosines have no spread between the {lo_q:g} and "
            f"{hi_q:g} quantiles (both {lo:.4g}); use a varied clean reference set or scale=None"
        )
    label = name or f"calibrated q{lo_q:g}-q{hi_q:g} on n={source.n} clean pairs"
    return Calibration(lo, hi, label)


@dataclass(frozen=True)
class Exact:
    """Internals of an exact evaluation, for the decompositions: ŝ (n,) and row sums r (n,)."""

    result: ADResult
    s_hat: np.ndarray
    row_sums: np.ndarray | None


def evaluate(
    image_emb: Any,
    text_emb: Any,
    alpha: float = 0.8,
    scale: tuple[float, float] | Calibration | None = CLIP_SCALE,
    block: int | None = None,
    *,
    device: Any = None,
    precision: str | None = None,
    calibration: str | None = None,
    row_sums: bool = False,
    on_step: ProgressFn | None = None,
    threads: int | None = None,
) -> Exact:
    """Exact AD plus per-pair internals (see :func:`alignment_difficulty` for the arguments)."""
    alpha = check_alpha(alpha)
    lohi, cal = resolve_scale(scale, calibration)
    source = _engine.check_pairs(image_emb, text_emb)
    dev = _engine.resolve_device(device, source)
    prec = _engine.resolve_precision(precision, dev, source.n, source.d)
    blk = _engine.check_block(block, dev)
    with _engine.compute_context(threads):
        prep = _backends.prepare(source, dev, prec, blk, not source.streaming, threads=threads)
        total, r = prep.structure_sum(row_sums=row_sums, on_step=on_step)
    n = source.n
    s_hat = rescale(prep.s, lohi)
    d_fea = float(np.mean(1.0 - s_hat))
    d_stru = total / (n * n)
    ad = alpha * d_fea + (1.0 - alpha) * d_stru
    result = ADResult(ad, d_fea, d_stru, n, alpha, lohi, cal)
    return Exact(result, s_hat, r)


def alignment_difficulty(
    image_emb: Any,
    text_emb: Any,
    alpha: float = 0.8,
    scale: tuple[float, float] | Calibration | None = CLIP_SCALE,
    block: int | None = None,
    *,
    sample: int | None = None,
    seed: int = 0,
    device: Any = None,
    precision: str | None = None,
    calibration: str | None = None,
    on_step: ProgressFn | None = None,
    threads: int | None = None,
) -> ADResult:
    """Alignment Difficulty ``AD = α·D_fea + (1 − α)·D_stru`` of n image/text embedding pairs.

    Args:
        image_emb, text_emb: (n, d) arrays, numpy (incl. ``np.memmap``, streamed block by block)
            or torch, any float dtype; row i of each is pair i. L2-normalised here. n ≥ 2.
        alpha: weight α ∈ [0, 1] of the feature term D_fea (paper default 0.8).
        scale: ``(lo, hi)`` mapping matched cosines linearly to ŝ ∈ [0, 1] (clipped), a
            :class:`Calibration` from :func:`calibrate_scale`, or None for raw cosines.
        block: rows per Gram block (default 2048 on CPU, 8192 on CUDA); results do not depend on it
            beyond rounding. Memory ≈ block² + n×2d values of the compute dtype (+ one block of
            row copies when streaming a memmap).
        sample: if given, estimate D_stru from this many uniformly random ordered pairs i ≠ j
            (unbiased, 95 % normal CI in ``result.ci``); D_fea stays exact. See :mod:`.sampled`.
        seed: seed of the pair sampler.
        device: "cpu" or "cuda"; default CUDA when available (torch is only imported to check
            this on a machine with an NVIDIA driver or when it is already loaded).
        precision: GEMM dtype, "float64", "float32" or None (auto: float32 on CUDA with TF32
            disabled; on CPU float64 while n²·d ≤ 2³⁰, float32 above). Reductions always
            accumulate in float64; float32 stays within 1e-6 relative of float64.
        calibration: name recorded for ``scale`` (default: derived from it).
        on_step: ``on_step(done, total)`` called after each Gram block (for progress bars).
        threads: CPU threads for BLAS and torch (default all ``os.cpu_count()``), restored
            afterwards.

    Returns:
        :class:`ADResult` with ``ad``, ``d_fea``, ``d_stru`` (floats), ``n``, ``alpha``, ``scale``,
        ``calibration`` and, when sampled, ``ci`` and ``samples``.

    Raises:
        ValueError: naming the field and the fix, for bad shapes, n < 2, NaN/inf, zero vectors,
        α outside [0, 1], lo ≥ hi.
    """
    if sample is not None:
        return sampled_alignment_difficulty(
            image_emb,
            text_emb,
            samples=sample,
            alpha=alpha,
            scale=scale,
            seed=seed,
            device=device,
            precision=precision,
            calibration=calibration,
            threads=threads,
        ).result
    return evaluate(
        image_emb,
        text_emb,
        alpha,
        scale,
        block,
        device=device,
        precision=precision,
        calibration=calibration,
        on_step=on_step,
        threads=threads,
    ).result
