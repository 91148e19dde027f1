"""Decompositions of AD: per pair, per concept, per subset, and poisoned-vs-rest attribution.

Per-pair contributions split AD exactly into n terms that sum to it::

    f_i = (1 − ŝ_i) / n                    Σ_i f_i = D_fea
    t_i = (1/n²) Σ_{j≠i} |cos(x_i,x_j) − cos(y_i,y_j)|    Σ_i t_i = D_stru
    c_i = α f_i + (1 − α) t_i              Σ_i c_i = AD

t_i gives each ordered pair (i, j) to its first element, i.e. every unordered pair {i, j} half to
i and half to j. A concept's share is the sum of c_i over its pairs, so shares sum to the totals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from core.metrics import _engine
from core.metrics.ad import CLIP_SCALE, ADResult, Calibration, alignment_difficulty, evaluate
from core.metrics.sampled import sampled_alignment_difficulty


@dataclass(frozen=True)
class PairContributions:
    """Per-pair contributions (each (n,) float64): ``feature`` f_i, ``structure`` t_i, ``ad`` c_i."""

    feature: np.ndarray
    structure: np.ndarray
    ad: np.ndarray
    result: ADResult


@dataclass(frozen=True)
class ConceptShare:
    """One concept's share of D_fea, D_stru and AD (shares over all concepts sum to the totals)."""

    label: Any
    n: int
    feature: float
    structure: float
    ad: float

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "feature": self.feature, "structure": self.structure, "ad": self.ad}


@dataclass(frozen=True)
class DeltaAttribution:
    """``delta = AD(poisoned) − AD(clean) = poisoned + rest`` (and likewise per term).

    ``mode`` is "replaced" (same n; masked rows were swapped for poison) or "added" (the poisoned set
    is the clean set, in order, plus the masked rows)."""

    delta: float
    poisoned: float
    rest: float
    feature_poisoned: float
    feature_rest: float
    structure_poisoned: float
    structure_rest: float
    mode: Literal["replaced", "added"]
    clean: ADResult
    poisoned_result: ADResult


def pair_contributions(
    image_emb: Any,
    text_emb: Any,
    alpha: float = 0.8,
    scale: tuple[float, float] | Calibration | None = CLIP_SCALE,
    block: int | None = None,
    **kwargs: Any,
) -> PairContributions:
    """Exact per-pair contributions f, t, c (n,) float64 of (n, d) embeddings (see module doc).

    Same cost as :func:`~core.metrics.ad.alignment_difficulty` (row sums come from the same blocks).
    """
    ex = evaluate(image_emb, text_emb, alpha, scale, block, row_sums=True, **kwargs)
    n, a = ex.result.n, ex.result.alpha
    assert ex.row_sums is not None
    f = (1.0 - ex.s_hat) / n
    t = ex.row_sums / (n * n)
    return PairContributions(f, t, a * f + (1.0 - a) * t, ex.result)


def check_labels(labels: Any, n: int, field: str = "labels") -> tuple[np.ndarray, np.ndarray]:
    """Return (unique labels, inverse (n,) int64); ValueError if not a 1-D array of length n."""
    lab = np.asarray(labels)
    if lab.ndim != 1 or lab.shape[0] != n:
        raise ValueError(
            f"{field}: expected one label per pair, shape ({n},), got shape {lab.shape}; "
            "labels must be a 1-D array aligned with the embedding rows"
        )
    if lab.dtype == object:
        raise ValueError(f"{field}: object arrays are not supported; use integer labels")
    if np.issubdtype(lab.dtype, np.floating) and not np.isfinite(lab).all():
        raise ValueError(f"{field}: contains NaN or inf; use integer concept ids")
    uniq, inv = np.unique(lab, return_inverse=True)
    return uniq, inv.astype(np.int64)


def per_concept(
    image_emb: Any,
    text_emb: Any,
    labels: Any,
    alpha: float = 0.8,
    scale: tuple[float, float] | Calibration | None = CLIP_SCALE,
    block: int | None = None,
    *,
    sample: int | None = None,
    seed: int = 0,
    labels_field: str = "labels",
    **kwargs: Any,
) -> tuple[ADResult, list[ConceptShare]]:
    """Each concept's share of D_fea, D_stru and AD; ``labels`` (n,) integer concept ids.

    Exact by default. With ``sample=M`` the structure shares are estimated from the same random
    pairs as D_stru (each sampled pair credited to its first row's concept), so they still sum to
    the sampled D_stru; feature shares stay exact.
    """
    n = _engine.check_pairs(image_emb, text_emb).n  # shapes first: fail fast on bad labels
    uniq, inv = check_labels(labels, n, labels_field)
    if sample is not None:
        sa = sampled_alignment_difficulty(image_emb, text_emb, sample, alpha, scale, seed, **kwargs)
        result, s_hat = sa.result, sa.s_hat
        m = sa.structure.samples
        hits = np.bincount(inv[sa.structure.i], weights=sa.structure.v, minlength=len(uniq))
        stru: np.ndarray = hits * ((n - 1) / n) / m
    else:
        ex = evaluate(image_emb, text_emb, alpha, scale, block, row_sums=True, **kwargs)
        result, s_hat = ex.result, ex.s_hat
        assert ex.row_sums is not None
        stru = np.bincount(inv, weights=ex.row_sums, minlength=len(uniq)) / (n * n)
    fea = np.bincount(inv, weights=1.0 - s_hat, minlength=len(uniq)) / n
    counts = np.bincount(inv, minlength=len(uniq))
    a = result.alpha
    shares = [
        ConceptShare(
            label=uniq[k].item(),
            n=int(counts[k]),
            feature=float(fea[k]),
            structure=float(stru[k]),
            ad=float(a * fea[k] + (1.0 - a) * stru[k]),
        )
        for k in range(len(uniq))
    ]
    return result, shares


def subset_ad(image_emb: Any, text_emb: Any, index: Any, **kwargs: Any) -> ADResult:
    """AD of the pairs selected by ``index`` (boolean mask (n,) or integer indices), recomputed as
    a dataset of its own (its own n). Memmapped inputs: only the selected rows are read."""
    idx = _as_index(index, len(image_emb), "index")
    if _engine.is_tensor(image_emb) or _engine.is_tensor(text_emb):
        t = _engine.torch_module().as_tensor(idx)
        return alignment_difficulty(image_emb[t], text_emb[t], **kwargs)
    return alignment_difficulty(image_emb[idx], text_emb[idx], **kwargs)


def _as_index(index: Any, n: int, field: str) -> np.ndarray:
    idx = np.asarray(index)
    if idx.dtype == bool:
        if idx.shape != (n,):
            raise ValueError(f"{field}: boolean mask must have shape ({n},), got {idx.shape}")
        return np.flatnonzero(idx)
    if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"{field}: pass a boolean mask of shape ({n},) or 1-D integer indices")
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise ValueError(f"{field}: indices out of range for n={n}")
    return np.sort(idx % n)


def attribute_delta(
    clean: tuple[Any, Any],
    poisoned: tuple[Any, Any],
    poisoned_mask: Any,
    alpha: float = 0.8,
    scale: tuple[float, float] | Calibration | None = CLIP_SCALE,
    block: int | None = None,
    **kwargs: Any,
) -> DeltaAttribution:
    """Attribute ΔAD = AD(poisoned) − AD(clean) to the poisoned pairs vs the rest.

    Args:
        clean, poisoned: ``(image_emb, text_emb)`` with shapes (n_c, d) and (n_p, d).
        poisoned_mask: (n_p,) bool, True for poisoned pairs of the poisoned set (P).

    Two layouts are recognised from the sizes (both share the same per-pair accounting c_i):

    * "replaced" (n_c = n_p): row i of both sets is the same slot, poison replaced the masked rows.
      poisoned = Σ_{i∈P} (c_i^pois − c_i^clean), rest = Σ_{i∉P} (c_i^pois − c_i^clean).
    * "added" (n_c = n_p − |P|): the unmasked rows of the poisoned set are the clean set.
      poisoned = Σ_{i∈P} c_i^pois, rest = Σ_{i∉P} c_i^pois − AD(clean); the rest is what the
      clean pairs lose or gain because n grew and their structure now includes the poison.

    Both parts sum to ``delta`` exactly (up to float64 rounding), per term as well.
    """
    pc = pair_contributions(*poisoned, alpha, scale, block, **kwargs)
    n_p = pc.result.n
    mask = np.asarray(poisoned_mask)
    if mask.dtype != bool or mask.shape != (n_p,):
        raise ValueError(
            f"poisoned_mask: expected a boolean array of shape ({n_p},) (one flag per poisoned-set "
            f"pair), got dtype {mask.dtype} shape {mask.shape}"
        )
    cc = pair_contributions(*clean, alpha, scale, block, **kwargs)
    n_c, k = cc.result.n, int(mask.sum())
    a = pc.result.alpha

    def split(p_vec: np.ndarray, c_vec: np.ndarray | None, c_total: float) -> tuple[float, float]:
        if c_vec is not None:  # replaced: slot-by-slot differences
            diff = p_vec - c_vec
            return float(diff[mask].sum()), float(diff[~mask].sum())
        return float(p_vec[mask].sum()), float(p_vec[~mask].sum()) - c_total

    if n_c == n_p:
        mode: Literal["replaced", "added"] = "replaced"
        fp, fr = split(pc.feature, cc.feature, 0.0)
        sp, sr = split(pc.structure, cc.structure, 0.0)
    elif n_c == n_p - k:
        mode = "added"
        fp, fr = split(pc.feature, None, cc.result.d_fea)
        sp, sr = split(pc.structure, None, cc.result.d_stru)
    else:
        raise ValueError(
            f"clean/poisoned: sizes don't match a known layout (n_clean={n_c}, n_poisoned={n_p}, "
            f"poisoned pairs={k}); need n_clean == n_poisoned (replaced) or "
            "n_clean == n_poisoned − poisoned pairs (added)"
        )
    return DeltaAttribution(
        delta=pc.result.ad - cc.result.ad,
        poisoned=a * fp + (1.0 - a) * sp,
        rest=a * fr + (1.0 - a) * sr,
        feature_poisoned=fp,
        feature_rest=fr,
        structure_poisoned=sp,
        structure_rest=sr,
        mode=mode,
        clean=cc.result,
        poisoned_result=pc.result,
    )
