"""The fast paths of the exact engine: float32 GEMM blocks, threads, kept sample rows, numpy only."""

from __future__ import annotations

import numpy as np
import pytest
from ad_helpers import naive_ad, pairs

from core.metrics import _backends, _engine, alignment_difficulty, pair_contributions
from core.metrics.sampled import draw_pairs, rows_to_collect, sample_d_stru


def test_auto_precision_rule():
    assert _engine.resolve_precision(None, "cpu", 100, 16) == "float64"
    assert _engine.resolve_precision(None, "cpu", 2000, 512) == "float32"
    assert _engine.resolve_precision(None, "cuda:0", 10, 2) == "float32"
    assert _engine.resolve_precision("float64", "cpu", 10**6, 512) == "float64"


def test_float32_blocks_equal_float64_to_1e6():
    x, y = pairs(1500, d=512, seed=12, noise=1.5, dtype=np.float32)  # n²·d > 2³⁰: auto = float32
    auto = alignment_difficulty(x, y, block=256)
    ref = alignment_difficulty(x, y, block=256, precision="float64")
    assert auto.d_stru == pytest.approx(ref.d_stru, rel=1e-6)
    assert auto.ad == pytest.approx(ref.ad, rel=1e-6)
    assert auto.d_fea == pytest.approx(ref.d_fea, rel=1e-6)
    fast = pair_contributions(x, y, block=256, precision="float32")
    slow = pair_contributions(x, y, block=256, precision="float64")
    np.testing.assert_allclose(fast.structure, slow.structure, rtol=1e-5)
    assert fast.structure.sum() == pytest.approx(fast.result.d_stru, rel=1e-12)


def test_float32_against_the_naive_loop():
    x, y = pairs(120, d=24, seed=13)
    ad, _, d_stru = naive_ad(x, y, alpha=0.3)
    r = alignment_difficulty(x, y, alpha=0.3, precision="float32", block=32)
    assert r.d_stru == pytest.approx(d_stru, rel=1e-6) and r.ad == pytest.approx(ad, rel=1e-6)


def test_threads_and_blocks_do_not_change_the_first_pass():
    x, y = pairs(700, d=8, seed=14)
    src = _engine.check_pairs(x, y)
    one = _engine.HostPrepared(src, "float64", 16, keep=True, workers=1)
    two = _engine.HostPrepared(src, "float64", 16, keep=True, workers=2)
    assert np.array_equal(one.s, two.s) and np.array_equal(one.rx, two.rx)
    assert one.z is not None and two.z is not None and np.array_equal(one.z, two.z)
    assert alignment_difficulty(x, y, threads=1).ad == alignment_difficulty(x, y, threads=2).ad


def test_first_bad_row_is_reported_with_threads():
    x, y = pairs(400, d=4, seed=15)
    x[397] = np.nan
    x[5] = 0.0
    with pytest.raises(ValueError, match="image_emb: row 5 is a zero vector"):
        alignment_difficulty(x, y, block=8, threads=2)


@pytest.mark.parametrize("big", [1e25, 1e-25])
def test_float32_falls_back_to_float64_for_extreme_rows(big):
    x, y = pairs(60, d=6, seed=16)
    ref = alignment_difficulty(x, y, precision="float64")
    x2 = x.copy()
    x2[7] *= big  # cosines are scale-free; its squared norm leaves the float32 range
    r = alignment_difficulty(x2, y, precision="float32")
    assert r.ad == pytest.approx(ref.ad, rel=1e-6)


def test_kept_rows_match_gathered_rows(tmp_path):
    x, y = pairs(3000, d=12, seed=17, dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    mx, my = np.load(tmp_path / "x.npy", mmap_mode="r"), np.load(tmp_path / "y.npy", mmap_mode="r")
    src = _engine.check_pairs(mx, my)
    i, j = draw_pairs(src.n, 4000, seed=2)
    rows = rows_to_collect(i, j, src.d, 8)
    assert rows is not None and np.all(np.diff(rows) > 0)
    kept = _backends.prepare(src, "cpu", "float64", 256, False, collect=rows, threads=2)
    plain = _backends.prepare(src, "cpu", "float64", 256, False)
    a, b = sample_d_stru(kept, 4000, seed=2), sample_d_stru(plain, 4000, seed=2)
    np.testing.assert_allclose(a.v, b.v, rtol=1e-12, atol=1e-15)
    assert alignment_difficulty(mx, my, sample=4000, seed=2).d_stru == pytest.approx(a.estimate)


def test_float16_input():
    x, y = pairs(80, d=10, seed=18, dtype=np.float16)
    ad, _, _ = naive_ad(x.astype(np.float64), y.astype(np.float64))
    assert alignment_difficulty(x, y).ad == pytest.approx(ad, rel=1e-9)
    assert alignment_difficulty(x, y, precision="float32").ad == pytest.approx(ad, rel=1e-6)
