"""Benchmark of the shipped mini model: training throughput, sampling time, sizes.

Prints a table and writes bench/results/model.json and bench/results/model.md.
    python bench/model.py [--model assets/base] [--device cpu|cuda] [--steps 20]
Training throughput is measured on the UNet stage (the dominant cost) with the shipped config:
batch 256, bf16 autocast, full optimizer step, on random latents and contexts of the right shapes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from core.models.ldm import MiniLDM


def file_sizes(model: Path) -> dict[str, int]:
    return {
        str(p.relative_to(model)): p.stat().st_size
        for p in sorted(model.rglob("*"))
        if p.is_file() and "checkpoints" not in p.parts
    }


def train_throughput(ldm: MiniLDM, batch: int, steps: int) -> float:
    unet = ldm.unet.train()
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-5)
    c, s = ldm.latent_shape[0], ldm.latent_shape[1]
    z = torch.randn(batch, c, s, s, device=ldm.device)
    ctx = torch.randn(batch, 16, ldm.config.dual.hidden, device=ldm.device)
    t = torch.randint(0, 1000, (batch,), device=ldm.device)
    for i in range(steps + 3):
        if i == 3:
            if ldm.device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        with torch.autocast(ldm.device.type, dtype=torch.bfloat16):
            loss = F.mse_loss(unet(z, t, encoder_hidden_states=ctx).sample.float(), z)
        opt.zero_grad()
        loss.backward()
        opt.step()
    if ldm.device.type == "cuda":
        torch.cuda.synchronize()
    unet.eval()
    return batch * steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=Path("assets/base"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=20, help="timed training steps")
    ap.add_argument(
        "--batches", type=int, nargs="+", default=[256], help="training batch sizes to time"
    )
    ap.add_argument(
        "--compile", action="store_true", help="also time torch.compile(unet) (GPU: Triton)"
    )
    ap.add_argument("--out", type=Path, default=Path("bench/results"), help="results folder")
    args = ap.parse_args()
    ldm = MiniLDM.from_pretrained(args.model, args.device)
    prompts = [ldm.world.concepts[i % ldm.world.n_concepts].caption(0) for i in range(64)]
    ldm.sample(prompts[:2], steps=2)  # warm-up
    t0 = time.perf_counter()
    ldm.sample(prompts, seed=0, steps=20, guidance=3.0)
    sample_s = time.perf_counter() - t0
    per_batch = {b: round(train_throughput(ldm, b, args.steps), 1) for b in args.batches}
    ips = per_batch.get(256, next(iter(per_batch.values())))
    compiled: dict[int, float] = {}
    if args.compile:
        ldm.unet = torch.compile(ldm.unet)  # type: ignore[assignment]
        compiled = {b: round(train_throughput(ldm, b, args.steps), 1) for b in args.batches}
    sizes = file_sizes(args.model)
    res = {
        "device": args.device,
        "cpu_threads": torch.get_num_threads(),
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "torch": torch.__version__,
        "train_images_per_second": round(ips, 1),
        "train_images_per_second_by_batch": per_batch,
        "train_images_per_second_compiled_by_batch": compiled,
        "sample_64_images_seconds_20_ddim_steps_cfg": round(sample_s, 2),
        "parameters": ldm.n_parameters(),
        "file_bytes": sizes,
        "total_bytes": sum(sizes.values()),
        "largest_file_bytes": max(sizes.values()),
    }
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.device == "cpu" else "_" + args.device.replace(":", "")
    (out / f"model{suffix}.json").write_text(json.dumps(res, indent=2) + "\n")
    md = [
        f"# Mini model benchmark ({res['machine']}, {args.device}, torch {res['torch']})",
        "",
        "| figure | value |",
        "|---|---|",
        f"| UNet training throughput (batch 256, bf16 autocast) | {res['train_images_per_second']} img/s |",
        *[f"| UNet training, batch {b} | {v} img/s |" for b, v in per_batch.items()],
        *[f"| UNet training, batch {b}, torch.compile | {v} img/s |" for b, v in compiled.items()],
        f"| sample 64 images (20 DDIM steps, CFG 3) | {res['sample_64_images_seconds_20_ddim_steps_cfg']} s |",
        *[f"| parameters: {k} | {v:,} |" for k, v in res["parameters"].items()],
        f"| total size of the model folder | {res['total_bytes'] / 1e6:.1f} MB |",
        f"| largest file | {res['largest_file_bytes'] / 1e6:.1f} MB |",
        "",
        "Reproduce: `python bench/model.py --device " + args.device + "`",
    ]
    (out / f"model{suffix}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
