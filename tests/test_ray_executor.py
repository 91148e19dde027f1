"""The Ray executor on a local Ray: same records as the local executor, a killed worker's level
is retried, per-level state in levels.json, and a clear message without Ray installed."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
import torch

from core.cli import main
from core.sweep.mini.run import preset, run_sweep

# timing fields differ between any two runs; everything else must match
TIMING = {"finetune_seconds", "wall_seconds"}


def smoke(model_dir, **kw):
    return preset("ci-smoke", model=str(model_dir), **kw)


@pytest.fixture(scope="module")
def one_thread():
    """The local executor with the thread count of a Ray level with cpus_per_level=1."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def local_records(tiny_model_dir, tmp_path_factory, one_thread):
    res = run_sweep(smoke(tiny_model_dir), tmp_path_factory.mktemp("local") / "s")
    return res["records"]


def assert_same_records(a, b):
    assert [(r["c_p"], r["seed"]) for r in a] == [(r["c_p"], r["seed"]) for r in b]
    for ra, rb in zip(a, b, strict=True):
        assert set(ra) == set(rb)
        for k in set(ra) - TIMING:
            if isinstance(ra[k], float):
                assert ra[k] == pytest.approx(rb[k], abs=1e-6), k
            elif isinstance(ra[k], list):
                assert ra[k] == pytest.approx(rb[k], abs=1e-6), k
            else:
                assert ra[k] == rb[k], k


def test_ray_missing_says_what_to_install(tiny_model_dir, tmp_path, monkeypatch, capsys):
    import core.sweep.executors as executors

    monkeypatch.setattr(executors, "ray_available", lambda: False)
    args = ["sweep", "--preset", "ci-smoke", "--model", str(tiny_model_dir)]
    assert main([*args, "--out", str(tmp_path / "o"), "--executor", "ray"]) == 2
    assert 'pip install -e ".[cluster]"' in capsys.readouterr().err
    assert main([*args, "--out", str(tmp_path / "o"), "--address", "x:1"]) == 2
    assert "only for executor 'ray'" in capsys.readouterr().err
    assert not (tmp_path / "o" / "results.json").exists()


def test_local_ray_sweep_equals_local(tiny_model_dir, tmp_path, local_records):
    pytest.importorskip("ray")
    from core.results.pack import load_pack

    out = tmp_path / "ray"
    args = ["sweep", "--preset", "ci-smoke", "--model", str(tiny_model_dir), "--out", str(out)]
    assert main([*args, "--executor", "ray", "--cpus-per-level", "1"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["complete"]
    assert_same_records(local_records, res["records"])
    status = json.loads((out / "levels.json").read_text())
    assert status["executor"] == "ray"
    assert all(s["state"] == "done" and s["node"] and s["pid"] for s in status["levels"])
    assert load_pack(out).levels == [0, 2]
    import ray

    assert not ray.is_initialized()  # the local Ray stopped with the sweep


def test_killed_ray_worker_level_is_retried(tiny_model_dir, tmp_path, local_records):
    ray = pytest.importorskip("ray")
    from core.sweep.engine import drive
    from core.sweep.executors import ExecutorOptions
    from core.sweep.executors.ray_executor import RayExecutor
    from core.sweep.mini.runner import SweepRunner

    out = tmp_path / "kill"
    out.mkdir()
    executor = RayExecutor(ExecutorOptions(cpus_per_level=1))
    killed: list[int] = []

    def pause_requested() -> bool:  # levels wait paused (mid-level) until a worker is killed
        return not killed

    def should_stop() -> bool:  # blocks like a paused job, until one level's worker is killed
        deadline = time.monotonic() + 300
        while not killed and time.monotonic() < deadline:
            pids = ray.get(executor.hub.running_pids.remote())
            if pids:
                pid = sorted(pids.values())[0]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            else:
                time.sleep(0.2)
        return False

    res = drive(SweepRunner(smoke(tiny_model_dir), out), out, executor, None, should_stop,
                pause_requested)  # fmt: skip
    assert killed and res["complete"]
    assert_same_records(local_records, res["records"])
    status = json.loads((out / "levels.json").read_text())
    assert max(s["attempts"] for s in status["levels"]) == 2  # the killed level ran again
    assert all(s["state"] == "done" for s in status["levels"])
    assert killed[0] not in {s["pid"] for s in status["levels"]}
