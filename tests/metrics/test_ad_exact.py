"""Exact AD engine: worked example, naive agreement, invariances, blocks, memmap, calibration."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ad_helpers import naive_ad, pairs, worked_example

from core.metrics import (
    CLIP_CALIBRATION,
    ADResult,
    Calibration,
    _backends,
    _engine,
    alignment_difficulty,
    calibrate_scale,
    pair_contributions,
)


def test_worked_example_reproduces_science_md():
    x, y = worked_example()
    r = alignment_difficulty(x, y, alpha=0.8)
    assert r.d_fea == pytest.approx(0.5, abs=1e-12)
    assert r.d_stru == pytest.approx(0.2, abs=1e-12)
    assert r.ad == pytest.approx(0.44, abs=1e-12)
    assert r.n == 2 and r.alpha == 0.8 and r.scale == (0.2, 0.45)
    assert r.calibration == CLIP_CALIBRATION
    d = r.to_dict()
    assert set(d) == {"ad", "feature", "structure", "n", "alpha", "scale"}
    assert d["scale"] == [0.2, 0.45] and d["feature"] == r.d_fea


def test_worked_example_torch_and_scaled_vectors():
    x, y = worked_example()
    r = alignment_difficulty(torch.tensor(x) * 3.0, torch.tensor(y) * 0.5)
    assert r.ad == pytest.approx(0.44, abs=1e-12)


@pytest.mark.parametrize(
    "n, dtype, scale",
    [
        (2, np.float64, (0.2, 0.45)),
        (5, np.float16, (0.2, 0.45)),
        (37, np.float32, None),
        (64, np.float64, (-0.1, 0.6)),
        (300, np.float32, (0.2, 0.45)),
    ],
)
def test_agrees_with_naive_double_loop(n, dtype, scale):
    x, y = pairs(n, d=24, seed=n, dtype=dtype)
    ad, d_fea, d_stru = naive_ad(x, y, alpha=0.7, scale=scale)
    r = alignment_difficulty(x, y, alpha=0.7, scale=scale, block=16)
    assert r.d_fea == pytest.approx(d_fea, rel=1e-9, abs=1e-15)
    assert r.d_stru == pytest.approx(d_stru, rel=1e-9)
    assert r.ad == pytest.approx(ad, rel=1e-9)


@pytest.mark.parametrize("tdtype", [torch.bfloat16, torch.float16, torch.float32])
def test_torch_low_precision_inputs_match_naive_on_the_same_values(tdtype):
    x, y = pairs(50, d=12, seed=3)
    tx, ty = torch.tensor(x).to(tdtype), torch.tensor(y).to(tdtype)
    ad, _, _ = naive_ad(tx.double().numpy(), ty.double().numpy())
    assert alignment_difficulty(tx, ty).ad == pytest.approx(ad, rel=1e-9)


def test_float32_precision_mode_is_close():
    x, y = pairs(200, d=32, seed=1)
    exact = alignment_difficulty(x, y)
    fast = alignment_difficulty(x, y, precision="float32")
    assert fast.d_stru == pytest.approx(exact.d_stru, rel=1e-5)


def test_invariances_permutation_scaling_swap():
    x, y = pairs(120, d=16, seed=7)
    x0, y0 = x.copy(), y.copy()
    base = alignment_difficulty(x, y)
    assert np.array_equal(x, x0) and np.array_equal(y, y0)  # inputs untouched
    tx = torch.tensor(x)
    alignment_difficulty(tx, torch.tensor(y))
    assert torch.equal(tx, torch.tensor(x0))
    perm = np.random.default_rng(0).permutation(len(x))
    assert alignment_difficulty(x[perm], y[perm]).ad == pytest.approx(base.ad, rel=1e-12)
    factors = np.random.default_rng(1).uniform(0.01, 100.0, size=(len(x), 1))
    assert alignment_difficulty(x * factors, y / factors).ad == pytest.approx(base.ad, rel=1e-12)
    swapped = alignment_difficulty(y, x)
    assert swapped.d_stru == pytest.approx(base.d_stru, rel=1e-12)
    assert swapped.d_fea == pytest.approx(base.d_fea, rel=1e-12)  # cos is symmetric too


def test_block_size_does_not_change_result():
    x, y = pairs(101, d=8, seed=2)
    ref = alignment_difficulty(x, y, block=4096).d_stru
    for block in (1, 7, 50, 100, 101):
        assert alignment_difficulty(x, y, block=block).d_stru == pytest.approx(ref, rel=1e-12)


def test_alpha_endpoints_and_no_scale():
    x, y = pairs(30, seed=4)
    r0 = alignment_difficulty(x, y, alpha=0.0)
    r1 = alignment_difficulty(x, y, alpha=1.0)
    assert r0.ad == pytest.approx(r0.d_stru) and r1.ad == pytest.approx(r1.d_fea)
    raw = alignment_difficulty(x, y, scale=None)
    assert raw.scale is None and raw.calibration == "none"
    assert raw.to_dict()["scale"] is None
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    yn = y / np.linalg.norm(y, axis=1, keepdims=True)
    assert raw.d_fea == pytest.approx(np.mean(1 - (xn * yn).sum(1)), rel=1e-12)


def test_identical_graphs_have_zero_structure():
    x, _ = pairs(40, seed=5)
    r = alignment_difficulty(x, x.copy(), scale=None)
    assert r.d_stru == pytest.approx(0.0, abs=1e-14) and r.d_fea == pytest.approx(0.0, abs=1e-14)


def test_memmap_input_is_streamed(tmp_path):
    x, y = pairs(90, d=10, seed=6, dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    mx = np.load(tmp_path / "x.npy", mmap_mode="r")
    my = np.load(tmp_path / "y.npy", mmap_mode="r")
    src = _engine.check_pairs(mx, my)
    assert src.streaming
    prep = _backends.prepare(src, "cpu", "float64", 32, keep=not src.streaming)
    assert isinstance(prep, _engine.HostPrepared)
    assert prep.z is None  # nothing n×d materialised
    r = alignment_difficulty(mx, my, block=32)
    assert r.ad == pytest.approx(alignment_difficulty(x, y).ad, rel=1e-12)
    assert r.ad == pytest.approx(naive_ad(x, y)[0], rel=1e-9)


def test_on_step_and_threads_restored():
    x, y = pairs(50, seed=8)
    steps = []
    before = torch.get_num_threads(), torch.get_float32_matmul_precision()
    alignment_difficulty(x, y, block=10, on_step=lambda d, t: steps.append((d, t)))
    assert steps[-1] == (15, 15) and len(steps) == 15  # 5 row blocks → 5·6/2 upper blocks
    assert (torch.get_num_threads(), torch.get_float32_matmul_precision()) == before


def test_calibrate_scale_quantiles_and_recorded_name():
    x, y = pairs(500, d=16, seed=9)
    cal = calibrate_scale(x, y, lo_q=0.05, hi_q=0.95)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    yn = y / np.linalg.norm(y, axis=1, keepdims=True)
    s = (xn * yn).sum(1)
    assert (cal.lo, cal.hi) == pytest.approx(tuple(np.quantile(s, [0.05, 0.95])))
    r = alignment_difficulty(x, y, scale=cal)
    assert r.scale == (cal.lo, cal.hi) and r.calibration == cal.name
    assert "calibrated" in r.calibration
    # 5 % of clean pairs are clipped at each end, the rest spread inside (0, 1)
    s_hat = np.clip((s - cal.lo) / (cal.hi - cal.lo), 0, 1)
    assert np.mean(s_hat == 0) == pytest.approx(0.05, abs=0.01)
    assert np.mean(s_hat == 1) == pytest.approx(0.05, abs=0.01)
    assert r.d_fea == pytest.approx(np.mean(1 - s_hat), rel=1e-12)
    custom = alignment_difficulty(x, y, scale=(0.1, 0.9))
    assert custom.calibration.startswith("custom")
    named = alignment_difficulty(x, y, scale=Calibration(0.1, 0.9, "my-clip"))
    assert named.calibration == "my-clip" and named.ad == custom.ad


def test_result_is_frozen():
    x, y = worked_example()
    r = alignment_difficulty(x, y)
    assert isinstance(r, ADResult)
    with pytest.raises(AttributeError):
        r.ad = 1.0  # type: ignore[misc]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(tmp_path):
    x, y = pairs(3000, d=64, seed=11, dtype=np.float32)
    cpu = alignment_difficulty(x, y, device="cpu", precision="float64")
    fp32 = alignment_difficulty(x, y, device="cuda", block=1024)  # TF32 off: true fp32
    fp64 = alignment_difficulty(x, y, device="cuda", precision="float64")
    assert fp32.d_stru == pytest.approx(cpu.d_stru, rel=1e-6)
    assert fp64.d_stru == pytest.approx(cpu.d_stru, rel=1e-9)
    on_device = alignment_difficulty(torch.from_numpy(x).cuda(), torch.from_numpy(y).cuda())
    assert on_device.ad == pytest.approx(cpu.ad, rel=1e-6)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    mx, my = np.load(tmp_path / "x.npy", mmap_mode="r"), np.load(tmp_path / "y.npy", mmap_mode="r")
    assert alignment_difficulty(mx, my, device="cuda", block=512).ad == pytest.approx(
        cpu.ad, rel=1e-6
    )
    pc = pair_contributions(x, y, device="cuda")
    assert pc.structure.sum() == pytest.approx(cpu.d_stru, rel=1e-6)
    assert alignment_difficulty(x, y, device="cuda", sample=20_000).ci is not None
