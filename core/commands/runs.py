"""``implosion finetune`` (a run on chosen concepts: clean baseline + poisoned level, as a pack) and
``implosion runs list | show`` (every results pack, the demo and each run, as scripts see it)."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from core.commands._args import add_finetune_args, finetune_overrides


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "finetune",
        help="poison chosen concepts and fine-tune: clean baseline + poisoned level, as a pack",
    )
    p.add_argument(
        "--concepts", nargs="+", required=True, help='concept names ("large red star") or ids'
    )
    p.add_argument(
        "--targets",
        default=["random"],
        help="random (the seed's plan, as the sweep) | nearest | farthest, or A=B pairs by name",
        nargs="+",
    )
    p.add_argument(
        "--budget",
        type=int,
        default=None,
        help="poison pairs per concept (default: 96, three per clean pair)",
    )
    p.add_argument("--steps", type=int, default=None, help="fine-tune steps per level (60)")
    add_finetune_args(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", default=None, help="base model folder (default: shipped base)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument(
        "--precision",
        default=None,
        choices=["auto", "fp32", "bf16"],
        help="fine-tune dtype (default auto: bf16 where the device runs it natively, else fp32)",
    )
    p.add_argument("--eval-samples", type=int, default=None, help="judged generations per concept")
    p.add_argument("--probe-every", type=int, default=None, help="steps between training probes")
    p.add_argument(
        "--wait", action="store_true", help="run in the foreground: progress on stderr, then the id"
    )
    p.add_argument("--queue", action="store_true", help="wait if the device is busy")
    p.set_defaults(func=_finetune)

    p = sub.add_parser("runs", help="results packs: the demo pack and every sweep or fine-tune")
    rsub = p.add_subparsers(dest="runs_command", metavar="ACTION", required=True)
    q = rsub.add_parser("list", help="every pack: id, kind, levels, seeds, complete, path")
    q.add_argument("--json", action="store_true", help="one JSON array")
    q.set_defaults(func=_list)
    q = rsub.add_parser("show", help="per level: AD, accuracies, incoherence (means over seeds)")
    q.add_argument("id", help="run id from `implosion runs list`, 'demo', or a pack folder")
    q.add_argument("--json", action="store_true", help="one JSON object")
    q.add_argument("--complete", action="store_true", help="fail unless the run has finished")
    q.add_argument("--model", default=None, help="fail unless the pack matches this model folder")
    q.set_defaults(func=_show)


def _list(args: argparse.Namespace) -> int:
    from core.results.runs import list_runs

    runs = list_runs()
    if args.json:
        print(json.dumps([r.to_dict() for r in runs]))
        return 0
    if not runs:
        print("no packs yet: run `implosion finetune` or `implosion sweep`")
        return 0
    print(f"{'id':<36} {'kind':<10} {'state':<10} {'levels':<22} name")
    for r in runs:
        levels = ",".join(str(c) for c in r.levels) or "—"
        name = f"{r.name}: {r.state_text}" if r.broken else r.name
        print(f"{r.id:<36} {r.kind:<10} {r.state:<10} {levels:<22} {name}")
    return 0


def _fmt(v: float | None) -> str:
    return "—" if v is None else f"{v:.3f}"


def _show(args: argparse.Namespace) -> int:
    from core.results.runs import get_run, run_summary

    info = get_run(args.id)
    if info.broken:
        raise ValueError(
            f"run {info.id} is broken ({info.reason}); it cannot be opened: "
            f"replace or remove {info.path}"
        )
    rows = run_summary(args.id, complete=args.complete, model=args.model)
    if args.json:
        print(json.dumps({**info.to_dict(), "summary": [r.to_dict() for r in rows]}))
        return 0
    print(f"{info.name} ({info.id}, {info.state}, model {info.model})")
    print(
        f"{'C_P':>4} {'AD':>7} {'acc_unp':>8} {'acc_poi':>8} {'incoh':>7} {'align':>7} {'attack':>7}"
    )
    for r in rows:
        print(
            f"{r.c_p:>4} {_fmt(r.ad):>7} {_fmt(r.acc_unpoisoned):>8} {_fmt(r.acc_poisoned):>8} "
            f"{_fmt(r.incoherence):>7} {_fmt(r.alignment_unpoisoned):>7} {_fmt(r.attack_success):>7}"
        )
    return 0


def _targets(items: list[str]) -> str | dict[str, str]:
    if len(items) == 1 and "=" not in items[0]:
        return items[0]
    bad = [t for t in items if "=" not in t]
    if bad:
        raise ValueError(
            f"--targets: {bad} is not A=B; give a rule or pairs like 'large red star=small blue circle'"
        )
    return dict(tuple(x.strip() for x in t.split("=", 1)) for t in items)  # type: ignore[misc]


def _finetune(args: argparse.Namespace) -> int:
    import sys
    import time

    from core.jobs import read_run, start_job, stop_job
    from core.jobs.store import TERMINAL_STATES
    from core.sweep.mini.finetune import finetune_config, job_config, model_world

    world = model_world(args.model)
    overrides = {
        k: v
        for k, v in {"eval_samples": args.eval_samples, "probe_every": args.probe_every}.items()
        if v is not None
    }
    cfg = finetune_config(
        world,
        args.concepts,
        targets=_targets(args.targets),
        budget=args.budget,
        steps=args.steps,
        seed=args.seed,
        model=str(Path(args.model).resolve()) if args.model else None,
        device=args.device,
        **overrides,
    )
    ft_over = finetune_overrides(args)
    if args.precision is not None:
        ft_over["precision"] = args.precision
    cfg = replace(cfg, finetune=replace(cfg.finetune, **ft_over))
    from core.sweep.mini.checks import check_memory

    check_memory(cfg, world.n_concepts, world.config.image_size)  # before the job is accepted
    run_id = start_job(
        "finetune",
        job_config(cfg, world.names),
        device=args.device,
        queue=args.queue,
        seed=args.seed,
    )
    if not args.wait:
        print(run_id)
        return 0
    print(f"run {run_id}: {job_config(cfg, world.names)['name']}", file=sys.stderr, flush=True)
    last, state = None, "queued"
    try:
        while True:
            run = read_run(run_id)
            state = str(run["status"].get("state"))
            prog = run["progress"] or {}
            line = (state, prog.get("step"), prog.get("message"))
            if line != last:
                eta = prog.get("eta_seconds")
                print(
                    f"[{time.strftime('%H:%M:%S')}] {state} {prog.get('step') or 0}/"
                    f"{prog.get('total') or '?'} {prog.get('message') or ''}"
                    + (f" (ETA {eta:.0f} s)" if isinstance(eta, int | float) else ""),
                    file=sys.stderr,
                    flush=True,
                )
                last = line
            if state in TERMINAL_STATES:
                break
            time.sleep(1.0)
    except KeyboardInterrupt:
        stop_job(run_id)
        print(f"stop requested; resume with `implosion jobs resume {run_id}`", file=sys.stderr)
        print(run_id)
        return 130
    if state != "completed":
        err = read_run(run_id)["status"].get("error_message") or state
        print(f"implosion finetune: run {run_id} {state}: {err}", file=sys.stderr)
        print(run_id)
        return 1
    print(run_id)
    return 0
