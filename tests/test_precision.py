"""The training dtype rule (core.training.precision): explicit choices, the CPU fallback, the
measured-and-cached choice on CPUs with native bf16. No test depends on how fast the machine is:
the measurement itself is replaced where a decision is asserted."""

import pytest
import torch

from core.training import precision as P


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("IMPLOSION_CACHE", str(tmp_path / "cache"))


def test_explicit_choices_and_bad_value():
    assert P.compute_dtype("cpu", "fp32") == torch.float32
    assert P.compute_dtype("cpu", "bf16") == torch.bfloat16
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16"):
        P.compute_dtype("cpu", "half")


def test_auto_is_fp32_without_native_bf16(monkeypatch):
    monkeypatch.setattr(P, "native_bf16", lambda device: False)

    def probe(dtype):
        raise AssertionError("no measurement on a CPU without native bf16")

    assert P.compute_dtype("cpu", "auto", probe, "m") == torch.float32


def test_auto_without_probe_is_fp32_on_cpu(monkeypatch):
    monkeypatch.setattr(P, "native_bf16", lambda device: True)
    assert P.compute_dtype("cpu", "auto") == torch.float32


@pytest.mark.parametrize(("speedup", "expected"), [(2.0, torch.bfloat16), (1.05, torch.float32)])
def test_auto_follows_the_cached_measurement(monkeypatch, speedup, expected):
    monkeypatch.setattr(P, "native_bf16", lambda device: True)
    calls = []

    def measure(probe):
        calls.append(probe)
        return speedup

    monkeypatch.setattr(P, "measure_bf16_speedup", measure)
    assert P.compute_dtype("cpu", "auto", lambda dt: None, "model A") == expected
    assert P.compute_dtype("cpu", "auto", lambda dt: None, "model A") == expected
    assert len(calls) == 1  # measured once, then read from the cache
    P.compute_dtype("cpu", "auto", lambda dt: None, "model B")
    assert len(calls) == 2  # another model is measured on its own


def test_corrupt_cache_is_remeasured(monkeypatch, tmp_path):
    monkeypatch.setattr(P, "native_bf16", lambda device: True)
    monkeypatch.setattr(P, "measure_bf16_speedup", lambda probe: 3.0)
    path = tmp_path / "cache" / "precision.json"
    path.parent.mkdir(parents=True)
    path.write_text("[not a dict")
    assert P.compute_dtype("cpu", "auto", lambda dt: None, "m") == torch.bfloat16


def test_measure_runs_the_probe_in_both_dtypes():
    seen = []
    ratio = P.measure_bf16_speedup(seen.append, rounds=2)
    assert ratio > 0
    assert seen.count(torch.float32) == 3 and seen.count(torch.bfloat16) == 3


def test_unet_probe_leaves_no_gradients():
    from core.models.tiny import tiny_unet

    unet = tiny_unet(16, 8)  # latents 8 × 8, text states of width 8
    probe = P.unet_step_probe(unet, torch.zeros(2, 4, 8, 8), torch.zeros(2, 3, 8))
    probe(torch.float32)
    probe(torch.bfloat16)
    assert all(p.grad is None for p in unet.parameters())
    assert "UNet2DConditionModel" in P.probe_key(unet, 2)


def test_autocast_fp32_is_a_no_op():
    with P.autocast("cpu", torch.float32):
        assert not torch.is_autocast_enabled("cpu")
    with P.autocast("cpu", torch.bfloat16):
        assert torch.is_autocast_enabled("cpu")
