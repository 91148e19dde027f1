"""What each train-base stage costs per optimizer step for the 64-px textured world, before a
design is committed to. Writes bench/results/world_v2_costs.json and .md.

Each row times ``--steps`` training steps (forward, backward, AdamW step; fp32, after one warm-up
step) of one component at ``--batch`` images and scales the time to 256 images per step (cost is
linear in the batch on a CPU at these sizes). The load average (``uptime``) is recorded beside
each row: compare designs as ratios within one run, not across runs.

    nice -n 10 python bench/world_v2.py [--batch 64] [--steps 3] [--only vae]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from core.io import atomic_write_bytes, atomic_write_json, run_metadata  # noqa: E402
from core.models.config import (  # noqa: E402
    DualConfig,
    UNetConfig,
    VAEConfig,
    build_clip,
    build_unet,
    build_vae,
)
from core.models.judge import Judge  # noqa: E402
from core.world import World, WorldConfig  # noqa: E402

PER_STEP = 256  # the unit: images per optimizer step


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _time_steps(model: torch.nn.Module, step: Any, steps: int) -> float:
    """Seconds per training step (mean over ``steps`` after one warm-up)."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def one() -> None:
        opt.zero_grad(set_to_none=True)
        step().backward()
        opt.step()

    one()
    t = time.perf_counter()
    for _ in range(steps):
        one()
    return (time.perf_counter() - t) / steps


def _row(stage: str, design: str, model: Any, step: Any, counted: Any = None) -> dict:
    """One measured stage: its design, parameter count (of ``counted``, default the model) and
    the model and training step the timer runs."""
    part = model if counted is None else counted
    return {
        "stage": stage,
        "design": design,
        "parameters": sum(p.numel() for p in part.parameters()),
        "_model": model,
        "_step": step,
    }


def vae_row(channels: tuple[int, ...], latent: int, size: int, x: torch.Tensor) -> dict:
    vae = build_vae(VAEConfig(channels=channels, latent_channels=latent), size).train()

    def step() -> torch.Tensor:
        d = vae.encode(x).latent_dist
        rec = vae.decode(d.sample()).sample
        return F.l1_loss(rec, x) + F.mse_loss(rec, x) + 1e-6 * d.kl().mean()

    ratio = 2 ** (len(channels) - 1)
    return _row(
        "vae",
        f"channels {channels}, latent {latent}×{size // ratio}×{size // ratio} "
        f"({ratio}× compression), {size} px",
        vae,
        step,
    )


def encoder_row(channels: tuple[int, ...], latent: int, size: int, x: torch.Tensor) -> dict:
    """The PGD step's cost: gradient of the encoder's latent mean w.r.t. the input pixels."""
    vae = build_vae(VAEConfig(channels=channels, latent_channels=latent), size).eval()
    delta = torch.zeros_like(x, requires_grad=True)

    def step() -> torch.Tensor:
        return vae.encode(x + delta).latent_dist.mean.pow(2).sum()

    return _row(
        "pgd (encoder grad)",
        f"encoder of channels {channels}, {size} px",
        vae,
        step,
        counted=vae.encoder,
    )


def unet_row(latent_size: int, x_ch: int, b: int) -> dict:
    unet = build_unet(UNetConfig(), latent_size, x_ch, 64).train()
    z = torch.randn(b, x_ch, latent_size, latent_size)
    ctx = torch.randn(b, 16, 64)
    t = torch.randint(0, 1000, (b,))

    def step() -> torch.Tensor:
        return F.mse_loss(unet(z, t, encoder_hidden_states=ctx).sample, z)

    return _row("unet", f"UNetConfig() on a {x_ch}×{latent_size}×{latent_size} latent", unet, step)


def clip_row(size: int, patch: int, x: torch.Tensor) -> dict:
    ids = {"bos": 1, "eos": 2, "pad": 0}
    clip = build_clip(DualConfig(patch=patch), 64, size, ids).train()
    tokens = torch.randint(3, 64, (x.shape[0], 16))

    def step() -> torch.Tensor:
        return clip(input_ids=tokens, pixel_values=x, return_loss=True).loss

    return _row(
        "dual (CLIP)",
        f"DualConfig(patch={patch}) at {size} px ({(size // patch) ** 2} patches)",
        clip,
        step,
    )


def judge_row(size: int, x: torch.Tensor) -> dict:
    judge = Judge(2, 4, 4, 32).train()
    attrs = torch.zeros(x.shape[0], 3, dtype=torch.int64)

    def step() -> torch.Tensor:
        return judge.loss(x, attrs)

    return _row("judge", f"Judge(width=32) at {size} px", judge, step)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", nargs="*", default=None, help="stages to time (default: all)")
    ap.add_argument("--out", type=Path, default=Path("bench/results/world_v2_costs"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    b = args.batch
    x64 = torch.from_numpy(
        World(WorldConfig(image_size=64, style="textured")).sample(2, seed=0).images
    )[:b]
    x64 = x64.repeat((b + x64.shape[0] - 1) // x64.shape[0], 1, 1, 1)[:b]
    x32 = F.interpolate(x64, size=32, mode="area")
    t = time.perf_counter()
    World(WorldConfig(image_size=64, style="textured")).sample(1000, seed=1)
    render_s = time.perf_counter() - t
    print(f"render 32,000 textured 64-px images: {render_s:.1f} s (load {_load()})", flush=True)

    builders = [
        lambda: vae_row((16, 32, 64), 4, 32, x32),  # today's base: the reference
        lambda: vae_row((16, 32, 64), 4, 64, x64),  # today's 4× compression at 64 px
        lambda: vae_row((16, 32, 64, 64), 4, 64, x64),
        lambda: vae_row((16, 32, 64, 128), 4, 64, x64),
        lambda: vae_row((32, 64, 64, 64), 4, 64, x64),
        lambda: vae_row((16, 32, 64, 64), 8, 64, x64),
        lambda: encoder_row((16, 32, 64, 64), 4, 64, x64[:16]),
        lambda: unet_row(8, 4, b),
        lambda: unet_row(16, 4, b),
        lambda: clip_row(32, 4, x32),
        lambda: clip_row(64, 4, x64),
        lambda: clip_row(64, 8, x64),
        lambda: judge_row(32, x32),
        lambda: judge_row(64, x64),
    ]
    rows = []
    for build in builders:
        row = build()
        if args.only and not any(row["stage"].startswith(s) for s in args.only):
            continue
        load_before = _load()
        sec = _time_steps(row.pop("_model"), row.pop("_step"), args.steps)
        n = 16 if row["stage"].startswith("pgd") else b
        row.update(
            batch=n,
            seconds_per_step=round(sec, 3),
            seconds_per_256=round(sec * PER_STEP / n, 3),
            load_before=load_before,
            load_after=_load(),
        )
        rows.append(row)
        print(
            f"{row['stage']:20s} {row['design']:60s} {row['seconds_per_256']:7.2f} s/256 img "
            f"(load {row['load_before']} → {row['load_after']})",
            flush=True,
        )
    result = {
        "unit": "seconds per optimizer step of 256 images, fp32, scaled from --batch",
        "batch": b,
        "steps": args.steps,
        "threads": args.threads,
        "render_32000_textured_64px_seconds": round(render_s, 1),
        "rows": rows,
        "metadata": run_metadata(0),
    }
    atomic_write_json(args.out.with_suffix(".json"), result)
    lines = [
        "# Per-step costs of train-base stages for the 64-px textured world",
        "",
        f"`nice -n 10 python bench/world_v2.py --batch {b} --steps {args.steps} "
        f"--threads {args.threads}`; seconds per step of 256 images (fp32, measured at batch {b} "
        "and scaled; the PGD row at 16 images); 1-minute load before → after each row. The "
        "machine was shared: compare rows as ratios.",
        "",
        f"Rendering 32,000 textured 64-px images: {render_s:.1f} s.",
        "",
        "| stage | design | parameters | s / 256 images | load |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['stage']} | {r['design']} | {r['parameters']:,} | {r['seconds_per_256']:.2f} | "
        f"{r['load_before']} → {r['load_after']} |"
        for r in rows
    ]
    atomic_write_bytes(args.out.with_suffix(".md"), ("\n".join(lines) + "\n").encode())


if __name__ == "__main__":
    main()
