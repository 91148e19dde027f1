"""``implosion real …``: real Stable Diffusion models and real image datasets.

    implosion real check    --model SD_DIR [--data DATA]
    implosion real poison   --data DATA --concept dog --target cat --method nightshade \\
                            --model SD_DIR --budget 50 --out POISON_DIR
    implosion real finetune --model SD_DIR --data DATA --data POISON_DIR --mode lora \\
                            --steps 500 --out OUT_DIR [--job]
    implosion real evaluate --model OUT_DIR --clip CLIP_DIR --concepts dog,cat,car \\
                            --source dog --target cat
    implosion real sweep    --model SD_DIR --clip CLIP_DIR --data DATA --concepts dog cat,kitten \\
                            car --levels 0 1 2 --seeds 0 1 --out OUT_DIR [--mode xattn] [--job]
    implosion real tiny     --out DIR   # a tiny random SD folder (smoke tests)
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from core.commands._args import seed as seed_arg
from core.jobs import register_kind

register_kind("real-finetune", "core.training.real:run_job")
register_kind("real-sweep", "core.sweep.real.run:run_job")


def _words(s: str) -> tuple[str, ...]:
    return tuple(w.strip() for w in s.split(",") if w.strip())


def register(sub: Any) -> None:
    """Add ``implosion real {check,poison,finetune,evaluate,sweep,tiny}``."""
    p = sub.add_parser(
        "real",
        help="real Stable Diffusion models and datasets (load, poison, fine-tune, evaluate)",
        description="Work with a diffusers-format Stable Diffusion 1.x/2.x folder and a real "
        "image/caption dataset (folder with .txt captions, CSV, JSONL or parquet).",
    )
    s = p.add_subparsers(dest="real_command", metavar="ACTION", required=True)

    q = s.add_parser("check", help="load a model (and scan a dataset); print what was found")
    q.add_argument("--model", required=True, help="diffusers SD folder, or hub id if online")
    q.add_argument("--data", action="append", default=[], help="dataset to scan (repeatable)")
    q.add_argument("--device", default="cpu")
    q.add_argument("--json", action="store_true", help="print one JSON line")
    q.set_defaults(func=_check)

    q = s.add_parser("poison", help="write poison pairs for concept A → target B")
    q.add_argument("--data", action="append", required=True, help="clean dataset (repeatable)")
    q.add_argument("--concept", required=True, type=_words, help="keywords of A, comma-separated")
    q.add_argument("--target", required=True, type=_words, help="keywords of B, comma-separated")
    q.add_argument("--method", choices=["dirty-label", "nightshade"], default="dirty-label")
    q.add_argument("--model", default=None, help="SD folder (nightshade: its VAE; image size)")
    q.add_argument("--budget", type=int, default=50, help="poison pairs to write")
    q.add_argument("--epsilon", type=float, default=8 / 255, help="L∞ bound, [-1, 1] units")
    q.add_argument("--pgd-steps", type=int, default=100)
    q.add_argument("--resolution", type=int, default=None)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--device", default="cpu")
    q.add_argument("--out", type=Path, required=True, help="output folder (images + .txt)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_poison)

    q = s.add_parser("finetune", help="fine-tune the UNet (full, xattn or LoRA)")
    q.add_argument("--model", required=True)
    q.add_argument("--data", action="append", required=True, help="dataset (repeatable)")
    q.add_argument("--out", type=Path, required=True, help="output SD folder (resumes)")
    q.add_argument("--mode", choices=["full", "xattn", "lora"], default="xattn")
    q.add_argument("--steps", type=int, default=100)
    q.add_argument("--batch", type=int, default=4)
    q.add_argument("--lr", type=float, default=1e-5)
    q.add_argument("--rank", type=int, default=4, help="LoRA rank")
    q.add_argument("--resolution", type=int, default=None)
    q.add_argument(
        "--mixed-precision",
        choices=["auto", "no", "bf16", "fp16"],
        default="auto",
        help="auto: bf16 where the device runs it natively, else float32",
    )
    q.add_argument("--gradient-checkpointing", action="store_true")
    q.add_argument("--checkpoint-every", type=int, default=0)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--device", default="cpu")
    q.add_argument("--job", action="store_true", help="run as a background job; print its id")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_finetune)

    q = s.add_parser("evaluate", help="CLIP alignment and zero-shot attack success")
    q.add_argument("--model", required=True)
    q.add_argument("--clip", required=True, help="local transformers CLIP folder")
    q.add_argument("--concepts", required=True, type=_words, help="comma-separated class names")
    q.add_argument("--source", required=True, help="poisoned concept A")
    q.add_argument("--target", required=True, help="target concept B")
    q.add_argument("--samples", type=int, default=8)
    q.add_argument("--steps", type=int, default=25)
    q.add_argument("--guidance", type=float, default=7.5)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--device", default="cpu")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_evaluate)

    _add_sweep(s)

    q = s.add_parser("tiny", help="write a tiny random SD folder (tests, smoke runs)")
    q.add_argument("--out", type=Path, required=True)
    q.add_argument("--resolution", type=int, default=32)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--sdxl", action="store_true", help="an SDXL-architecture folder instead")
    q.set_defaults(func=_tiny)


def _add_sweep(s: Any) -> None:
    from core.sweep.real.config import RealSweepConfig as C

    q = s.add_parser(
        "sweep",
        help="AD and implosion metrics over C_P on a real SD model (results pack for the app)",
        description="For each C_P and seed: poison the first C_P concepts, fine-tune from the "
        "base, measure AD of the training pairs and score generations with CLIP. Resumes in "
        "the same --out folder.",
    )
    q.add_argument("--model", required=True, help="diffusers SD 1.x/2.x folder")
    q.add_argument("--clip", required=True, help="transformers CLIP folder (AD and scoring)")
    q.add_argument("--data", nargs="+", action="extend", required=True, help="dataset(s)")
    q.add_argument(
        "--concepts", nargs="+", type=_words, default=[], metavar="KEYWORDS",
        help="one argument per concept, comma-separated keywords: dog cat,kitten car "
        "(omit: the --auto-concepts most frequent caption words)",
    )  # fmt: skip
    q.add_argument("--auto-concepts", type=int, default=C.auto_concepts)
    q.add_argument("--levels", type=int, nargs="+", default=list(C.levels), help="C_P values")
    q.add_argument("--seeds", type=seed_arg, nargs="+", default=list(C.seeds))
    q.add_argument(
        "--out", type=Path, default=None,
        help="results folder (resumes); with --job defaults to the run's folder",
    )  # fmt: skip
    q.add_argument("--method", choices=["dirty-label", "nightshade"], default=C.method)
    q.add_argument("--poison-ratio", type=float, default=C.poison_ratio)
    q.add_argument("--mode", choices=["full", "xattn", "lora"], default=C.mode)
    q.add_argument("--steps", type=int, default=C.steps, help="fine-tune steps per level")
    q.add_argument("--batch", type=int, default=C.batch)
    q.add_argument("--lr", type=float, default=C.lr)
    q.add_argument("--rank", type=int, default=C.rank, help="LoRA rank")
    q.add_argument("--resolution", type=int, default=None)
    q.add_argument("--max-images", type=int, default=None, help="random subset of clean pairs")
    q.add_argument("--eval-samples", type=int, default=C.eval_samples)
    q.add_argument("--eval-steps", type=int, default=C.eval_steps)
    q.add_argument("--guidance", type=float, default=C.guidance)
    q.add_argument("--grid-samples", type=int, default=C.grid_samples)
    q.add_argument(
        "--ad-rescale", choices=["clip", "calibrate", "none", "custom"],
        default=C.ad_rescale,
        help="AD feature-term rescaling: CLIP ViT-B/32's [0.20, 0.45], quantiles of the clean "
        "pairs, raw cosines, or --ad-interval",
    )  # fmt: skip
    q.add_argument("--ad-interval", type=float, nargs=2, default=None, metavar=("LO", "HI"))
    q.add_argument(
        "--mixed-precision",
        choices=["auto", "no", "bf16", "fp16"],
        default="auto",
        help="auto: bf16 where the device runs it natively, else float32",
    )
    q.add_argument("--device", default="cpu")
    from core.commands.sweep import add_executor_args

    add_executor_args(q)
    q.add_argument("--job", action="store_true", help="run as a background job; print its id")
    q.add_argument("--queue", action="store_true", help="with --job: wait if the device is busy")
    q.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    q.set_defaults(func=_sweep)


def _sweep(args: argparse.Namespace) -> int:
    from core.sweep.real.config import RealSweepConfig, check_inputs

    custom = args.ad_interval is not None
    cfg = RealSweepConfig(
        model=args.model, clip=args.clip, data=tuple(args.data), concepts=tuple(args.concepts),
        auto_concepts=args.auto_concepts, levels=tuple(args.levels), seeds=tuple(args.seeds),
        method=args.method, poison_ratio=args.poison_ratio, mode=args.mode, steps=args.steps,
        batch=args.batch, lr=args.lr, rank=args.rank, resolution=args.resolution,
        max_images=args.max_images, eval_samples=args.eval_samples, eval_steps=args.eval_steps,
        guidance=args.guidance, grid_samples=min(args.grid_samples, args.eval_samples),
        ad_rescale="custom" if custom else args.ad_rescale,
        ad_interval=tuple(args.ad_interval) if custom else RealSweepConfig.ad_interval,
        mixed_precision=args.mixed_precision, device=args.device,
    )  # fmt: skip
    if args.job:
        from core.sweep.real.config import start_real_sweep_job

        form = {k: v for k, v in cfg.to_dict().items() if k != "device"}
        out = None if args.out is None else str(args.out)
        from core.commands.sweep import executor_settings

        ex = executor_settings(args)
        print(start_real_sweep_job(form, args.device, args.queue, out=out, executor=ex))
        return 0
    if args.out is None:
        raise ValueError("out: required without --job; pass --out runs/NAME (resumable)")
    check_inputs(cfg)  # before the progress bar: bad input is one clear line
    from core.commands.sweep import executor_options

    executor, options = executor_options(args)
    from tqdm.auto import tqdm

    from core.sweep.real.run import run_real_sweep

    _threads()
    bar = tqdm(total=len(cfg.levels) * len(cfg.seeds) * cfg.steps, unit="step", disable=args.json)

    def progress(step: int, total: int, msg: str, loss: float | None) -> None:
        bar.total = total  # fine-tune steps and one unit per level's evaluation
        bar.n = step
        bar.set_postfix_str(msg if loss is None else f"{msg} loss {loss:.4f}")
        bar.refresh()

    res = run_real_sweep(cfg, args.out, progress, executor=executor, options=options)
    bar.close()
    if args.json:
        print(json.dumps({"out": str(args.out), "summary": res["summary"]}))
        return 0
    shown = ("ad", "acc_unpoisoned", "acc_poisoned", "attack_success", "incoherence")
    print("C_P  " + "  ".join(f"{m:>15}" for m in shown))
    for c in cfg.levels:
        cells = []
        for m in shown:
            row = res["summary"][m]
            cells.append(
                f"{row['mean'][row['c_p'].index(c)]:>15.3f}" if c in row["c_p"] else " " * 14 + "—"
            )
        print(f"{c:>3}  " + "  ".join(cells))
    print(f"results: {args.out / 'results.json'}; {_app_hint(args.out)}")
    return 0


def _app_hint(out: Path) -> str:
    from core.io import runs_dir

    if out.resolve().is_relative_to(runs_dir().resolve()):
        return "open it in the app (`implosion app`, pack menu)"
    return f"the app lists packs under {runs_dir()} (or set IMPLOSION_RUNS)"


def _threads() -> None:
    import torch

    torch.set_num_threads(max(1, os.cpu_count() or 1))


def _check(args: argparse.Namespace) -> int:
    from core.data.captioned import DataReport, iter_records
    from core.models.sd import load_sd

    sd = load_sd(args.model, args.device)
    info: dict[str, Any] = {
        "model": args.model,
        "family": "SDXL" if sd.is_sdxl else "SD 1.x/2.x",
        "resolution": sd.resolution,
        "latent_shape": list(sd.latent_shape),
        "prediction_type": sd.prediction_type,
        "cross_attention_dim": sd.unet.config.cross_attention_dim,
        "parameters": sd.n_parameters(),
    }
    for d in args.data:
        rep = DataReport()
        n = sum(1 for _ in iter_records(d, rep))
        info.setdefault("data", {})[d] = {"pairs": n, **rep.to_dict()}
    if args.json:
        print(json.dumps(info))
    else:
        for k, v in info.items():
            print(f"{k}: {v}")
    return 0


def _poison(args: argparse.Namespace) -> int:
    from core.models.sd import load_sd
    from core.poison.real import RealPoisonConfig, poison_dataset

    cfg = RealPoisonConfig(
        concept=args.concept,
        target=args.target,
        method=args.method,
        budget=args.budget,
        epsilon=args.epsilon,
        steps=args.pgd_steps,
        resolution=args.resolution,
        seed=args.seed,
    )
    _threads()
    sd = load_sd(args.model, args.device) if args.model else None
    r = poison_dataset(args.data, args.out, cfg, sd)
    if args.json:
        print(json.dumps(r))
    else:
        extra = f", SSIM {r['ssim']:.3f}, L∞ {r['linf']:.4f}" if "ssim" in r else ""
        print(
            f"wrote {r['poison_pairs']} {args.method} pairs to {args.out}{extra}; data: "
            f"{r['data']['skipped']} files skipped {r['data']['skipped_by_reason']}"
        )
    return 0


def _finetune(args: argparse.Namespace) -> int:
    from core.training.real import RealFinetuneConfig, describe, run_finetune

    cfg = RealFinetuneConfig(
        model=str(args.model),
        data=tuple(args.data),
        out=str(args.out),
        mode=args.mode,
        steps=args.steps,
        batch=args.batch,
        lr=args.lr,
        rank=args.rank,
        resolution=args.resolution,
        mixed_precision=args.mixed_precision,
        gradient_checkpointing=args.gradient_checkpointing,
        checkpoint_every=args.checkpoint_every,
        seed=args.seed,
        device=args.device,
    )
    if args.job:
        from core.jobs import start_job

        job_cfg = {k: v for k, v in cfg.to_dict().items() if k != "device"}
        run_id = start_job("real-finetune", job_cfg, device=args.device, seed=args.seed)
        print(run_id)
        return 0
    _threads()
    r = run_finetune(cfg, quiet=args.json)
    print(json.dumps({k: v for k, v in r.items()}) if args.json else describe(r))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from core.evaluate.clip import evaluate_attack
    from core.models.dual import ClipEmbedder
    from core.models.sd import load_sd

    _threads()
    sd = load_sd(args.model, args.device)
    emb = ClipEmbedder(Path(args.clip), device=args.device)
    r = evaluate_attack(
        sd, emb, list(args.concepts), args.source, args.target,
        args.samples, args.seed, args.steps, args.guidance,
    )  # fmt: skip
    if args.json:
        print(json.dumps(r))
    else:
        print(
            f"attack success {r['attack_success']:.3f}  source accuracy "
            f"{r['source_accuracy']:.3f}  alignment {json.dumps(r['alignment'])}"
        )
    return 0


def _tiny(args: argparse.Namespace) -> int:
    from core.models.tiny import build_tiny_sd, build_tiny_sdxl

    build = build_tiny_sdxl if args.sdxl else build_tiny_sd
    build(args.out, resolution=args.resolution, seed=args.seed)
    print(f"wrote a tiny random {'SDXL' if args.sdxl else 'SD'} model to {args.out}")
    return 0


def main(argv: list[str]) -> int:
    """Run ``implosion real …`` alone (tests; until core/cli.py lists this module)."""
    import sys

    parser = argparse.ArgumentParser(prog="implosion")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["real", *argv])
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as e:
        print(f"implosion real: error: {e}", file=sys.stderr)
        return 2
