"""The run-time estimate: phases by hand, the per-machine rates cache (the time left a job shows:
tests/jobs/test_progress.py)."""

from __future__ import annotations

import json

import pytest

from core.sweep.mini.estimate import Rates, cached_rates, estimate, format_seconds, machine_key
from core.sweep.mini.run import SweepConfig
from core.training.finetune import FinetuneConfig

RATES = Rates(
    train=100.0, sample=200.0, encode=1000.0, judge=500.0, start_s=5.0, load=1.0, measured="t"
)


def test_estimate_by_hand():
    cfg = SweepConfig(
        levels=(0, 2),
        seeds=(0,),
        n_clean_per_concept=10,
        finetune=FinetuneConfig(steps=20, batch=50),
        eval_samples=2,
        grid_samples=1,
        eval_steps=10,
        probe_every=10,
    )
    e = estimate(cfg, 8, RATES)
    assert e.start == 5.0 and e.levels == 2
    assert e.setup == pytest.approx(80 / 1000)
    assert e.train == pytest.approx(2 * 20 * 50 / 100)  # levels × steps × batch / img/s
    # probes at steps 0, 10, 20: 3 × K generations, each 10 DDIM steps + judging
    assert e.probes == pytest.approx(2 * 3 * 8 * (10 / 200 + 1 / 500))
    assert e.evaluate == pytest.approx(2 * 16 * (10 / 200 + 2 / 500))
    pairs = (80 + 0) + (80 + 2 * 10)
    assert e.other == pytest.approx(0.2 * pairs / 1000)
    assert e.total == pytest.approx(
        sum(e.to_dict()[k] for k in ("start", "setup", "train", "probes", "evaluate", "other"))
    )
    # twice the steps: exactly twice the training time
    e2 = estimate(
        SweepConfig(**{**cfg.__dict__, "finetune": FinetuneConfig(steps=40, batch=50)}), 8, RATES
    )
    assert e2.train == pytest.approx(2 * e.train)


def test_rates_cache_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("IMPLOSION_RUNS", str(tmp_path))
    assert cached_rates(None) is None
    path = tmp_path / ".bench" / "rates.json"
    path.parent.mkdir()
    path.write_text(json.dumps({machine_key(None, "cpu", "auto"): RATES.to_dict()}))
    assert cached_rates(None) == RATES
    assert cached_rates(None, "cuda") is None  # another device: not this entry
    assert cached_rates(None, params="lora") is None  # LoRA steps are timed on their own


def test_format_seconds():
    assert format_seconds(42) == "42 s" and format_seconds(600) == "10.0 min"
    assert format_seconds(7200) == "2.0 h"
