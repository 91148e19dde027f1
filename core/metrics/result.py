"""The AD result record and the matched-cosine rescaling, shared by the exact and sampled paths.

``ŝ_i = clip((s_i − lo) / (hi − lo), 0, 1)`` with ``(lo, hi)`` a :class:`Calibration` or a plain
tuple; ``None`` keeps raw cosines. Split out of :mod:`core.metrics.ad` so that ``ad`` and
``sampled`` both import it and neither imports the other's internals (no import cycle).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

CLIP_SCALE: tuple[float, float] = (0.20, 0.45)
CLIP_CALIBRATION = "clip-vit-b32-laion"


@dataclass(frozen=True)
class Calibration:
    """A rescaling interval [lo, hi] for matched-pair cosines, with a name recorded in results."""

    lo: float
    hi: float
    name: str

    def __post_init__(self) -> None:
        _check_interval(self.lo, self.hi)

    def as_tuple(self) -> tuple[float, float]:
        return (self.lo, self.hi)


@dataclass(frozen=True)
class ADResult:
    """One AD evaluation. ``scale`` is ``(lo, hi)`` or None (no rescaling); ``ci`` (95 %, on AD and
    D_stru) and ``samples`` are set only for the sampled estimate of D_stru."""

    ad: float
    d_fea: float
    d_stru: float
    n: int
    alpha: float
    scale: tuple[float, float] | None
    calibration: str
    ci: dict[str, Any] | None = None
    samples: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: keys ``ad, feature, structure, n, alpha, scale`` (+ ``ci`` when sampled)."""
        out: dict[str, Any] = {
            "ad": self.ad,
            "feature": self.d_fea,
            "structure": self.d_stru,
            "n": self.n,
            "alpha": self.alpha,
            "scale": list(self.scale) if self.scale is not None else None,
        }
        if self.ci is not None:
            out["ci"] = self.ci
        return out


def _check_interval(lo: float, hi: float) -> None:
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"scale: lo and hi must be finite numbers, got ({lo}, {hi})")
    if lo >= hi:
        raise ValueError(
            f"scale: lo must be below hi, got lo={lo:g} ≥ hi={hi:g}; "
            "e.g. --scale 0.2 0.45, or --no-scale to use raw cosines"
        )


def check_alpha(alpha: float) -> float:
    try:
        a = float(alpha)
    except (TypeError, ValueError) as e:
        raise ValueError(f"alpha: must be a number in [0, 1], got {alpha!r}") from e
    if not (0.0 <= a <= 1.0):
        raise ValueError(f"alpha: must be in [0, 1] (weight of D_fea), got {alpha!r}")
    return a


def resolve_scale(
    scale: tuple[float, float] | Calibration | None, calibration: str | None = None
) -> tuple[tuple[float, float] | None, str]:
    """Normalise ``scale`` to ``((lo, hi) | None, calibration name)``."""
    if scale is None:
        return None, calibration or "none"
    if isinstance(scale, Calibration):
        return scale.as_tuple(), calibration or scale.name
    try:
        lo, hi = (float(v) for v in scale)
    except (TypeError, ValueError) as e:
        raise ValueError(f"scale: expected (lo, hi) or None, got {scale!r}") from e
    _check_interval(lo, hi)
    if calibration is None:
        calibration = CLIP_CALIBRATION if (lo, hi) == CLIP_SCALE else f"custom [{lo:g}, {hi:g}]"
    return (lo, hi), calibration


def rescale(s: np.ndarray, scale: tuple[float, float] | None) -> np.ndarray:
    """ŝ = clip((s − lo)/(hi − lo), 0, 1), or s itself when ``scale`` is None."""
    if scale is None:
        return s
    lo, hi = scale
    return np.clip((s - lo) / (hi - lo), 0.0, 1.0)
