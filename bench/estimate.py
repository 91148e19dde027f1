"""Run-time estimate vs measured wall time: the Poison-setup defaults and sweep presets.

For each case: measure this machine's rates (core.sweep.mini.estimate.measure_rates, cached once in a
temporary runs folder), estimate the run, then run it as the user would (a background job:
worker start, set-up, training, probes, evaluation, pack) and time it from start_job to
completion. Writes bench/results/estimate.json and bench/results/estimate.md with the load
average before and after each run: on a shared machine the load moves both numbers.

    python bench/estimate.py [--cases finetune ci-smoke cpu-quick] [--model assets/base]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _config(case: str, model: str | None):
    from core.sweep.mini.finetune import finetune_config, model_world
    from core.sweep.mini.run import preset

    if case == "finetune":  # the Poison-setup defaults: two concepts by name
        world = model_world(model)
        return finetune_config(world, world.names[:2], model=model), {"kind": "finetune"}
    return preset(case, model=model), {"kind": "sweep", "preset": case}


def run_case(case: str, model: str | None, max_wait_s: float) -> dict:
    from core.jobs import cancel_job, read_run, start_job, wait_job
    from core.sweep.mini.estimate import estimate, rates_for
    from core.sweep.mini.finetune import job_config, model_world

    world = model_world(model)
    cfg, meta = _config(case, model)
    rates = rates_for(model, cfg.device, cfg.finetune.precision, params=cfg.finetune.params)
    est = estimate(cfg, world.n_concepts, rates)
    if meta["kind"] == "finetune":
        job = job_config(cfg, world.names)
    else:
        job = {"preset": case, **({"model": model} if model else {})}
    load0 = os.getloadavg()[0]
    t0 = time.monotonic()
    run_id = start_job(meta["kind"], job, device=cfg.device, queue=True)
    try:
        status = wait_job(run_id, timeout=max_wait_s)
    except TimeoutError:  # a loaded machine: record how far it got, then cancel
        cancel_job(run_id, wait=True)
        status = {"state": "timeout"}
    wall = time.monotonic() - t0
    load1 = os.getloadavg()[0]
    if status.get("state") not in ("completed", "timeout"):
        raise RuntimeError(f"{case}: run {run_id} {status.get('state')}: {read_run(run_id)}")
    progress = read_run(run_id)["progress"] or {}
    return {
        "case": case,
        "levels": len(cfg.levels) * len(cfg.seeds),
        "steps": cfg.finetune.steps,
        "estimate_s": round(est.total, 1),
        "estimate": {k: round(v, 1) for k, v in est.to_dict().items()},
        "measured_s": round(wall, 1) if status["state"] == "completed" else None,
        "error_pct": round(100 * (est.total - wall) / wall, 1)
        if status["state"] == "completed"
        else None,
        "stopped_after_s": None if status["state"] == "completed" else round(wall, 1),
        "progress_at_stop": None if status["state"] == "completed" else progress.get("message"),
        "load_before": round(load0, 2),
        "load_after": round(load1, 2),
        "rates": rates.to_dict(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", nargs="+", default=["ci-smoke", "finetune"])
    ap.add_argument("--model", default=None, help="base model folder (default: shipped base)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    ap.add_argument(
        "--max-wait", type=float, default=3600, help="seconds per case before it is cancelled"
    )
    args = ap.parse_args()
    runs = Path(tempfile.mkdtemp(prefix="estimate-runs-"))
    os.environ["IMPLOSION_RUNS"] = str(runs)  # rates cache and runs stay out of the repo
    rows = []
    for case in args.cases:
        row = run_case(case, args.model, args.max_wait)
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "rates"}), flush=True)
        write(rows, args)  # after each case: a long case cut short keeps the earlier ones


def write(rows: list[dict], args: argparse.Namespace) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "estimate.json").write_text(json.dumps(rows, indent=1) + "\n")
    cpus = os.cpu_count()
    lines = [
        "# Run-time estimate vs measured wall time",
        "",
        f"`python bench/estimate.py --cases {' '.join(args.cases)}` on {cpus} CPU cores. "
        f"Measured = start_job → completed (worker start, set-up, training, probes, evaluation, "
        "pack). The estimate uses rates measured once on this machine just before (load at "
        "that time in the rates). Load = 1-minute load average before → after the run.",
        "",
        "| case | levels | steps | estimate (s) | measured (s) | error | load before → after |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        measured = r["measured_s"] or f"not finished: cancelled after {r['stopped_after_s']} s"
        error = "—" if r["error_pct"] is None else f"{r['error_pct']:+.0f} %"
        lines.append(
            f"| {r['case']} | {r['levels']} | {r['steps']} | {r['estimate_s']} | "
            f"{measured} | {error} | {r['load_before']} → {r['load_after']} |"
        )
    (args.out / "estimate.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
