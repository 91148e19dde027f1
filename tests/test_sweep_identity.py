"""The one resume/identity rule the mini and the real sweep share (core.sweep.engine.same_sweep)."""

from __future__ import annotations

from core.sweep.engine import same_sweep
from core.sweep.mini.config import preset
from core.sweep.real.config import RealSweepConfig


def test_mini_sweep_resumes_on_another_device_but_not_with_other_settings():
    cfg = preset("ci-smoke").to_dict()
    assert same_sweep(cfg, {**cfg, "device": "cuda"})
    assert not same_sweep(cfg, {**cfg, "seeds": [0, 1]})
    assert not same_sweep(cfg, {**cfg, "finetune": {**cfg["finetune"], "steps": 3}})
    # a field the saved config does not know yet (added since) does not make it another sweep
    older = {k: v for k, v in cfg.items() if k != "probe_every"}
    assert same_sweep(older, cfg)
    # tuples and lists are the same JSON value
    assert same_sweep({**cfg, "levels": (0, 2)}, {**cfg, "levels": [0, 2]})


def test_real_sweep_uses_the_same_rule(tmp_path):
    cfg = RealSweepConfig(
        model=str(tmp_path / "sd"), clip=str(tmp_path / "clip"), data=(str(tmp_path / "data"),)
    ).to_dict()
    assert same_sweep(cfg, {**cfg, "device": "cuda"})
    assert not same_sweep(cfg, {**cfg, "levels": [0, 1, 2, 3]})
