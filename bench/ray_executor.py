"""Ray executor vs the local executor, in one run: Ray start-up, scheduling overhead per task,
and a sweep preset (default ci-smoke) through both executors with the same thread count.

    python bench/ray_executor.py [--preset ci-smoke] [--out bench/results/ray.md]

Writes a Markdown table with the load average beside each figure (the machine may be shared).
Needs the ``cluster`` extra (pip install -e ".[cluster]").
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.sweep.executors import ExecutorOptions  # noqa: E402
from core.sweep.mini.run import preset, run_sweep  # noqa: E402

TIMING = {"finetune_seconds", "wall_seconds"}


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def max_diff(a: list[dict], b: list[dict]) -> float:
    """Largest absolute difference between two record lists' numbers (timing fields aside)."""
    worst = 0.0
    for ra, rb in zip(a, b, strict=True):
        for k in set(ra) - TIMING:
            va, vb = ra[k], rb[k]
            pairs = zip(va, vb, strict=True) if isinstance(va, list) else [(va, vb)]
            for x, y in pairs:
                if isinstance(x, float | int) and not isinstance(x, bool) and y is not None:
                    worst = max(worst, abs(float(x) - float(y)))
                elif x != y:
                    return float("inf")
    return worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="ci-smoke")
    ap.add_argument("--tasks", type=int, default=50, help="no-op tasks for the overhead figure")
    ap.add_argument("--out", type=Path, default=Path("bench/results/ray.md"))
    args = ap.parse_args()
    import ray

    torch.set_num_threads(1)  # a Ray level with cpus_per_level=1 runs one torch thread
    cfg = preset(args.preset)
    opts = ExecutorOptions(cpus_per_level=1)
    rows: list[tuple[str, str, str]] = []
    work = Path(tempfile.mkdtemp(prefix="ray-bench-"))

    t0 = time.perf_counter()
    local = run_sweep(cfg, work / "local")
    t_local = time.perf_counter() - t0
    n = len(local["records"])
    rows.append(
        (f"{args.preset}, local executor (1 process, 1 thread)", f"{t_local:.1f} s", load())
    )

    t0 = time.perf_counter()
    ray.init(include_dashboard=False, logging_level="WARNING")
    t_start = time.perf_counter() - t0
    rows.append(("Ray start-up (`ray.init`, local, no dashboard)", f"{t_start:.1f} s", load()))

    @ray.remote(num_cpus=1)
    def noop(i: int) -> int:
        return i

    ray.get([noop.remote(i) for i in range(4)])  # start the workers
    t0 = time.perf_counter()
    for i in range(args.tasks):
        ray.get(noop.remote(i))
    t_seq = (time.perf_counter() - t0) / args.tasks
    rows.append(
        (f"no-op task round trip, one at a time ({args.tasks} tasks)", f"{t_seq * 1e3:.1f} ms",
         load())
    )  # fmt: skip
    t0 = time.perf_counter()
    ray.get([noop.remote(i) for i in range(args.tasks)])
    t_par = (time.perf_counter() - t0) / args.tasks
    rows.append((f"no-op tasks submitted together ({args.tasks})", f"{t_par * 1e3:.1f} ms/task",
                 load()))  # fmt: skip

    t0 = time.perf_counter()
    on_ray = run_sweep(cfg, work / "ray", executor="ray", options=opts)
    t_ray = time.perf_counter() - t0
    rows.append(
        (f"{args.preset}, ray executor on the running Ray (cpus_per_level=1)", f"{t_ray:.1f} s",
         load())
    )  # fmt: skip
    ray.shutdown()

    t0 = time.perf_counter()
    cold = run_sweep(cfg, work / "ray-cold", executor="ray", options=opts)
    t_cold = time.perf_counter() - t0
    rows.append(
        (f"{args.preset}, ray executor incl. starting and stopping Ray", f"{t_cold:.1f} s",
         load())
    )  # fmt: skip
    status = json.loads((work / "ray" / "levels.json").read_text())
    walls = [r["wall_seconds"] for r in on_ray["records"]]
    overhead = (t_ray - max(walls)) / n  # levels ran side by side: the longest bounds the work
    d1, d2 = (
        max_diff(local["records"], on_ray["records"]),
        max_diff(local["records"], cold["records"]),
    )
    rows.append(("overhead per level on the running Ray, incl. worker start and model load ((wall − longest level) / levels)",
                 f"{overhead:.1f} s", ""))  # fmt: skip
    rows.append(("ray wall / (local wall)", f"{t_ray / t_local:.2f}×", ""))
    rows.append(("ray wall incl. start-up / (local wall + Ray start-up)",
                 f"{t_cold / (t_local + t_start):.2f}×", ""))  # fmt: skip
    rows.append(
        ("max abs record difference, local vs ray and vs ray-cold", f"{d1:.2e}, {d2:.2e}", "")
    )

    lines = [
        f"# Ray executor vs local executor ({args.preset}, {os.cpu_count()} CPU cores, "
        f"torch {torch.__version__}, ray {ray.__version__})",
        "",
        "Same sweep, same seeds, one torch thread per level in both executors. Load average "
        "(1/5/15 min) beside each figure: the machine is shared, so wall times include contention.",
        "",
        "| figure | value | load |",
        "|---|---|---|",
        *(f"| {a} | {b} | {c} |" for a, b, c in rows),
        "",
        f"Levels: {n}; nodes seen: {sorted({s['node'] for s in status['levels']})}; "
        f"attempts: {[s['attempts'] for s in status['levels']]}.",
        "",
        f"Reproduce: `python bench/ray_executor.py --preset {args.preset}`",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
