"""Decompositions sum to the totals; subset AD; poisoned-vs-rest attribution of ΔAD."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ad_helpers import naive_ad, pairs

from core.metrics import (
    alignment_difficulty,
    attribute_delta,
    pair_contributions,
    per_concept,
    subset_ad,
)


def test_pair_contributions_sum_to_totals():
    x, y = pairs(77, d=12, seed=1)
    pc = pair_contributions(x, y, alpha=0.6, block=10)
    r = pc.result
    assert pc.feature.shape == pc.structure.shape == pc.ad.shape == (77,)
    assert pc.feature.sum() == pytest.approx(r.d_fea, rel=1e-12)
    assert pc.structure.sum() == pytest.approx(r.d_stru, rel=1e-12)
    assert pc.ad.sum() == pytest.approx(r.ad, rel=1e-12)
    assert r.ad == pytest.approx(alignment_difficulty(x, y, alpha=0.6).ad, rel=1e-12)
    # t_i is row i of the structure sum: check one row directly
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    yn = y / np.linalg.norm(y, axis=1, keepdims=True)
    row = np.abs(xn @ xn[5] - yn @ yn[5])
    row[5] = 0
    assert pc.structure[5] == pytest.approx(row.sum() / 77**2, rel=1e-12)


def test_per_concept_shares_sum_to_totals():
    x, y = pairs(90, d=8, seed=2)
    labels = np.arange(90) % 4
    r, shares = per_concept(x, y, labels, block=16)
    assert [s.label for s in shares] == [0, 1, 2, 3]
    assert sum(s.n for s in shares) == 90
    assert sum(s.feature for s in shares) == pytest.approx(r.d_fea, rel=1e-12)
    assert sum(s.structure for s in shares) == pytest.approx(r.d_stru, rel=1e-12)
    assert sum(s.ad for s in shares) == pytest.approx(r.ad, rel=1e-12)
    assert set(shares[0].to_dict()) == {"n", "feature", "structure", "ad"}


def test_per_concept_sampled_shares_sum_to_sampled_total():
    x, y = pairs(60, d=8, seed=3)
    labels = np.where(np.arange(60) < 20, "dog", "cat")
    r, shares = per_concept(x, y, labels, sample=4000, seed=1)
    assert r.ci is not None
    assert sum(s.structure for s in shares) == pytest.approx(r.d_stru, rel=1e-12)
    exact_r, exact_shares = per_concept(x, y, labels)
    for s, e in zip(shares, exact_shares, strict=True):
        assert s.label == e.label and s.feature == pytest.approx(e.feature, rel=1e-12)
        assert s.structure == pytest.approx(e.structure, rel=0.15)


def test_subset_ad_mask_and_indices():
    x, y = pairs(40, d=8, seed=4)
    mask = np.arange(40) % 3 == 0
    direct = naive_ad(x[mask], y[mask])[0]
    assert subset_ad(x, y, mask).ad == pytest.approx(direct, rel=1e-9)
    assert subset_ad(x, y, np.flatnonzero(mask)).ad == pytest.approx(direct, rel=1e-9)
    assert subset_ad(torch.tensor(x), torch.tensor(y), mask).ad == pytest.approx(direct, rel=1e-9)
    with pytest.raises(ValueError, match=r"index: boolean mask must have shape \(40,\)"):
        subset_ad(x, y, mask[:10])


def _poison(x, y, idx, seed=0):
    """Dirty-label poison: captions of pairs idx are replaced by unrelated captions."""
    rng = np.random.default_rng(seed)
    y = y.copy()
    y[idx] = rng.standard_normal((len(idx), y.shape[1]))
    return x, y


def test_attribute_delta_replaced_sums_to_delta():
    x, y = pairs(80, d=8, seed=5, noise=0.3)
    mask = np.zeros(80, dtype=bool)
    mask[:10] = True
    px, py = _poison(x, y, np.flatnonzero(mask))
    att = attribute_delta((x, y), (px, py), mask, block=16)
    assert att.mode == "replaced"
    full = alignment_difficulty(px, py).ad - alignment_difficulty(x, y).ad
    assert att.delta == pytest.approx(full, rel=1e-12)
    assert att.poisoned + att.rest == pytest.approx(att.delta, rel=1e-9)
    assert att.feature_poisoned + att.feature_rest == pytest.approx(
        att.poisoned_result.d_fea - att.clean.d_fea, abs=1e-12
    )
    assert att.feature_rest == pytest.approx(0.0, abs=1e-12)  # unpoisoned captions unchanged
    assert att.poisoned > 0 and att.delta > 0


def test_attribute_delta_added_sums_to_delta():
    x, y = pairs(60, d=8, seed=6, noise=0.3)
    ex, ey = _poison(x[:12], y[:12], np.arange(12), seed=1)
    px, py = np.concatenate([x, ex]), np.concatenate([y, ey])
    mask = np.r_[np.zeros(60, bool), np.ones(12, bool)]
    att = attribute_delta((x, y), (px, py), mask)
    assert att.mode == "added"
    assert att.poisoned + att.rest == pytest.approx(att.delta, rel=1e-9)
    assert att.structure_poisoned + att.structure_rest == pytest.approx(
        att.poisoned_result.d_stru - att.clean.d_stru, rel=1e-9
    )


def test_attribute_delta_rejects_bad_layouts():
    x, y = pairs(20, d=4, seed=7)
    with pytest.raises(
        ValueError, match=r"poisoned_mask: expected a boolean array of shape \(20,\)"
    ):
        attribute_delta((x, y), (x, y), np.zeros(20, dtype=int))
    mask = np.zeros(20, bool)
    mask[:3] = True
    with pytest.raises(ValueError, match="sizes don't match a known layout"):
        attribute_delta((x[:10], y[:10]), (x, y), mask)
