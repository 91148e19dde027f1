"""``implosion sweep``, ``sweep-budget`` and ``sweep-pack``: poisoning sweeps (foreground or as jobs)."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from core.commands._args import add_finetune_args, finetune_overrides
from core.commands._args import seed as seed_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep", help="AD and implosion metrics over C_P (number of poisoned concepts)"
    )
    from core.sweep.mini.config import PRESET_NOTES

    p.add_argument(
        "--preset",
        default="cpu-quick",
        help="; ".join(f"{name}: {note}" for name, note in PRESET_NOTES.items()),
    )
    p.add_argument(
        "--out", type=Path, required=True, help="output folder (resumes if it holds the same sweep)"
    )
    p.add_argument("--levels", type=int, nargs="+", default=None, help="C_P values, e.g. 0 4 8 16")
    p.add_argument("--seeds", type=seed_arg, nargs="+", default=None)
    p.add_argument("--steps", type=int, default=None, help="fine-tune steps per level")
    add_finetune_args(p)
    p.add_argument("--model", default=None, help="base model folder (default: shipped base)")
    p.add_argument("--device", default=None, help="cpu or cuda")
    p.add_argument(
        "--precision",
        default=None,
        choices=["auto", "fp32", "bf16"],
        help="fine-tune dtype (default auto: bf16 where the device runs it natively, else fp32)",
    )
    p.add_argument(
        "--poison-mode",
        default=None,
        choices=["add", "replace"],
        help="add: poison pairs join the clean data (a poisoned caption keeps its clean images); "
        "replace: a poisoned concept's clean pairs are dropped (the CPU presets' default, "
        "bench/results/science.md)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes running levels side by side on the device (default: 8 for gpu-full, else 1)",
    )
    add_executor_args(p)
    p.add_argument(
        "--background", action="store_true", help="run as a background job; print its id"
    )
    p.add_argument(
        "--queue", action="store_true", help="with --background: wait if the device is busy"
    )
    p.set_defaults(func=_sweep)

    p = sub.add_parser(
        "sweep-budget", help="attack success vs poison count, Nightshade-style vs dirty-label"
    )
    p.add_argument("--concept", default="large red circle")
    p.add_argument("--target", default="small blue square")
    p.add_argument("--counts", type=int, nargs="+", default=[2, 5, 10, 20, 40])
    p.add_argument("--methods", nargs="+", default=["nightshade", "dirty-label"])
    p.add_argument("--steps", type=int, default=60, help="fine-tune steps per run")
    p.add_argument("--lr", type=float, default=5e-4, help="fine-tune learning rate")
    p.add_argument(
        "--epsilon", type=float, default=16 / 255, help="Nightshade L∞ bound, [-1, 1] pixel units"
    )
    p.add_argument("--pgd-steps", type=int, default=60, help="Nightshade PGD steps")
    p.add_argument(
        "--anchors",
        choices=["natural", "generated"],
        default="natural",
        help="Nightshade anchors: natural images of the target, or the base's generations of it",
    )
    p.add_argument("--clean", type=int, default=32, help="clean pairs per concept")
    p.add_argument("--eval-samples", type=int, default=16, help="judged generations per run")
    p.add_argument("--model", default=None)
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=_sweep_budget)

    p = sub.add_parser("sweep-pack", help="copy a finished sweep into a demo pack the app opens")
    p.add_argument("sweep_dir", type=Path, help="folder written by `implosion sweep --out`")
    p.add_argument("--out", type=Path, required=True, help="pack folder, e.g. assets/demo")
    p.add_argument("--note", type=Path, default=None, help="a README.md to put in the pack")
    p.add_argument("--force", action="store_true", help="replace a pack already in --out")
    p.set_defaults(func=_sweep_pack)


def add_executor_args(p: argparse.ArgumentParser) -> None:
    """--executor / --address / --gpus-per-level / --cpus-per-level (core/sweep/executors)."""
    p.add_argument(
        "--executor",
        choices=["local", "ray"],
        default="local",
        help="where levels run: local (this process or --workers processes) or ray (one task "
        'per level; needs pip install -e ".[cluster]")',
    )
    p.add_argument(
        "--address", default=None, help="with --executor ray: cluster address (default: local)"
    )
    p.add_argument(
        "--gpus-per-level", type=float, default=None, help="ray: GPUs per level (0.25 packs 4)"
    )
    p.add_argument(
        "--cpus-per-level", type=float, default=None, help="ray: CPUs (= torch threads) per level"
    )


def executor_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The executor flags that were given, as job-config / keyword fields."""
    given = {
        "address": args.address,
        "gpus_per_level": args.gpus_per_level,
        "cpus_per_level": args.cpus_per_level,
    }
    return {"executor": args.executor, **{k: v for k, v in given.items() if v is not None}}


def executor_options(args: argparse.Namespace, workers: int = 1) -> tuple[str, Any]:
    """(executor name, ExecutorOptions) from the flags; bad values are ValueErrors (exit 2),
    among them a level that asks a local Ray for more CPUs or GPUs than this machine has."""
    from core.sweep.executors import ExecutorOptions, make_executor
    from core.sweep.executors.resources import check_fits, level_request, this_machine

    s = executor_settings(args)
    name = s.pop("executor")
    options = ExecutorOptions(workers=workers, **s)
    make_executor(name, options)  # fail before any model loads (e.g. Ray not installed)
    if name == "ray" and options.address is None:
        check_fits(level_request(options), [this_machine()], "this machine (a local Ray)")
    return name, options


def warn_precision(device: str, precision: str) -> None:
    """Print the emulated-bf16 warning (core.training.precision) before any work."""
    import sys

    from core.training.precision import emulated_bf16_warning

    note = emulated_bf16_warning(device, precision)
    if note is not None:
        print(f"implosion: warning: {note}", file=sys.stderr)


def check_launch(cfg: Any, out: Path) -> None:
    """What a sweep into ``out`` must pass before it runs or is accepted as a job: the grid
    against the model, memory caps (core.sweep.mini.checks), a writable ``out`` that no other sweep
    is writing (core.jobs.outlock) and that holds no other sweep's results (resume is fine)."""
    from core.io import ensure_writable_dir
    from core.jobs.outlock import check_output_free
    from core.sweep.engine import resumable_results
    from core.sweep.mini.checks import check_sweep
    from core.sweep.runner import SWEEP_CONFIG

    check_sweep(cfg)
    ensure_writable_dir(out, "out")
    check_output_free(out)
    resumable_results(out, cfg.to_dict(), SWEEP_CONFIG)


def _sweep(args: argparse.Namespace) -> int:
    from core.sweep.mini.run import preset, run_sweep

    overrides = {
        "levels": tuple(args.levels) if args.levels else None,
        "seeds": tuple(args.seeds) if args.seeds else None,
        "model": args.model,
        "device": args.device,
        "poison_mode": args.poison_mode,
    }
    cfg = preset(args.preset, **overrides)
    if args.device is None:  # the preset's device (gpu-full: cuda), checked before any work
        from core.jobs.devices import check_device

        check_device(cfg.device, field=f"preset {args.preset} runs on")
    ft_over = finetune_overrides(args)
    if args.steps is not None:
        ft_over["steps"] = args.steps
    if args.precision is not None:
        ft_over["precision"] = args.precision
        warn_precision(cfg.device, args.precision)
    cfg = replace(cfg, finetune=replace(cfg.finetune, **ft_over))  # validated here, before work
    from core.sweep.mini.run import DEFAULT_WORKERS

    workers = args.workers if args.workers is not None else DEFAULT_WORKERS.get(args.preset, 1)
    executor, options = executor_options(args, workers)
    check_launch(cfg, args.out)  # the same checks whether it runs here or as a job
    if args.background:
        from core.jobs import start_job
        from core.sweep.job import SweepJob

        settings = {"preset": args.preset, **{k: v for k, v in overrides.items() if v is not None}}
        if ft_over:
            settings["finetune"] = ft_over
        job = SweepJob(
            settings, out=str(args.out.resolve()), workers=args.workers, **executor_settings(args)
        )
        run_id = start_job("sweep", job.to_dict(), device=cfg.device, queue=args.queue)
        print(run_id)
        return 0
    from tqdm.auto import tqdm

    bar = tqdm(total=len(cfg.levels) * len(cfg.seeds), desc=f"sweep {cfg.preset}", unit="level")

    def progress(i: int, total: int, msg: str) -> None:
        bar.n = i
        bar.set_postfix_str(msg)
        bar.refresh()

    res = run_sweep(cfg, args.out, progress, workers=workers, executor=executor, options=options)
    bar.close()
    s = res["summary"]
    print(f"{'C_P':>4} {'AD':>7} {'acc_unp':>8} {'acc_poi':>8} {'align':>7} {'incoh':>7}")

    def cell(m: str, c: int) -> str:
        row = s[m]
        return f"{row['mean'][row['c_p'].index(c)]:.3f}" if c in row["c_p"] else "—"

    for c in s["ad"]["c_p"]:
        print(
            f"{c:>4} {cell('ad', c):>7} {cell('acc_unpoisoned', c):>8} {cell('acc_poisoned', c):>8} "
            f"{cell('alignment_unpoisoned', c):>7} {cell('incoherence', c):>7}"
        )
    print(f"results: {args.out / 'results.json'}")
    return 0


def _sweep_budget(args: argparse.Namespace) -> int:
    from core.sweep.mini.budget import BudgetSweepConfig, run_budget_sweep
    from core.training.finetune import FinetuneConfig

    if args.eval_samples < 1:  # checked before the fine-tunes, not after them
        raise ValueError(f"--eval-samples must be ≥ 1, got {args.eval_samples}")
    cfg = BudgetSweepConfig(
        concept=args.concept,
        target=args.target,
        counts=tuple(args.counts),
        methods=tuple(args.methods),
        finetune=FinetuneConfig(steps=args.steps, batch=64, lr=args.lr),
        epsilon=args.epsilon,
        pgd_steps=args.pgd_steps,
        anchors=args.anchors,
        n_clean_per_concept=args.clean,
        eval_samples=args.eval_samples,
        model=args.model,
    )
    from tqdm.auto import tqdm

    bar = tqdm(total=len(cfg.methods) * len(cfg.counts), desc="sweep-budget", unit="run")

    def progress(i: int, total: int, msg: str) -> None:
        bar.n = i
        bar.set_postfix_str(msg)
        bar.refresh()

    res = run_budget_sweep(cfg, args.out, progress)
    bar.close()
    for r in res["records"]:
        print(f"{r['method']:>12} N_p={r['count']:>4}  attack success {r['attack_success']:.2f}")
    print(json.dumps(res["summary"]))
    return 0


def _sweep_pack(args: argparse.Namespace) -> int:
    from core.io import check_output, replace_output
    from core.results.write import check_replaceable_pack, read_sweep, write_pack

    if args.note is not None and not args.note.is_file():
        raise ValueError(f"--note {args.note}: not a file; give the path of a README.md")
    note = args.note.read_text() if args.note else None
    # Never into the sweep itself, never over anything but a pack (even with --force), never
    # mixed: the sweep is read and validated first, then the pack is built in a temp sibling
    # and swapped in whole.
    check_output(args.out, inputs=[("sweep_dir", args.sweep_dir)], force=args.force)
    check_replaceable_pack(args.out)
    files = read_sweep(args.sweep_dir)
    with replace_output(args.out) as tmp:
        sizes = write_pack(args.sweep_dir, tmp, note, files)
    print(f"{len(sizes)} files, {sum(sizes.values()) / 1e6:.1f} MB → {args.out}")
    return 0
