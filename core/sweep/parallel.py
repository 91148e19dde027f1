"""The implosion sweep over several worker processes (``implosion sweep --workers N``).

The (C_P, seed) levels of a sweep are independent fine-tunes of the same base, and a mini-model
fine-tune uses a small share of a GPU (or one core of a CPU), so N processes on one device run N
levels at once. The parent computes the AD calibration once (as the serial sweep does), hands each
worker a round-robin share of the unfinished levels, and merges the records the workers write
(``records/cp{C}_seed{S}.json``, atomically) into ``results.json`` as they arrive, so progress,
stop and resume work as in core/sweep/driver.py. Each level's result does not depend on which worker ran
it: seeds are derived from (seed, C_P) alone.

Stop: the parent creates ``.stop`` in the output folder; workers finish their current step and
exit, and the unfinished levels are redone on resume. Workers also stop if the parent dies.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from core.io import atomic_write_json
from core.sweep.driver import SweepConfig, summarize

STOP = ".stop"
RECORDS = "records"


def _record_path(out: Path, c_p: int, seed: int) -> Path:
    return out / RECORDS / f"cp{c_p}_seed{seed}.json"


def _worker(
    config: dict[str, Any],
    out: str,
    calibration: list[float],
    todo: list[tuple[int, int]],
    threads: int,
    parent: int,
) -> None:
    """Run ``todo`` levels; one record file per finished level. Runs in its own interpreter
    (``python -m core.sweep.parallel TASK.json``), not a multiprocessing child, so it never
    re-imports the caller's ``__main__`` (a Streamlit page, a test runner)."""
    from core.sweep.level import SweepRunner

    torch.set_num_threads(threads)
    folder = Path(out)
    runner = SweepRunner(SweepConfig.from_dict(config), folder)
    runner.calibration = (float(calibration[0]), float(calibration[1]))

    def stop() -> bool:
        return (folder / STOP).exists() or os.getppid() != parent

    for c_p, seed in todo:
        if stop():
            return
        t0 = time.time()
        rec = runner.run_level(c_p, seed, stop)
        if rec is None:
            return
        rec["wall_seconds"] = round(time.time() - t0, 2)
        atomic_write_json(_record_path(folder, c_p, seed), rec)


def _merge(out: Path, results: dict[str, Any]) -> int:
    """Add record files not yet in ``results``; returns how many were added."""
    have = {(r["c_p"], r["seed"]) for r in results["records"]}
    added = 0
    for path in sorted((out / RECORDS).glob("cp*_seed*.json")):
        try:
            rec = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue  # written atomically, so this is a foreign file: ignore it
        key = (rec.get("c_p"), rec.get("seed"))
        if key not in have:
            results["records"].append(rec)
            have.add(key)
            added += 1
    if added:
        results["records"].sort(key=lambda r: (r["seed"], r["c_p"]))
        results["summary"] = summarize(results["records"])
    return added


def run_sweep_parallel(
    config: SweepConfig,
    out: Path,
    workers: int,
    on_progress: Callable[[int, int, str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    poll_seconds: float = 0.5,
) -> dict[str, Any]:
    """Run (or resume) a sweep in ``workers`` processes; returns the results dict."""
    from core.sweep.level import SweepRunner

    runner = SweepRunner(config, out)
    results_path = out / "results.json"
    results = runner.load_previous(results_path)
    (out / RECORDS).mkdir(exist_ok=True)
    (out / STOP).unlink(missing_ok=True)
    _merge(out, results)
    done = {(r["c_p"], r["seed"]) for r in results["records"]}
    todo = [(c, s) for s in config.seeds for c in config.levels if (c, s) not in done]
    total = len(config.seeds) * len(config.levels)
    n = max(1, min(workers, len(todo)))
    threads = max(1, (os.cpu_count() or 1) // n)
    root = str(Path(__file__).resolve().parents[1])  # so `-m core.sweep.parallel` resolves
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
    }
    procs: list[subprocess.Popen[bytes]] = []
    for i in range(n):
        if not todo[i::n]:
            continue
        task = {
            "config": config.to_dict(),
            "out": str(out),
            "calibration": list(runner.calibration),
            "todo": todo[i::n],
            "threads": threads,
            "parent": os.getpid(),
        }
        path = out / RECORDS / f".worker-{i}.json"
        atomic_write_json(path, task)
        procs.append(
            subprocess.Popen([sys.executable, "-m", "core.sweep.parallel", str(path)], env=env)
        )
    stopped = False
    try:
        while True:
            alive = any(p.poll() is None for p in procs)
            if _merge(out, results):
                atomic_write_json(results_path, results)
            if on_progress is not None:
                on_progress(len(results["records"]), total, f"{len(procs)} workers")
            if not alive:
                break
            if not stopped and should_stop is not None and should_stop():
                (out / STOP).touch()
                stopped = True
            time.sleep(poll_seconds)
    finally:  # on an exception here (e.g. Ctrl-C), ask the workers to stop and wait for them
        if any(p.poll() is None for p in procs):
            (out / STOP).touch()
            for p in procs:
                try:
                    p.wait(timeout=120)
                except subprocess.TimeoutExpired:
                    p.kill()
    failed = [f"#{i}" for i, p in enumerate(procs) if p.returncode not in (0, None)]
    complete = len(results["records"]) == total
    if complete:
        if on_progress is not None:
            on_progress(total, total, "assembling demo pack files")
        runner.assemble()
    results["complete"] = complete
    results["summary"] = summarize(results["records"])
    atomic_write_json(results_path, results)
    (out / STOP).unlink(missing_ok=True)
    for task_file in (out / RECORDS).glob(".worker-*.json"):
        task_file.unlink(missing_ok=True)
    if failed and not stopped:
        raise RuntimeError(
            f"sweep workers {failed} failed ({len(results['records'])}/{total} levels saved); "
            f"see the log above, then rerun the same command to resume"
        )
    return results


if __name__ == "__main__":
    t = json.loads(Path(sys.argv[1]).read_text())
    _worker(
        t["config"],
        t["out"],
        t["calibration"],
        [(int(c), int(s)) for c, s in t["todo"]],
        int(t["threads"]),
        int(t["parent"]),
    )
