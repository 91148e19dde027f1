"""Bad input gives a ValueError naming the field and the fix, never a silent number."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ad_helpers import pairs

from core.metrics import alignment_difficulty, calibrate_scale, per_concept


@pytest.fixture
def xy():
    return pairs(10, d=4, seed=0)


def test_shape_mismatch(xy):
    x, y = xy
    with pytest.raises(ValueError, match=r"image_emb/text_emb: shapes differ \(\(10, 4\) vs"):
        alignment_difficulty(x, y[:, :3])
    with pytest.raises(ValueError, match="shapes differ"):
        alignment_difficulty(x, y[:9])


def test_not_2d(xy):
    x, y = xy
    with pytest.raises(ValueError, match=r"image_emb: expected a 2-D array of shape \(n, d\)"):
        alignment_difficulty(x[0], y)
    with pytest.raises(ValueError, match="text_emb: expected a 2-D"):
        alignment_difficulty(x, y[None])


def test_too_few_pairs(xy):
    x, y = xy
    with pytest.raises(ValueError, match="need at least 2 pairs, got n=1"):
        alignment_difficulty(x[:1], y[:1])
    with pytest.raises(ValueError, match="n=0"):
        alignment_difficulty(x[:0], y[:0])


def test_zero_width(xy):
    with pytest.raises(ValueError, match="width d is 0"):
        alignment_difficulty(np.zeros((3, 0)), np.zeros((3, 0)))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_inf_names_row(xy, bad):
    x, y = xy
    y = y.copy()
    y[7, 2] = bad
    with pytest.raises(ValueError, match="text_emb: row 7 contains NaN or inf"):
        alignment_difficulty(x, y, block=3)
    with pytest.raises(ValueError, match="text_emb: row 7"):
        alignment_difficulty(x, y, sample=100)


def test_zero_vector_names_row(xy):
    x, y = xy
    x = x.copy()
    x[4] = 0
    with pytest.raises(ValueError, match="image_emb: row 4 is a zero vector"):
        alignment_difficulty(x, y)
    with pytest.raises(ValueError, match="image_emb: row 4"):
        alignment_difficulty(torch.tensor(x), torch.tensor(y))


def test_overflowing_row(xy):
    x, y = xy
    x = x.copy()
    x[3] = 1e300
    with pytest.raises(ValueError, match="image_emb: row 3 is too large to normalise"):
        alignment_difficulty(x, y)


def test_non_float_dtype(xy):
    x, y = xy
    with pytest.raises(ValueError, match="image_emb: dtype int64 is not floating point"):
        alignment_difficulty(x.astype(np.int64), y)


@pytest.mark.parametrize("alpha", [-0.1, 1.5, float("nan"), "high"])
def test_alpha_outside_unit_interval(xy, alpha):
    with pytest.raises(ValueError, match="alpha: must be"):
        alignment_difficulty(*xy, alpha=alpha)


@pytest.mark.parametrize("scale", [(0.45, 0.2), (0.3, 0.3), (0.0, float("inf")), (1.0,)])
def test_bad_scale(xy, scale):
    with pytest.raises(ValueError, match="scale:"):
        alignment_difficulty(*xy, scale=scale)


def test_bad_block_sample_precision_device(xy):
    with pytest.raises(ValueError, match="block: must be a positive integer"):
        alignment_difficulty(*xy, block=0)
    with pytest.raises(ValueError, match="sample: number of random pairs must be an integer ≥ 2"):
        alignment_difficulty(*xy, sample=1)
    with pytest.raises(ValueError, match="precision: 'half' is not one of"):
        alignment_difficulty(*xy, precision="half")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device: 'cuda' requested but no CUDA"):
            alignment_difficulty(*xy, device="cuda")


def test_labels_length_mismatch(xy):
    with pytest.raises(ValueError, match=r"labels: expected one label per pair, shape \(10,\)"):
        per_concept(*xy, labels=np.zeros(9, dtype=int))


def test_calibration_needs_spread_and_valid_quantiles(xy):
    x, _ = xy
    with pytest.raises(ValueError, match="no spread"):
        calibrate_scale(x, x.copy())
    with pytest.raises(ValueError, match="lo_q/hi_q"):
        calibrate_scale(*xy, lo_q=0.9, hi_q=0.1)
