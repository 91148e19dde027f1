"""Benchmark of the shipped mini model: fine-tune throughput per dtype, sampling time, sizes.

Prints a table and writes bench/results/model.json and bench/results/model.md.
    python bench/model.py [--model assets/base] [--device cpu|cuda] [--steps 6] [--batch 64]
Fine-tune throughput is what every Poison-setup run, sweep level and job pays: the real
``core.training.finetune.finetune_unet`` (full AdamW step, grad clipping) at batch 64 under
``FinetuneConfig(precision="fp32")`` and ``precision="bf16"`` (autocast), on random latents of
the model's shape with real prompt contexts. The first ``--warmup`` steps are not timed (one-off
allocation and kernel selection). The record says what ``precision="auto"`` picks on this device,
the CPU's bf16/AMX flags and the load average beside each figure (the machine may be shared).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from core.models.ldm import MiniLDM
from core.training.precision import (
    compute_dtype,
    dtype_name,
    native_bf16,
    probe_key,
    unet_step_probe,
)


def file_sizes(model: Path) -> dict[str, int]:
    return {
        str(p.relative_to(model)): p.stat().st_size
        for p in sorted(model.rglob("*"))
        if p.is_file() and "checkpoints" not in p.parts
    }


def cpu_flags() -> dict[str, object]:
    """CPU model and the flags that decide the dtype (AVX-512, AVX512-BF16, AMX)."""
    model, flags = "?", set()
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model == "?":
                model = value.strip()
            if key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    return {"model": model, "flags": [f for f in wanted if f in flags]}


def finetune_throughput(
    ldm: MiniLDM, precision: str, batch: int, steps: int, warmup: int
) -> dict[str, object]:
    """img/s of ``finetune_unet`` under ``FinetuneConfig(precision=...)``, timed after warm-up."""
    from core.training.finetune import FinetuneConfig, finetune_unet, make_pairs

    c, s = ldm.latent_shape[0], ldm.latent_shape[1]
    g = torch.Generator("cpu").manual_seed(0)
    n_img = 256
    mean = torch.randn(n_img, c, s, s, generator=g).to(ldm.device)
    std = 0.1 * torch.ones(n_img, c, s, s).to(ldm.device)
    captions = [ldm.world.concepts[i % ldm.world.n_concepts].caption(0) for i in range(n_img)]
    data = make_pairs(ldm, mean, std, np.arange(n_img), captions)
    stamps: list[tuple[float, float]] = []  # (wall, process CPU) after each step
    cfg = FinetuneConfig(steps=warmup + steps, batch=batch, precision=precision, lr=1e-5)
    load = [round(v, 2) for v in os.getloadavg()]
    out = finetune_unet(
        ldm, data, cfg, on_step=lambda *_: stamps.append((time.perf_counter(), time.process_time()))
    )
    timed = stamps[warmup - 1 :] if warmup > 0 else stamps
    seconds = timed[-1][0] - timed[0][0]
    cpu_seconds = timed[-1][1] - timed[0][1]
    n_steps = len(timed) - 1
    return {
        "precision": precision,
        "dtype": out["dtype"],
        "batch": batch,
        "steps_timed": n_steps,
        "seconds_per_step": seconds / n_steps,
        "cpu_seconds_per_step": cpu_seconds / n_steps,
        "images_per_second": round(batch * n_steps / seconds, 1),
        "load": load,
    }


def pool(runs: list[dict[str, object]]) -> dict[str, object]:
    """One dtype's rounds as one figure: all timed steps together, loads of each round."""
    steps = sum(int(r["steps_timed"]) for r in runs)  # type: ignore[call-overload]
    wall = sum(float(r["seconds_per_step"]) * int(r["steps_timed"]) for r in runs)  # type: ignore[arg-type,call-overload]
    cpu = sum(float(r["cpu_seconds_per_step"]) * int(r["steps_timed"]) for r in runs)  # type: ignore[arg-type,call-overload]
    first = runs[0]
    return {
        "precision": first["precision"],
        "dtype": first["dtype"],
        "batch": first["batch"],
        "rounds": len(runs),
        "steps_timed": steps,
        "seconds_per_step": wall / steps,
        "cpu_seconds_per_step": cpu / steps,
        "images_per_second": round(int(first["batch"]) * steps / wall, 1),  # type: ignore[call-overload]
        "load": first["load"],
        "loads": [r["load"] for r in runs],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=Path("assets/base"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=64, help="fine-tune batch size")
    ap.add_argument("--steps", type=int, default=6, help="timed fine-tune steps per dtype")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    ap.add_argument("--rounds", type=int, default=2, help="alternating fp32/bf16 rounds")
    ap.add_argument("--out", type=Path, default=Path("bench/results"), help="results folder")
    args = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    ldm = MiniLDM.from_pretrained(args.model, args.device)
    prompts = [ldm.world.concepts[i % ldm.world.n_concepts].caption(0) for i in range(64)]
    ldm.sample(prompts[:2], steps=2)  # warm-up
    sample_load = [round(v, 2) for v in os.getloadavg()]
    t0 = time.perf_counter()
    ldm.sample(prompts, seed=0, steps=20, guidance=3.0)
    sample_s = time.perf_counter() - t0
    # Rounds alternate the dtypes (fp32, bf16, fp32, bf16, ...) so that a change in the machine's
    # load during the run hits both alike; the figures pool every timed step of a dtype.
    rounds: dict[str, list[dict[str, object]]] = {"fp32": [], "bf16": []}
    for _ in range(args.rounds):
        for p in rounds:
            rounds[p].append(finetune_throughput(ldm, p, args.batch, args.steps, args.warmup))
    finetune = {p: pool(rs) for p, rs in rounds.items()}
    for p, r in finetune.items():
        print(f"fine-tune {p}: {r}", flush=True)
    # what `--precision auto` picks for this model: the same probe and cache finetune_unet uses
    nb = 32
    cfg = ldm.unet.config
    lat = torch.randn(nb, cfg.in_channels, cfg.sample_size, cfg.sample_size, device=ldm.device)
    ctx = ldm.encode_prompts(prompts[:1], check=False).expand(nb, -1, -1)
    probe = unet_step_probe(ldm.unet.train().requires_grad_(True), lat, ctx)
    auto = dtype_name(compute_dtype(args.device, "auto", probe, probe_key(ldm.unet, nb)))
    ldm.unet.eval().requires_grad_(False)
    sizes = file_sizes(args.model)
    res = {
        "device": args.device,
        "cpu": cpu_flags() if args.device == "cpu" else None,
        "native_bf16": native_bf16(args.device),
        "auto_precision_picks": auto,
        "cpu_threads": torch.get_num_threads(),
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "torch": torch.__version__,
        "finetune": finetune,
        "bf16_over_fp32": finetune["bf16"]["images_per_second"]  # type: ignore[operator]
        / finetune["fp32"]["images_per_second"],
        "bf16_over_fp32_cpu": finetune["fp32"]["cpu_seconds_per_step"]  # type: ignore[operator]
        / finetune["bf16"]["cpu_seconds_per_step"],
        "sample_64_images_seconds_20_ddim_steps_cfg": round(sample_s, 2),
        "sample_load": sample_load,
        "parameters": ldm.n_parameters(),
        "file_bytes": sizes,
        "total_bytes": sum(sizes.values()),
        "largest_file_bytes": max(sizes.values()),
    }
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.device == "cpu" else "_" + args.device.replace(":", "")
    (out / f"model{suffix}.json").write_text(json.dumps(res, indent=2) + "\n")
    cpu = res["cpu"] or {}
    fmt = "/".join
    md = [
        f"# Mini model benchmark ({res['machine']}, {args.device}, torch {res['torch']})",
        "",
        f"CPU: {cpu.get('model', '-')}, flags {', '.join(cpu.get('flags', [])) or '-'}; "
        f"native bf16: {'yes' if res['native_bf16'] else 'no'}, so `--precision auto` picks "
        f"**{auto}** here. Load average (1/5/15 min) beside each figure: the machine is shared, "
        "so absolute rates include contention; the two dtypes ran back to back in one process.",
        "",
        "| figure | value | load |",
        "|---|---|---|",
        *[
            f"| UNet fine-tune (`finetune_unet`), batch {r['batch']}, {p} "
            f"({r['steps_timed']} steps in {r['rounds']} alternating rounds, each after "
            f"{args.warmup} warm-up) | "
            f"{r['images_per_second']} img/s ({r['seconds_per_step']:.2f} s/step wall, "
            f"{r['cpu_seconds_per_step']:.2f} CPU-s/step) | "
            f"{'; '.join(fmt(str(v) for v in lo) for lo in r['loads'])} |"
            for p, r in finetune.items()
        ],
        f"| bf16 / fp32 throughput (wall) | {res['bf16_over_fp32']:.2f}× | |",
        f"| bf16 / fp32 (CPU-s per step, fp32 ÷ bf16) | {res['bf16_over_fp32_cpu']:.2f}× | |",
        f"| sample 64 images (20 DDIM steps, CFG 3) | "
        f"{res['sample_64_images_seconds_20_ddim_steps_cfg']} s | "
        f"{fmt(str(v) for v in sample_load)} |",
        *[f"| parameters: {k} | {v:,} | |" for k, v in res["parameters"].items()],
        f"| total size of the model folder | {res['total_bytes'] / 1e6:.1f} MB | |",
        f"| largest file | {res['largest_file_bytes'] / 1e6:.1f} MB | |",
        "",
        "Reproduce: `python bench/model.py --device " + args.device + "`",
    ]
    (out / f"model{suffix}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
