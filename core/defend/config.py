"""The defense a sweep applies: which detector, at which false-positive rate (no heavy imports).

:class:`DefenseConfig` is the one typed definition that crosses the sweep's process and file
boundary (``SweepConfig.defense`` in ``results.json``, the ``defended-sweep`` job config); the
detectors themselves live in :mod:`core.defend.detectors`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

# Poisoning methods a defense is evaluated against: the one list, re-exported.
from core.poison.plan import METHODS as METHODS

# Detector names (core.defend.detectors.DETECTORS has one function per name).
DETECTOR_NAMES: tuple[str, ...] = (
    "misalignment",
    "structural_outlier",
    "concept_share",
    "knn_disagreement",
)
# Detectors a report evaluates: the embedding detectors above (a defended sweep can filter with
# them) and the reconstruction detector (core.defend.reconstruction), which scores pixels with the
# pack's VAE and is read from the Nightshade cache, so it can rank but not filter a sweep's pairs.
REPORT_DETECTORS: tuple[str, ...] = (*DETECTOR_NAMES, "reconstruction")
# The false-positive rates every report states recall at.
REPORT_FPRS: tuple[float, ...] = (0.01, 0.05)


def check_detector(name: str, field: str = "detector") -> str:
    """``name`` if it is a known detector, else ValueError listing the allowed ones."""
    if name not in DETECTOR_NAMES:
        raise ValueError(
            f"{field}: unknown detector {name!r}; choose one of {list(DETECTOR_NAMES)}"
        )
    return name


def check_fpr(fpr: Any, field: str = "fpr") -> float:
    """A false-positive rate in (0, 1) as float, else ValueError naming the field."""
    try:
        f = float(fpr)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{field}: expected a rate such as 0.05, got {fpr!r}") from e
    if not (math.isfinite(f) and 0.0 < f < 1.0):
        raise ValueError(f"{field}: must be in (0, 1) (e.g. 0.05 for 5 %), got {fpr!r}")
    return f


@dataclass(frozen=True)
class DefenseConfig:
    """Drop the training pairs ``detector`` flags, at the threshold whose false-positive rate on
    the level's clean pairs is ``fpr`` (the ROC operating point, see
    :func:`core.defend.roc.threshold_at_fpr`), before a level's fine-tune.

    ``attacked``: the pack folder of the undefended sweep this one mirrors (for side-by-side
    comparison; informational)."""

    detector: str = "misalignment"
    fpr: float = 0.05
    attacked: str | None = None

    def __post_init__(self) -> None:
        check_detector(self.detector, "defense.detector")
        object.__setattr__(self, "fpr", check_fpr(self.fpr, "defense.fpr"))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def coerce(value: Any) -> DefenseConfig | None:
        """None, a DefenseConfig, or its dict form (as read back from JSON) → DefenseConfig."""
        if value is None or isinstance(value, DefenseConfig):
            return value
        if isinstance(value, dict):
            unknown = sorted(set(value) - {"detector", "fpr", "attacked"})
            if unknown:
                raise ValueError(
                    f"defense: unknown keys {unknown}; allowed: detector, fpr, attacked"
                )
            return DefenseConfig(**value)
        raise ValueError(
            f"defense: expected {{'detector': ..., 'fpr': ...}} or None, got {type(value).__name__}"
        )
