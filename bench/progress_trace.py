"""Trace a running job's progress and time left against the wall clock on this (loaded) machine.

    python bench/progress_trace.py RUN_ID [--every 15] [--until-done] [--out bench/results/progress_trace.md]

Every ``--every`` seconds it reads the run's progress.json (fraction, eta_seconds, eta_estimated,
message) and what a reader shows (core.jobs.progress.time_left), with the 1-minute load average,
and writes the table as it goes, so an interrupted trace keeps what it saw. Checks: the fraction
never goes back, and the time shown is never 0 s while the job is running.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from core.jobs import read_run
from core.jobs.progress import format_left, time_left


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_id")
    ap.add_argument("--every", type=float, default=15.0)
    ap.add_argument("--max-minutes", type=float, default=60.0)
    ap.add_argument("--out", type=Path, default=Path("bench/results/progress_trace.md"))
    a = ap.parse_args()
    rows: list[str] = []
    t0, last_fraction, problems = time.time(), -1.0, []
    while time.time() - t0 < a.max_minutes * 60:
        run = read_run(a.run_id)
        state = run["status"].get("state")
        prog = run["progress"] or {}
        left, note = time_left(prog)
        frac = prog.get("fraction")
        if isinstance(frac, int | float):
            if frac < last_fraction:
                problems.append(f"fraction went back {last_fraction} → {frac}")
            last_fraction = frac
        if state == "running" and left is not None and left <= 0:
            problems.append(f"time left 0 s at {time.time() - t0:.0f} s while running")
        rows.append(
            f"| {time.time() - t0:6.0f} | {os.getloadavg()[0]:5.1f} | {state} | "
            f"{'—' if frac is None else f'{100 * frac:.1f} %'} | {format_left(left, note)} | "
            f"{prog.get('message') or ''} |"
        )
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(
            f"# Progress trace of job {a.run_id}\n\n"
            f"`python bench/progress_trace.py {a.run_id}` (sampled every {a.every:g} s; load = "
            "1-minute load average on this 2-core machine).\n\n"
            f"Problems: {'; '.join(problems) or 'none (fraction monotone, never 0 s left while running)'}\n\n"
            "| t (s) | load | state | progress | time left shown | message |\n|---|---|---|---|---|---|\n"
            + "\n".join(rows)
            + "\n"
        )
        if state not in ("queued", "running", "paused"):
            break
        time.sleep(a.every)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
