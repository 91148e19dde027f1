"""The one sweep driver (core/sweep/engine.py) on a model-free runner: order, files, progress,
levels.json, a failing level, stop and resume; the control relay of remote executors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.sweep.engine import drive, read_level_states
from core.sweep.executors import Control, SerialExecutor, make_executor
from core.sweep.runner import LevelResult, RunnerSpec, new_results


class FakeRunner:
    """Levels (C_P, seed) of a 3-concept sweep whose 'metric' is C_P + seed / 10."""

    steps_per_level = 2

    def __init__(self, out, levels=(0, 1, 2), seeds=(0, 1), fail=None):
        self.out, self.levels, self.seeds, self.fail = out, levels, seeds, fail
        self.ran: list[tuple[int, int]] = []
        self.assembled = self.done_called = 0
        (out / "levels").mkdir(parents=True, exist_ok=True)
        (out / "grids").mkdir(exist_ok=True)

    def open(self):
        path = self.out / "results.json"
        if path.exists():
            return json.loads(path.read_text())
        cfg = {"levels": list(self.levels), "seeds": list(self.seeds)}
        plans = {s: ([0, 1, 2], {0: 1, 1: 2, 2: 0}) for s in self.seeds}
        return new_results(cfg, ["a", "b", "c"], plans, {})

    def spec(self):
        return RunnerSpec("tests:none", {}, str(self.out))

    def run_level(self, c_p, seed, on_step, stop):
        for step in (1, 2):
            if stop():
                return None
            on_step(step, 0.5)
        if (c_p, seed) == self.fail:
            raise ValueError(f"bad data at C_P={c_p}")
        self.ran.append((c_p, seed))
        record = {"c_p": c_p, "seed": seed, "ad": c_p + seed / 10, "per_concept_acc": [1.0] * 3}
        grid = np.zeros((3, 4, 4, 3), dtype=np.uint8)
        return LevelResult(record, {"loss": np.ones(2, np.float32)}, grid, 1)  # type: ignore[arg-type]

    def level_done(self, c_p, seed):
        self.done_called += 1

    def assemble(self):
        self.assembled += 1


def test_drive_saves_every_level_in_order(tmp_path):
    runner, seen = FakeRunner(tmp_path), []
    res = drive(runner, tmp_path, SerialExecutor(), lambda *a: seen.append(a))
    assert res["complete"] and runner.assembled == 1
    assert runner.ran == [(c, s) for s in (0, 1) for c in (0, 1, 2)]  # seeds outer, C_P inner
    saved = json.loads((tmp_path / "results.json").read_text())
    assert [(r["c_p"], r["seed"]) for r in saved["records"]] == runner.ran
    assert saved["summary"]["ad"]["mean"] == pytest.approx([0.05, 1.05, 2.05])
    assert all(r["wall_seconds"] >= 0 for r in saved["records"])
    assert len(list((tmp_path / "levels").glob("cp*_seed*.npz"))) == 6
    assert (tmp_path / "grids" / "cp2_seed1.png").is_file()
    status = json.loads((tmp_path / "levels.json").read_text())
    assert status["executor"] == "local"
    assert [s["state"] for s in status["levels"]] == ["done"] * 6
    assert all(s["attempts"] == 1 and s["pid"] for s in status["levels"])
    states = read_level_states(tmp_path)
    assert states is not None and [(s.c_p, s.seed, s.state) for s in states][:2] == [
        (0, 0, "done"),
        (1, 0, "done"),
    ]
    assert read_level_states(tmp_path / "nothing-here") is None
    units = [a[0] for a in seen]
    assert units == sorted(units) and seen[-1][:2] == (18, 18)  # 6 levels × (2 steps + end)


def test_failed_level_stops_the_sweep_with_its_message(tmp_path):
    runner = FakeRunner(tmp_path, fail=(1, 0))
    with pytest.raises(ValueError, match="bad data at C_P=1"):
        drive(runner, tmp_path, SerialExecutor())
    saved = json.loads((tmp_path / "results.json").read_text())
    assert [(r["c_p"], r["seed"]) for r in saved["records"]] == [(0, 0)]
    states = {
        (s["c_p"], s["seed"]): s
        for s in json.loads((tmp_path / "levels.json").read_text())["levels"]
    }
    assert states[(1, 0)]["state"] == "failed" and "bad data" in states[(1, 0)]["error"]
    assert states[(2, 0)]["state"] == "queued" and runner.assembled == 0


def test_stop_then_resume_runs_only_the_rest(tmp_path):
    runner = FakeRunner(tmp_path)
    saved = lambda: (tmp_path / "results.json").exists()  # noqa: E731  stop after one level
    res = drive(runner, tmp_path, SerialExecutor(), should_stop=saved)
    assert not res["complete"] and runner.ran == [(0, 0)]
    again = FakeRunner(tmp_path)
    res = drive(again, tmp_path, SerialExecutor())
    assert res["complete"] and (0, 0) not in again.ran and len(again.ran) == 5
    assert again.done_called == 6  # the saved level, then each new one


def test_control_forwards_pause_then_run_then_stop():
    sent: list[str] = []
    answers = iter([False, True])
    pause = iter([True, False])
    control = Control(lambda: next(answers), lambda: next(pause))
    assert control.poll(sent.append) == "run" and sent == ["pause", "run"]
    assert control.poll(sent.append) == "stop" and sent == ["pause", "run", "stop"]
    assert control.poll(sent.append) == "stop" and control.should_stop()


def test_executor_names_and_ray_only_flags():
    from core.sweep.executors import ExecutorOptions, ProcessExecutor

    assert isinstance(make_executor("local", ExecutorOptions(workers=3)), ProcessExecutor)
    with pytest.raises(ValueError, match="executor must be one of"):
        make_executor("dask")
    with pytest.raises(ValueError, match="gpus_per_level: only for executor 'ray'"):
        make_executor("local", ExecutorOptions(gpus_per_level=0.25))
    with pytest.raises(ValueError, match="cpus_per_level must be > 0"):
        ExecutorOptions(cpus_per_level=0)


def test_worker_events_cross_the_pipe_without_pickle():
    """The local executor's worker protocol: JSON header + .npz (allow_pickle=False), so a
    finished level arrives equal and a crafted frame cannot run code."""
    import io

    from core.sweep.executors.local import decode_event, encode_event
    from core.sweep.runner import LevelResult

    arrays = {
        "image": np.arange(6, dtype=np.float16).reshape(3, 2),
        "poisoned": np.array([True, False, True]),
    }
    result = LevelResult(
        {"c_p": 2, "seed": 0, "ad": 0.4375}, arrays, np.zeros((2, 4, 4, 3), np.uint8), 1
    )
    kind, back = decode_event(encode_event(("done", result)))
    assert kind == "done" and back.record == result.record and back.grid_cols == 1
    assert back.arrays["image"].dtype == np.float16 and np.array_equal(
        back.arrays["image"], arrays["image"]
    )
    assert np.array_equal(back.arrays["poisoned"], arrays["poisoned"]) and back.grid.shape == (
        2,
        4,
        4,
        3,
    )
    assert decode_event(encode_event(("step", 3, 0.25))) == ("step", 3, 0.25)
    assert decode_event(encode_event(("started", "host", 7))) == ("started", "host", 7)
    # an object array (what a pickle payload would need) is refused when read back
    buf = io.BytesIO()
    np.savez(buf, a_x=np.array([object()], dtype=object), grid=np.zeros(1))
    head = b'{"kind": "done", "record": {}, "grid_cols": 1, "arrays": ["x"]}'
    frame = len(head).to_bytes(8, "little") + head + buf.getvalue()
    with pytest.raises(ValueError, match="allow_pickle"):
        decode_event(frame)
