"""AD → outcome calibration: what a model's finished sweeps say the fine-tune will do to AD's pairs.

Each record (C_P, seed) of a sweep pack pairs the AD of the level's training pairs with the
fine-tuned model's judged accuracy on unpoisoned concepts and its incoherence. For each outcome y
the calibration fits, on the records where y is defined:

* the mean ``ŷ(AD)``: a polynomial of degree q ∈ {1, 2, 3} in AD, q chosen by leave-one-seed-out
  mean absolute error (each seed poisons its own concept set, so a seed is the unit of novelty);
* the spread ``s(AD) = max(s_min, β₀ + β₁·AD)``: least squares of the leave-one-seed-out absolute
  residuals |r_i| on AD (the outcome varies little at low AD and a lot near implosion);
* the interval ``ŷ ± k·s(AD)`` with k the ⌈(m+1)·level⌉-th smallest |r_i| / s(AD_i) over the m
  records: split-conformal prediction with normalised residuals, the held-out residuals standing in
  for a calibration split. ``level`` = 0.9 by default.

Predictions are clipped to the outcome's range ([0, 1] for accuracy, ≥ 0 for incoherence). An AD
outside the fitted AD range of an outcome is never extrapolated silently: within ``margin`` of it
(the median over levels of the AD's seed-to-seed range at one C_P, i.e. what a new seed of a
fitted level may land on) the value is given and a note flags the extrapolation; beyond, the value
is None and a note says why. The fit records the model, the packs, their shared AD scale and the fine-tune it describes; a
pack with another scale or another fine-tune cannot be mixed in (ValueError naming the field).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.audit.result import Prediction
from core.results.pack import Pack

OUTCOMES: tuple[str, ...] = ("acc_unpoisoned", "incoherence")
BOUNDS: dict[str, tuple[float, float]] = {
    "acc_unpoisoned": (0.0, 1.0),
    "incoherence": (0.0, math.inf),
}
DEGREES: tuple[int, ...] = (1, 2, 3)
S_MIN = 0.005  # floor of the spread: an outcome measured on finitely many samples is never exact
# Sweep config fields that change what a fine-tune does to given pairs: packs mixed in one
# calibration must agree on them.
TRAINING_KEYS: tuple[str, ...] = ("finetune", "poison_ratio", "poison_mode", "n_clean_per_concept")


@dataclass(frozen=True)
class OutcomeFit:
    """One outcome's fit: polynomial ``coef`` (highest power first), spread (β₀, β₁, s_min),
    conformal multiplier ``k``, the fitted AD range, m records, leave-one-seed-out MAE."""

    outcome: str
    coef: tuple[float, ...]
    spread: tuple[float, float, float]
    k: float
    ad_range: tuple[float, float]
    m: int
    loso_mae: float
    margin: float = 0.0

    def mean(self, ad: float) -> float:
        lo, hi = BOUNDS[self.outcome]
        return float(np.clip(np.polyval(self.coef, ad), lo, hi))

    def interval(self, ad: float) -> tuple[float, float, float]:
        """(mean, low, high) at ``ad`` (caller checks the range)."""
        b0, b1, s_min = self.spread
        half = self.k * max(s_min, b0 + b1 * ad)
        lo, hi = BOUNDS[self.outcome]
        mu = float(np.polyval(self.coef, ad))
        return self.mean(ad), float(max(lo, mu - half)), float(min(hi, mu + half))

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "degree": len(self.coef) - 1,
            "coef": list(self.coef),
            "spread": list(self.spread),
            "k": self.k,
            "ad_range": list(self.ad_range),
            "records": self.m,
            "loso_mae": self.loso_mae,
            "margin": self.margin,
        }


def _loso_residuals(ad: np.ndarray, y: np.ndarray, seeds: np.ndarray, deg: int) -> np.ndarray:
    r = np.empty_like(y)
    for s in np.unique(seeds):
        test = seeds == s
        train = ~test
        d = min(deg, len(np.unique(ad[train])) - 1)
        r[test] = y[test] - np.polyval(np.polyfit(ad[train], y[train], max(d, 0)), ad[test])
    return r


def fit_outcome(
    outcome: str,
    ad: np.ndarray,
    y: np.ndarray,
    seeds: np.ndarray,
    level: float = 0.9,
    c_p: np.ndarray | None = None,
) -> OutcomeFit:
    """Fit one outcome (see module doc); needs ≥ 2 seeds and ≥ 4 records. ``c_p`` (the records'
    levels) sets the extrapolation margin; without it the margin is 0."""
    ad, y, seeds = (np.asarray(v, dtype=np.float64) for v in (ad, y, seeds))
    if len(np.unique(seeds)) < 2 or y.size < 4:
        raise ValueError(
            f"calibration: {outcome} needs records of ≥ 2 seeds (got {len(np.unique(seeds))}) and "
            f"≥ 4 records (got {y.size}); run a sweep with more seeds, e.g. --preset cpu-quick"
        )
    best: tuple[float, int, np.ndarray] | None = None
    for deg in DEGREES:
        if deg >= len(np.unique(ad)):
            break
        r = _loso_residuals(ad, y, seeds, deg)
        mae = float(np.mean(np.abs(r)))
        if best is None or mae < best[0] - 1e-12:
            best = (mae, deg, r)
    assert best is not None
    mae, deg, r = best
    coef = np.polyfit(ad, y, deg)
    a = np.abs(r)
    b1, b0 = np.polyfit(ad, a, 1)
    s = np.maximum(S_MIN, b0 + b1 * ad)
    z = np.sort(a / s)
    m = z.size
    k = float(z[min(m - 1, math.ceil((m + 1) * level) - 1)])
    margin = 0.0
    if c_p is not None:
        lv = np.asarray(c_p)
        spans = [np.ptp(ad[lv == c]) for c in np.unique(lv) if (lv == c).sum() > 1]
        margin = float(np.median(spans)) if spans else 0.0
    return OutcomeFit(
        outcome,
        tuple(float(c) for c in coef),
        (float(b0), float(b1), S_MIN),
        k,
        (float(ad.min()), float(ad.max())),
        m,
        mae,
        margin,
    )


@dataclass(frozen=True)
class OutcomeCalibration:
    """AD → outcome for one model and one fine-tune, fitted on its sweep packs."""

    model: str
    fitted_on: tuple[str, ...]
    scale: tuple[float, float] | None
    training: dict[str, Any]
    fits: dict[str, OutcomeFit]
    seeds: tuple[int, ...]
    records: tuple[dict[str, Any], ...]
    level: float = 0.9

    def predict(self, ad: float, c_p: int | None = None, seed: int | None = None) -> Prediction:
        """Forecast at ``ad``; ``c_p``/``seed`` look up a measured record of the same level."""
        notes: list[str] = []
        vals: dict[str, tuple[float | None, float | None, float | None]] = {}
        for name, fit in self.fits.items():
            lo, hi = fit.ad_range
            where = f"outside the fitted range [{lo:.3f}, {hi:.3f}]"
            if lo <= ad <= hi:
                vals[name] = fit.interval(ad)
            elif lo - fit.margin <= ad <= hi + fit.margin:
                vals[name] = fit.interval(ad)
                notes.append(
                    f"{name}: AD {ad:.3f} is just {where}, within one level's seed-to-seed AD "
                    f"range ({fit.margin:.3f}): extrapolated, treat with care"
                )
            else:
                vals[name] = (None, None, None)
                notes.append(
                    f"{name}: AD {ad:.3f} is {where} (margin {fit.margin:.3f}); not "
                    "extrapolated (run a sweep that reaches this AD to calibrate it)"
                )
        measured = None
        if c_p is not None and seed is not None:
            measured = self.measured(c_p, seed)
            if seed in self.seeds:
                notes.append(f"seed {seed} is one the calibration was fitted on (in-sample)")
        acc, inc = vals.get("acc_unpoisoned", (None,) * 3), vals.get("incoherence", (None,) * 3)
        return Prediction(
            ad=float(ad),
            acc_unpoisoned=acc[0],
            low=acc[1],
            high=acc[2],
            incoherence=inc[0],
            incoherence_low=inc[1],
            incoherence_high=inc[2],
            ad_range={k: f.ad_range for k, f in self.fits.items()},
            level=self.level,
            model=self.model,
            fitted_on=self.fitted_on,
            measured=measured,
            notes=tuple(notes),
        )

    def measured(self, c_p: int, seed: int) -> dict[str, Any] | None:
        """The recorded outcome of (c_p, seed) in the fitted packs, or None."""
        for r in self.records:
            if int(r["c_p"]) == int(c_p) and int(r["seed"]) == int(seed):
                return {k: r.get(k) for k in ("c_p", "seed", "ad", *OUTCOMES)}
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "fitted_on": list(self.fitted_on),
            "scale": list(self.scale) if self.scale else None,
            "training": self.training,
            "seeds": list(self.seeds),
            "level": self.level,
            "fits": {k: f.to_dict() for k, f in self.fits.items()},
        }


def pack_model(pack: Pack) -> Path:
    """The model folder a pack was made with (config.model; None: the shipped base)."""
    from core.io import default_base

    m = pack.config.get("model")
    return (Path(m) if m else default_base()).resolve()


def training_of(pack: Pack) -> dict[str, Any]:
    """The sweep config fields that decide what the fine-tune does (TRAINING_KEYS)."""
    cfg = pack.config
    return {k: cfg.get(k) for k in TRAINING_KEYS}


def fit_calibration(packs: Sequence[Pack], level: float = 0.9) -> OutcomeCalibration:
    """Fit every outcome on the records of ``packs`` (same model, AD scale and fine-tune)."""
    if not packs:
        raise ValueError("calibration: no packs given; pass a sweep pack, e.g. assets/demo")
    first = packs[0]
    model, scale, training = pack_model(first), first.config.get("ad_scale"), training_of(first)
    for p in packs[1:]:
        if pack_model(p) != model:
            raise ValueError(
                f"calibration: {p.root} was made with {pack_model(p)}, {first.root} with {model}; "
                "calibrate each model on its own packs"
            )
        if not np.allclose(p.config.get("ad_scale") or [0, 0], scale or [0, 0], atol=1e-9):
            raise ValueError(
                f"calibration: {p.root} measures AD on scale {p.config.get('ad_scale')}, "
                f"{first.root} on {scale}; AD values on different scales cannot share a fit"
            )
        if training_of(p) != training:
            diff = [k for k in TRAINING_KEYS if training_of(p).get(k) != training.get(k)]
            raise ValueError(
                f"calibration: {p.root} fine-tunes differently from {first.root} ({diff}); "
                "a calibration describes one fine-tune"
            )
    records = [r for p in packs for r in p.records if r.get("ad") is not None]
    fits: dict[str, OutcomeFit] = {}
    for name in OUTCOMES:
        rows = [r for r in records if r.get(name) is not None]
        fits[name] = fit_outcome(
            name,
            np.array([r["ad"] for r in rows]),
            np.array([r[name] for r in rows]),
            np.array([r["seed"] for r in rows]),
            level,
            np.array([r["c_p"] for r in rows]),
        )
    return OutcomeCalibration(
        model=str(model),
        fitted_on=tuple(str(p.root) for p in packs),
        scale=(float(scale[0]), float(scale[1])) if scale else None,
        training=training,
        fits=fits,
        seeds=tuple(sorted({int(r["seed"]) for r in records})),
        records=tuple(records),
        level=level,
    )


def calibration_packs(model: str | Path | None = None) -> list[Pack]:
    """The packs a model's calibration is fitted on by default: the shipped demo pack for the
    shipped base; for another model, its finished sweeps (``list_packs``) with ≥ 2 seeds that
    share the first one's fine-tune. Empty when the model has none."""
    from core.io import default_base
    from core.results.pack import demo_dir, list_packs, load_pack

    want = (Path(model) if model else default_base()).resolve()
    if want == default_base().resolve() and (demo_dir() / "results.json").is_file():
        demo = load_pack(demo_dir())
        if pack_model(demo) == want:
            return [demo]
    found: list[Pack] = []
    for root in list_packs().values():
        try:
            p = load_pack(root)
        except (OSError, ValueError):
            continue
        if pack_model(p) != want or not p.results.get("complete") or len(p.config["seeds"]) < 2:
            continue
        if found and (
            training_of(p) != training_of(found[0])
            or p.config.get("ad_scale") != found[0].config.get("ad_scale")
        ):
            continue
        found.append(p)
    return found


def calibration_for(
    model: str | Path | None = None, packs: Sequence[str | Path] | None = None
) -> OutcomeCalibration:
    """The calibration of ``model`` (default: the shipped base) from ``packs`` or the default
    packs (:func:`calibration_packs`). ValueError saying how to make one when none exists."""
    from core.results.pack import load_pack

    if packs:
        loaded = [load_pack(Path(p)) for p in packs]
        if model is not None:
            want = Path(model).resolve()
            bad = [str(p.root) for p in loaded if pack_model(p) != want]
            if bad:
                raise ValueError(f"--calibrate-on: {bad} were not made with model {want}")
        return fit_calibration(loaded)
    found = calibration_packs(model)
    if not found:
        raise ValueError(
            f"model: no calibration exists for {model or 'the shipped base'}: no finished sweep "
            "of it with ≥ 2 seeds; run `implosion sweep --model DIR --preset cpu-quick --out DIR` "
            "first (or pass --calibrate-on PACK)"
        )
    return fit_calibration(found)
