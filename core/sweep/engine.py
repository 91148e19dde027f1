"""The one sweep driver: resume, order, progress, stop/pause, atomic writes, summary, pack.

:func:`drive` runs every unfinished (C_P, seed) level of a :class:`~core.sweep.runner.LevelRunner`
through an executor (core/sweep/executors/) and saves each level as its result arrives:

- ``levels/cp{C}_seed{S}.npz`` (the level's pack arrays) and ``grids/cp{C}_seed{S}.png``;
- the record into ``results.json`` (records sorted by (seed, C_P), summary recomputed; rewritten
  atomically, so a rerun in the same folder skips finished levels);
- ``levels.json``: the state of every level (:class:`LevelState`), for the Jobs page;
- once every level is saved, the demo-pack files (``runner.assemble()``).

Levels run in the sweep's order: seeds outer, C_P inner. A level stopped mid-way is redone
(mini) or resumed from its checkpoint (real) by the next run.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

from core.io import atomic_save_npz, atomic_write_json, clean_stale_tmp
from core.jobs.outlock import hold_output
from core.results.aggregate import summarize
from core.results.grid import save_grid
from core.results.schema import RESULTS, grid_file, level_file
from core.sweep.executors.base import Control, Executor, LevelTask
from core.sweep.runner import LevelResult, LevelRunner, StopFn

LEVELS_STATUS = "levels.json"


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


LevelStateName = Literal["queued", "running", "done", "failed", "stopped"]
# (units done, total units, message, loss); a level is runner.steps_per_level + 1 units
ProgressFn = Callable[[int, int, str, float | None], None]


@dataclass(frozen=True)
class LevelState:
    """One line of ``levels.json`` (``{"updated", "executor", "levels": [LevelState, …]}``):
    ``state`` queued → running → done (or failed / stopped); ``node`` host name (local) or Ray
    node IP, ``pid`` the worker process, ``attempts`` how many times it started (> 1 after a
    lost worker was retried), ``error`` the failure message."""

    c_p: int
    seed: int
    state: LevelStateName = "queued"
    node: str | None = None
    pid: int | None = None
    attempts: int = 0
    error: str | None = None
    started: str | None = None
    finished: str | None = None


# Fields a sweep's config may change between runs in one folder: where it runs, not what it
# computes (a level's seeds derive from (seed, C_P) alone).
PLACEMENT_FIELDS: tuple[str, ...] = ("device",)


def same_sweep(saved: Mapping[str, Any], want: Mapping[str, Any]) -> bool:
    """The one resume/identity rule, for the mini and the real sweep alike: a folder's sweep is
    ``want`` when every field ``saved`` records (fields added since are left out) has the same
    JSON value, placement fields (:data:`PLACEMENT_FIELDS`) aside."""
    a, b = (json.loads(json.dumps(dict(d))) for d in (saved, want))
    keys = [k for k in a if k not in PLACEMENT_FIELDS]
    return all(k in b and a[k] == b[k] for k in keys)


def resumable_results(out: Path, want: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    """The results in ``out`` when they are the sweep ``want`` (resume); None when ``out`` has none.

    ``key`` is the results config's entry holding the sweep's own config (packs written before it
    are compared on the keys they share). ValueError, naming the file and the fix, when ``out``
    holds a different sweep or a corrupt one: the same answer whether a sweep runs here or is
    about to be accepted as a background job.
    """
    path = Path(out) / RESULTS
    if not path.exists():
        return None
    want = json.loads(json.dumps(dict(want)))
    try:
        prev = json.loads(path.read_text())
        # the config as given (results config's "concepts"/"targets" are the pack's names and
        # target map); packs written before it: the shared keys
        saved = prev["config"].get(key) or {
            k: prev["config"].get(k)
            for k in want
            if not (k in ("concepts", "targets") and want[k] is None)
        }
        if same_sweep(saved, want):
            return prev
    except json.JSONDecodeError as e:  # corrupt, not "a different sweep"
        raise ValueError(
            f"out: {path} is corrupt (not valid JSON: {e.msg}, line {e.lineno}); move "
            f"it away to start over, or choose a new --out folder (nothing was overwritten)"
        ) from e
    except (KeyError, TypeError, AttributeError, UnicodeDecodeError):
        pass
    raise ValueError(
        f"out: {path} holds results of a different sweep; choose a new --out folder "
        f"(nothing was overwritten)"
    )


def read_level_states(out: Path) -> list[LevelState] | None:
    """The levels of the sweep in ``out`` as ``levels.json`` last had them (None before the
    first write): what the Jobs page shows as queued / running on a node / done / failed."""
    path = Path(out) / LEVELS_STATUS
    try:
        rows = json.loads(path.read_text())["levels"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return [LevelState(**row) for row in rows]


class _Sweep:
    """The driver's state for one run; its methods are the executor's :class:`Events`."""

    def __init__(
        self,
        runner: LevelRunner,
        out: Path,
        results: dict[str, Any],
        order: list[LevelTask],
        executor: str,
        on_progress: ProgressFn | None,
    ) -> None:
        self.runner, self.out, self.results = runner, out, results
        self.executor, self.on_progress = executor, on_progress
        self.spl = max(1, runner.steps_per_level)
        # A level is spl fine-tune steps and one unit for evaluating and saving it, so progress
        # moves while a level's generations are judged (core/jobs/progress.py sweep_work).
        self.total = len(order) * (self.spl + 1)
        done = {(r["c_p"], r["seed"]) for r in results["records"]}
        self.states = {
            t: LevelState(t.c_p, t.seed, "done" if (t.c_p, t.seed) in done else "queued")
            for t in order
        }
        self.steps: dict[LevelTask, int] = {}
        self._write_states()

    # ------------------------------------------------------------------ Events
    def started(self, task: LevelTask, node: str, pid: int | None) -> None:
        s = self.states[task]
        self._set(task, state="running", node=node, pid=pid, attempts=s.attempts + 1,
                  started=now_iso(), error=None)  # fmt: skip
        self.steps[task] = 0
        where = "" if node == socket.gethostname() and pid == os.getpid() else f" on {node}"
        self._progress(f"{task.label}{where}", None)

    def step(self, task: LevelTask, step: int, loss: float | None) -> None:
        self.steps[task] = min(step, self.spl)
        self._progress(f"{task.label}: fine-tune step {step}/{self.spl}", loss)

    def done(self, task: LevelTask, result: LevelResult) -> None:
        c_p, seed = task.c_p, task.seed
        save_grid(result.grid, grid_file(self.out, c_p, seed), result.grid_cols)
        atomic_save_npz(level_file(self.out, c_p, seed), result.arrays)
        records = [*self.results["records"], dict(result.record)]
        records.sort(key=lambda r: (r["seed"], r["c_p"]))
        self.results.update(records=records, summary=summarize(records))
        atomic_write_json(self.out / RESULTS, self.results)
        self.runner.level_done(c_p, seed)
        self.steps.pop(task, None)
        self._set(task, state="done", finished=now_iso())
        self._progress(f"{task.label} saved", None)

    def stopped(self, task: LevelTask) -> None:
        self.steps.pop(task, None)
        self._set(task, state="stopped", finished=now_iso())

    def failed(self, task: LevelTask, message: str) -> None:
        self.steps.pop(task, None)
        self._set(task, state="failed", error=message, finished=now_iso())

    # ------------------------------------------------------------------ helpers
    def running(self) -> list[LevelTask]:
        return [t for t, s in self.states.items() if s.state == "running"]

    def saved(self) -> int:
        return len(self.results["records"])

    def _progress(self, message: str, loss: float | None) -> None:
        if self.on_progress is not None:
            units = self.saved() * (self.spl + 1) + sum(self.steps.values())
            self.on_progress(min(units, self.total), self.total, message, loss)

    def _set(self, task: LevelTask, **changes: Any) -> None:
        self.states[task] = replace(self.states[task], **changes)
        self._write_states()

    def _write_states(self) -> None:
        atomic_write_json(
            self.out / LEVELS_STATUS,
            {
                "updated": now_iso(),
                "executor": self.executor,
                "levels": [asdict(s) for s in self.states.values()],
            },
        )


def drive(
    runner: LevelRunner,
    out: Path,
    executor: Executor,
    on_progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
    pause_requested: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Run (or resume) every level of ``runner``'s sweep into ``out``; returns the results
    dict (``complete`` False if stopped). A level failing for its own reason raises after the
    saved levels and ``levels.json`` (state ``failed``, with the message) are written. One
    writer per ``out``: a second sweep into it is refused (core.jobs.outlock.OutputBusy)."""
    with hold_output(out, f"a sweep ({executor.name} executor)"):
        return _drive(runner, out, executor, on_progress, should_stop, pause_requested)


def _drive(
    runner: LevelRunner,
    out: Path,
    executor: Executor,
    on_progress: ProgressFn | None,
    should_stop: StopFn | None,
    pause_requested: Callable[[], bool] | None,
) -> dict[str, Any]:
    results = runner.open()
    clean_stale_tmp(out)  # temp files of writers killed in an earlier run of this sweep
    cfg = results["config"]
    order = [LevelTask(int(c), int(s)) for s in cfg["seeds"] for c in cfg["levels"]]
    sweep = _Sweep(runner, out, results, order, executor.name, on_progress)
    for t, s in sweep.states.items():
        if s.state == "done":
            runner.level_done(t.c_p, t.seed)
    todo = [t for t in order if sweep.states[t].state != "done"]
    try:
        executor.run(runner, todo, sweep, Control(should_stop, pause_requested))
    except BaseException as e:  # a level's failure, or Ctrl-C: levels.json says which
        if isinstance(e, Exception):
            message = getattr(e, "message", None) or f"{type(e).__name__}: {e}"
            failed = getattr(e, "task", None)
            for t in [failed] if isinstance(failed, LevelTask) else sweep.running():
                sweep.failed(t, str(message))
        for t in sweep.running():
            sweep.stopped(t)
        raise
    complete = sweep.saved() == len(order)
    if complete:
        if on_progress is not None:
            on_progress(
                sweep.total,
                sweep.total,
                "writing the pack files (embeddings, generations, training curves)",
                None,
            )
        runner.assemble()
    results.update(complete=complete, summary=summarize(results["records"]))
    atomic_write_json(out / RESULTS, results)
    if complete:
        _warm_figures(out)
    return results


def _warm_figures(out: Path) -> None:
    """Lay out the finished pack's alignment graph now (PCA, seconds) so its first view in the
    explorer is instant; a failure here only costs that speed-up, never the sweep."""
    from core.results.figcache import warm  # the figure cache is the explorer's concern

    try:
        warm(out)
    except (OSError, ValueError) as e:
        print(f"note: graph layout not precomputed ({e}); the explorer computes it on first view")
