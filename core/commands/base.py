"""``implosion train-base | eval-base | generate``: the embedded mini model."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from core.io import default_base


def register(sub: argparse._SubParsersAction) -> None:
    from core.training.config import TrainConfig  # light: no torch before parsing

    d = TrainConfig()
    p = sub.add_parser("train-base", help="train the mini latent diffusion model from scratch")
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        help="output model folder (resumes if it has checkpoints)",
    )
    p.add_argument("--concepts", type=int, default=d.world.n_concepts, help="K, number of concepts")
    p.add_argument(
        "--image-size",
        type=int,
        default=d.world.image_size,
        choices=[32, 64],
        help="pixels per side; at 64 the VAE gains a block (8× compression: an 8×8 latent)",
    )
    p.add_argument(
        "--style",
        default=d.world.style,
        choices=["flat", "textured"],
        help="concept world style: flat shapes (fast) or textured (patterns, backgrounds, light)",
    )
    p.add_argument("--texture", type=float, default=d.world.texture, help="textured style: 0–2")
    p.add_argument(
        "--noise",
        type=float,
        default=d.world.noise,
        help="textured style: per-pixel sensor noise, std in [0, 1] pixel units (0–0.1)",
    )
    p.add_argument(
        "--vae-kl", type=float, default=d.model.vae.kl_weight, help="KL weight of the VAE loss"
    )
    p.add_argument("--n-per-concept", type=int, default=d.n_per_concept)
    p.add_argument("--batch", type=int, default=d.batch)
    for stage in ("dual", "vae", "judge", "unet"):
        p.add_argument(f"--{stage}-steps", type=int, default=getattr(d, f"{stage}_steps"))
    p.add_argument(
        "--vae-batch",
        type=int,
        default=d.vae_batch,
        help="images per VAE step (0: min(--batch, 128))",
    )
    p.add_argument(
        "--vae-freeze-encoder-at",
        type=int,
        default=d.vae_freeze_encoder_at,
        help="VAE step from which only the decoder trains (keeps the encoder as sensitive as "
        "Stable Diffusion's, see bench/results/science.md); 0 = never",
    )
    p.add_argument("--unet-lr", type=float, default=d.unet_lr)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default=d.device, help="cpu or cuda[:N]")
    p.add_argument(
        "--precision",
        default=d.precision,
        choices=["auto", "fp32", "bf16"],
        help="UNet training dtype; auto: bf16 where the device runs it natively, else fp32",
    )
    p.add_argument("--tiny", action="store_true", help="tiny model config (tests, smoke runs)")
    p.add_argument("--json", action="store_true", help="print the final metrics as one JSON line")
    p.set_defaults(func=_train_base)

    p = sub.add_parser(
        "eval-base", help="judge generations of every concept (accuracy, incoherence)"
    )
    p.add_argument("--model", type=Path, default=None, help="model folder (default: shipped base)")
    p.add_argument("--samples", type=int, default=16, help="samples per concept")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=20, help="DDIM steps")
    p.add_argument("--guidance", type=float, default=3.0, help="classifier-free guidance scale")
    p.add_argument("--json", action="store_true", help="print one JSON line")
    p.set_defaults(func=_eval_base)

    p = sub.add_parser("generate", help="generate a grid of images for a prompt")
    p.add_argument("--prompt", required=True)
    p.add_argument("-n", type=int, default=8, help="number of images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--guidance", type=float, default=3.0)
    p.add_argument("--model", type=Path, default=None, help="model folder (default: shipped base)")
    p.add_argument("--out", type=Path, required=True, help="output PNG")
    p.add_argument("--force", action="store_true", help="replace --out if it already exists")
    p.set_defaults(func=_generate)


MAX_IMAGES = 1024  # generate -n: one grid in memory; more is a job for several calls
MAX_STEPS = 1000  # DDIM steps: the scheduler has 1000 training timesteps


def check_sampling(args: argparse.Namespace) -> None:
    """Validate sampling options before any model is loaded (ValueError naming the option)."""
    import math

    if not math.isfinite(args.guidance):
        raise ValueError(
            f"--guidance must be a finite number, got {args.guidance}; typical values are 1–7.5"
        )
    if not 1 <= args.steps <= MAX_STEPS:
        raise ValueError(f"--steps must be in 1..{MAX_STEPS}, got {args.steps}")
    n = getattr(args, "n", None)
    if n is not None and not 1 <= n <= MAX_IMAGES:
        raise ValueError(
            f"-n must be ≥ 1 and ≤ {MAX_IMAGES}, got {n}; for more images run several times "
            "with different --seed values"
        )


def _threads() -> None:
    import torch

    torch.set_num_threads(max(1, os.cpu_count() or 1))


def _train_base(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from core.jobs.devices import check_device
    from core.models.config import ModelConfig
    from core.training.base import TrainConfig, train_base
    from core.world import WorldConfig

    device = check_device(args.device)
    _threads()
    model = ModelConfig.tiny() if args.tiny else ModelConfig()
    cfg = TrainConfig(
        n_per_concept=args.n_per_concept,
        batch=args.batch,
        dual_steps=args.dual_steps,
        vae_steps=args.vae_steps,
        vae_batch=args.vae_batch,
        vae_freeze_encoder_at=args.vae_freeze_encoder_at,
        judge_steps=args.judge_steps,
        unet_steps=args.unet_steps,
        unet_lr=args.unet_lr,
        seed=args.seed,
        device=device,
        precision=args.precision,
        world=WorldConfig(
            n_concepts=args.concepts,
            image_size=args.image_size,
            style=args.style,
            texture=args.texture,
            noise=args.noise,
        ),
        model=replace(model, vae=replace(model.vae, kl_weight=args.vae_kl)).for_image_size(
            args.image_size
        ),
    )
    result = train_base(cfg, args.out)
    if args.json:
        print(json.dumps({"out": str(args.out), **result["stages"]}))
    else:
        print(f"saved model to {args.out} in {result['train_seconds']} s")
    return 0


def load_model(path: Path | None):
    from core.models.ldm import MiniLDM

    return MiniLDM.from_pretrained(path or default_base())


def _eval_base(args: argparse.Namespace) -> int:
    from core.evaluate.judged import evaluate_model

    check_sampling(args)
    _threads()
    ldm = load_model(args.model)
    r = evaluate_model(ldm, args.samples, args.seed, args.steps, args.guidance)
    if args.json:
        print(json.dumps(r))
    else:
        print(
            f"accuracy {r['accuracy']:.3f}  incoherence {r['incoherence']:.3f}  "
            f"alignment {r['alignment']:.3f}  ({r['samples_per_concept']} per concept, {r['seconds']} s)"
        )
        worst = sorted(r["per_concept"].items(), key=lambda kv: kv[1])[:5]
        print("weakest: " + ", ".join(f"{k} {v:.2f}" for k, v in worst))
    return 0


def _generate(args: argparse.Namespace) -> int:
    from core.io import check_output, ensure_writable_dir
    from core.results.grid import save_grid

    check_sampling(args)
    if args.out.suffix.lower() != ".png":
        raise ValueError(f"--out must end in .png, got {args.out}")
    # Checked before sampling: a bad --out must not cost the generated images.
    check_output(args.out, force=args.force, kind="file", inputs=[("--model", args.model)])
    ensure_writable_dir(args.out.parent if str(args.out.parent) else Path("."), "--out")
    _threads()
    ldm = load_model(args.model)
    images = ldm.sample(
        [args.prompt] * args.n, seed=args.seed, steps=args.steps, guidance=args.guidance
    )
    save_grid(images, args.out)
    print(f"wrote {args.n} images to {args.out}")
    return 0
