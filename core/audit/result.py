"""The audit's result records: frozen, typed, each with ``to_dict`` (the JSON of ``implosion audit``).

``AuditReport.to_dict()`` is the command's contract::

    {"ad", "feature", "structure", "n", "alpha", "scale", "ci" (sampled only),
     "concepts": [{"concept", "name", "n", "ad", "feature", "structure", "share"}],
     "overlapping": [{"a", "b", "names", "disagreement", "image_sim", "text_sim", "structure"}],
     "flagged": [{"index", "concept", "name", "caption", "scores", "reasons", "poisoned", "path"}],
     "flagged_total", "detectors", "prediction" | null, "flag_truth" | null, "notes", "source"}

``flag_truth`` (pairs with known ground truth: a pack level or a planned attack) is
``{"poisoned", "flagged", "flagged_poisoned", "precision", "recall"}``.

``prediction`` is ``{"acc_unpoisoned", "low", "high", "incoherence", "incoherence_low",
"incoherence_high", "ad", "ad_range", "level", "model", "fitted_on", "measured", "notes"}``; a
value that would need extrapolation outside the fitted AD range is null and ``notes`` says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.metrics.result import ADResult


@dataclass(frozen=True)
class ConceptHealth:
    """One concept's share of AD (its pairs' contributions; shares over concepts sum to AD)."""

    concept: int
    name: str
    n: int
    ad: float
    feature: float
    structure: float
    share: float  # ad / AD of the whole set

    def to_dict(self) -> dict[str, Any]:
        return {
            "concept": self.concept,
            "name": self.name,
            "n": self.n,
            "ad": self.ad,
            "feature": self.feature,
            "structure": self.structure,
            "share": self.share,
        }


@dataclass(frozen=True)
class Overlap:
    """Concepts a < b whose image similarities disagree with their caption similarities.

    disagreement: mean |cos(x_i, x_j) − cos(y_i, y_j)| over i in a, j in b (the structure term
    restricted to the concept pair); image_sim / text_sim: mean cos(x_i, x_j) and cos(y_i, y_j)
    over the same pairs; structure: the pair's share of D_stru, 2·Σ_{i∈a, j∈b} |…| / n²."""

    a: int
    b: int
    names: tuple[str, str]
    disagreement: float
    image_sim: float
    text_sim: float
    structure: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "names": list(self.names),
            "disagreement": self.disagreement,
            "image_sim": self.image_sim,
            "text_sim": self.text_sim,
            "structure": self.structure,
        }


@dataclass(frozen=True)
class FlaggedPair:
    """A pair at least one detector rule flags. scores: detector name → score (the Defend
    detectors, core.defend.detectors); reasons: the rules that fired; poisoned: ground truth when
    the source knows it (a pack or a planned attack), else None."""

    index: int
    concept: int
    name: str
    caption: str | None
    scores: dict[str, float]
    reasons: tuple[str, ...]
    poisoned: bool | None
    path: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "concept": self.concept,
            "name": self.name,
            "caption": self.caption,
            "scores": dict(self.scores),
            "reasons": list(self.reasons),
            "poisoned": self.poisoned,
            "path": self.path,
        }


@dataclass(frozen=True)
class Prediction:
    """Forecast of the fine-tune's outcome from AD (core.audit.calibration).

    acc_unpoisoned / incoherence with their [low, high] intervals; None where AD is outside the
    AD range the outcome was fitted on (never extrapolated). measured: the recorded outcome of the
    same (C_P, seed) when a fitted or finished run has it, else None."""

    ad: float
    acc_unpoisoned: float | None
    low: float | None
    high: float | None
    incoherence: float | None
    incoherence_low: float | None
    incoherence_high: float | None
    ad_range: dict[str, tuple[float, float]]
    level: float
    model: str
    fitted_on: tuple[str, ...]
    measured: dict[str, Any] | None = None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "acc_unpoisoned": self.acc_unpoisoned,
            "low": self.low,
            "high": self.high,
            "incoherence": self.incoherence,
            "incoherence_low": self.incoherence_low,
            "incoherence_high": self.incoherence_high,
            "ad": self.ad,
            "ad_range": {k: list(v) for k, v in self.ad_range.items()},
            "level": self.level,
            "model": self.model,
            "fitted_on": list(self.fitted_on),
            "measured": self.measured,
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class AuditReport:
    """Everything the audit found: health (AD and its terms), concept shares, overlapping concept
    pairs, flagged pairs and the prediction (None when no calibration applies: ``notes`` says
    why)."""

    health: ADResult
    concepts: tuple[ConceptHealth, ...]
    overlapping: tuple[Overlap, ...]
    flagged: tuple[FlaggedPair, ...]
    flagged_total: int
    detectors: tuple[str, ...]
    prediction: Prediction | None
    source: str
    notes: tuple[str, ...] = field(default_factory=tuple)
    flag_truth: dict[str, Any] | None = None  # flagged vs ground truth, when the source knows it

    def to_dict(self) -> dict[str, Any]:
        out = self.health.to_dict()
        out.update(
            {
                "concepts": [c.to_dict() for c in self.concepts],
                "overlapping": [o.to_dict() for o in self.overlapping],
                "flagged": [f.to_dict() for f in self.flagged],
                "flagged_total": self.flagged_total,
                "detectors": list(self.detectors),
                "prediction": self.prediction.to_dict() if self.prediction else None,
                "flag_truth": self.flag_truth,
                "source": self.source,
                "notes": list(self.notes),
            }
        )
        return out
