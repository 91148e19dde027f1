"""Sampled D_stru: unbiased, the 95 % CI covers the exact value, D_fea exact."""

from __future__ import annotations

import numpy as np
import pytest
from ad_helpers import pairs, worked_example

from core.metrics import alignment_difficulty, sampled_alignment_difficulty


def test_ci_covers_exact_and_fea_is_exact():
    x, y = pairs(400, d=16, seed=1)
    exact = alignment_difficulty(x, y)
    r = alignment_difficulty(x, y, sample=20_000, seed=3)
    assert r.d_fea == exact.d_fea
    lo, hi = r.ci["structure"]
    assert lo <= exact.d_stru <= hi
    assert (hi - lo) / 2 < 0.02 * exact.d_stru  # ±2 % at 20k pairs
    alo, ahi = r.ci["ad"]
    assert alo <= exact.ad <= ahi
    assert r.ci["level"] == 0.95 and r.ci["samples"] == 20_000 and r.samples == 20_000
    d = r.to_dict()
    assert set(d) == {"ad", "feature", "structure", "n", "alpha", "scale", "ci"}


def test_coverage_rate_over_seeds():
    x, y = pairs(150, d=8, seed=2)
    exact = alignment_difficulty(x, y).d_stru
    hits = 0
    for seed in range(60):
        lo, hi = sampled_alignment_difficulty(x, y, 500, seed=seed).structure.ci
        hits += lo <= exact <= hi
    assert hits >= 50  # nominal 57/60; a binomial 5th percentile is ~54


def test_unbiased_with_n_minus_one_over_n_factor():
    # n = 3: the (n−1)/n factor matters; the mean over many samples must match the exact value.
    x, y = pairs(3, d=4, seed=3)
    exact = alignment_difficulty(x, y).d_stru
    est = alignment_difficulty(x, y, sample=200_000, seed=0)
    assert est.d_stru == pytest.approx(exact, rel=0.01)


def test_worked_example_sampled_is_exact():
    x, y = worked_example()
    r = alignment_difficulty(x, y, sample=50)
    assert r.d_stru == pytest.approx(0.2, abs=1e-12) and r.ad == pytest.approx(0.44, abs=1e-12)


def test_memmap_sampled(tmp_path):
    x, y = pairs(200, d=8, seed=4, dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    mx, my = np.load(tmp_path / "x.npy", mmap_mode="r"), np.load(tmp_path / "y.npy", mmap_mode="r")
    a = alignment_difficulty(mx, my, sample=5000, seed=1)
    b = alignment_difficulty(x, y, sample=5000, seed=1)
    assert a.d_stru == pytest.approx(b.d_stru, rel=1e-12)
