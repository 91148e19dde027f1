"""The one job-config shape and adapter of the sweep kinds (core/sweep/job.py)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from core.sweep.job import SweepJob, run_sweep_job
from core.sweep.mini.config import PRESETS, from_settings, preset
from core.sweep.mini.finetune import FINETUNE_DEFAULTS


def test_flat_config_splits_job_keys_from_sweep_settings():
    job = SweepJob.from_dict(
        {"preset": "ci-smoke", "levels": [0, 1], "out": "/o", "workers": "2", "executor": "ray"}
    )
    assert job.sweep == {"preset": "ci-smoke", "levels": [0, 1]}
    assert (job.out, job.workers, job.executor) == ("/o", 2, "ray")
    assert SweepJob.from_dict(job.to_dict()) == job
    assert job.options(5).workers == 2 and SweepJob({}).options(5).workers == 5


def test_older_records_read_the_same():
    """A finetune run recorded with its settings under "sweep", and a flat sweep record."""
    nested = SweepJob.from_dict({"sweep": {"preset": "finetune", "levels": [0, 1]}, "name": "a"})
    assert nested == SweepJob({"preset": "finetune", "levels": [0, 1]}, name="a")
    old_sweep = {"preset": "cpu-quick", "finetune": {"steps": 3}, "address": None, "workers": 2}
    job = SweepJob.from_dict(old_sweep)
    assert job.sweep == {"preset": "cpu-quick", "finetune": {"steps": 3}} and job.workers == 2


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"executor": "slurm"}, "executor must be one of"),
        ({"workers": 0}, "workers must be ≥ 1"),
        ({"gpus_per_level": -1}, "gpus_per_level must be > 0"),
        ({"sweep": {"levels": [0]}, "levels": [1]}, "beside 'sweep'"),
    ],
)
def test_bad_job_configs_name_the_field(config, match):
    with pytest.raises(ValueError, match=match):
        SweepJob.from_dict(config)


def test_settings_that_shadow_a_job_key_are_refused():
    with pytest.raises(ValueError, match=r"settings \['out'\] are job keys"):
        SweepJob({"out": "x"}).to_dict()


def test_from_settings_reads_a_preset_with_overrides_and_a_full_config():
    sc = from_settings({"preset": "cpu-quick", "levels": [0, 2], "finetune": {"steps": 3}})
    want = preset("cpu-quick", levels=[0, 2])  # as the job always read it
    assert sc == replace(want, finetune=replace(want.finetune, steps=3))
    assert from_settings({}) == PRESETS["ci-smoke"]
    full = replace(FINETUNE_DEFAULTS, concepts=(3, 1), targets=((3, 0), (1, 2)))
    written = SweepJob(full.to_dict(), name="x").to_dict()  # as job_config writes it
    assert from_settings(SweepJob.from_dict(written).sweep) == full
    with pytest.raises(ValueError, match="preset must be one of"):
        from_settings({"preset": "nope"})


def test_the_adapter_reads_once_runs_and_reports(tmp_path):
    ctx = SimpleNamespace(run_dir=str(tmp_path), device="cpu")
    seen: dict = {}

    def read(settings, c):
        seen["settings"] = settings
        return "cfg"

    def run(cfg, out, job, c):
        seen.update(cfg=cfg, out=out, job=job)
        return {"complete": True, "records": [{}, {}]}, {"extra": 1}

    res = run_sweep_job({"levels": [0], "name": "n"}, ctx, read=read, run=run, subdir="pack")
    assert res == {"out": str(tmp_path / "pack"), "complete": True, "records": 2, "extra": 1}
    assert seen["settings"] == {"levels": [0]} and seen["job"].name == "n"
    res = run_sweep_job({"out": str(tmp_path / "o")}, ctx, read=read, run=run)
    assert Path(res["out"]) == tmp_path / "o"
    seen.clear()
    with pytest.raises(ValueError, match="executor"):
        run_sweep_job({"executor": "x"}, ctx, read=read, run=run)
    assert seen == {}  # the bad job failed before read or run
