"""Multi-process / multi-GPU fine-tuning of a real SD model under ``accelerate launch``.

    accelerate launch --config_file examples/accelerate/multi_gpu.yaml \\
        -m core.training.accelerate_train --model SD_DIR --data DATA --out OUT --mode lora --steps 1000

The same loss as :mod:`core.training.real` (frozen VAE + text encoder, DDPM ε/v target, CFG caption
dropout); each process reads a disjoint shard of the stream (record i goes to rank i mod world),
accelerate averages gradients, handles mixed precision (``--mixed_precision``) and ``--cpu``.
The main process saves the result (LoRA merged) with :func:`core.training.real.save_finetuned`.

Resume: like :mod:`core.training.real`, ``OUT/checkpoints/step-*.pt`` (every ``--checkpoint_every``
steps and at the end, the newest two kept) hold the trainable weights, the optimizer, the step and
each process's data position; a rerun with the same ``--out`` continues from the newest one
(loaded with ``torch.load(weights_only=True)``: tensors and plain values, never pickled code).
The two scripts read each other's checkpoints. Randomness (noise, timesteps, caption dropout) is
drawn from a generator seeded by (seed, rank, step), so a resumed run draws what an uninterrupted
one would have. Final weights are safetensors (``save_finetuned``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.data.captioned import DataReport
from core.models.lora import (
    MODES,
    load_trainable_state_dict,
    setup_trainable,
    trainable_state_dict,
)
from core.models.sd import load_sd
from core.training.real import (
    FolderCheckpoints,
    RealFinetuneConfig,
    data_stream,
    denoising_loss,
    save_finetuned,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Flags mirror ``implosion real finetune``."""
    p = argparse.ArgumentParser(prog="core.training.accelerate_train", description=__doc__)
    p.add_argument("--model", required=True, help="diffusers SD folder")
    p.add_argument("--data", action="append", required=True, help="folder/CSV/JSONL/parquet")
    p.add_argument("--out", required=True, help="output model folder")
    p.add_argument("--mode", choices=MODES, default="xattn")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--batch", type=int, default=4, help="per process")
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--rank", type=int, default=4)
    p.add_argument("--resolution", type=int, default=None)
    p.add_argument("--mixed_precision", choices=["no", "bf16", "fp16"], default="no")
    p.add_argument("--gradient_checkpointing", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint_every", type=int, default=100, help="0: only at the end")
    p.add_argument("--no_resume", action="store_true", help="ignore OUT/checkpoints")
    p.add_argument("--cpu", action="store_true", help="force CPU (also: accelerate launch --cpu)")
    return p.parse_args(argv)


def step_generator(seed: int, rank: int, step: int) -> torch.Generator:
    """CPU generator for one step of one process, seeded by (seed, rank, step)."""
    state = np.random.SeedSequence([seed, rank, step]).generate_state(1, np.uint64)[0]
    return torch.Generator("cpu").manual_seed(int(state))


def resume_point(state: dict[str, Any] | None, rank: int, world: int) -> tuple[int, int, int]:
    """(step, epoch, records consumed) this process continues from. The same number of
    processes continue from their own positions; another number (or a checkpoint of
    ``core.training.real``) from the slowest position, so no record is skipped."""
    if state is None:
        return 0, 0, 0
    positions = state.get("positions")
    if positions and len(positions) == world:
        epoch, consumed = positions[rank]
    else:
        epoch, consumed = state["epoch"], state["consumed"]
    return int(state["step"]), int(epoch), int(consumed)


def main(argv: list[str] | None = None) -> int:
    """Run the fine-tune; the main process prints one JSON line with the result."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    a = parse_args(argv)
    cfg = RealFinetuneConfig(
        model=a.model,
        data=tuple(a.data),
        out=a.out,
        mode=a.mode,
        steps=a.steps,
        batch=a.batch,
        lr=a.lr,
        rank=a.rank,
        resolution=a.resolution,
        mixed_precision=a.mixed_precision,
        gradient_checkpointing=a.gradient_checkpointing,
        seed=a.seed,
        checkpoint_every=a.checkpoint_every,
    )
    acc = Accelerator(mixed_precision=a.mixed_precision, cpu=a.cpu)
    set_seed(a.seed, device_specific=True)
    sd = load_sd(cfg.model, acc.device)
    sd.unet.float()
    params = setup_trainable(sd.unet, cfg.mode, cfg.rank)
    if cfg.gradient_checkpointing:
        sd.unet.enable_gradient_checkpointing()
    opt = torch.optim.AdamW(params, lr=cfg.lr)
    ckpts = FolderCheckpoints(Path(cfg.out) / "checkpoints")
    latest = None if a.no_resume else ckpts.latest_checkpoint()
    state = torch.load(latest, map_location="cpu", weights_only=True) if latest else None
    if state is not None:  # before prepare(): plain modules, optimizer state cast to the params
        load_trainable_state_dict(sd.unet, state["trainable"])
        opt.load_state_dict(state["optimizer"])
    unet, opt = acc.prepare(sd.unet, opt)
    unet.train()
    report = DataReport()
    res = cfg.resolution or sd.resolution
    rank, world = acc.process_index, acc.num_processes
    start, epoch, consumed = resume_point(state, rank, world)
    shard = data_stream(cfg, res, report, epoch, consumed, rank=rank, world=world)
    gen = step_generator(cfg.seed, rank, start)

    def save(step: int) -> None:
        # every process takes part in the gather; the main one writes
        pos = acc.gather(torch.tensor([[epoch, consumed]], device=acc.device)).tolist()
        if acc.is_main_process:
            ckpt = {
                "step": step,
                "epoch": min(pos)[0],
                "consumed": min(pos)[1],
                "positions": pos,
                "trainable": trainable_state_dict(acc.unwrap_model(unet)),
                "optimizer": opt.state_dict(),
                "rng": gen.get_state(),
                "config": cfg.to_dict(),
            }
            ckpts.save_checkpoint(f"step-{step:07d}.pt", lambda p: torch.save(ckpt, p), keep=2)

    loss_v, t0 = float("nan"), time.time()
    for step in range(start + 1, cfg.steps + 1):
        items = list(itertools.islice(shard, cfg.batch))
        epoch, consumed = items[-1][0], items[-1][1]
        gen = step_generator(cfg.seed, rank, step)
        drop = (torch.rand(len(items), generator=gen) < cfg.cfg_dropout).tolist()
        caps = ["" if d else c for d, (*_, c) in zip(drop, items)]
        xs = [x for _, _, x, _ in items]
        loss = denoising_loss(sd, unet, xs, caps, gen, res, acc.autocast())
        acc.backward(loss)
        if acc.sync_gradients:
            acc.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss_v = float(acc.gather(loss.detach()[None]).mean())
        if acc.is_main_process and (step % 10 == 0 or step == cfg.steps):
            print(f"step {step}/{cfg.steps}  loss {loss_v:.4f}", flush=True)
        if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < cfg.steps:
            save(step)
    save(max(start, cfg.steps))
    acc.wait_for_everyone()
    if acc.is_main_process:
        sd.unet = acc.unwrap_model(unet).eval()
        seconds = time.time() - t0
        result: dict[str, Any] = {
            "loss": loss_v,
            "steps": max(start, cfg.steps),
            "resumed_from": start,
            "processes": world,
            "seconds": round(seconds, 2),
            "images_per_second": round((cfg.steps - start) * cfg.batch * world / seconds, 2)
            if cfg.steps > start
            else None,
            "data_rank0": report.to_dict(),
        }
        save_finetuned(sd, cfg, Path(cfg.out), result)
        print(json.dumps({k: v for k, v in result.items() if k != "data_rank0"}), flush=True)
    acc.end_training()
    return 0


if __name__ == "__main__":
    sys.exit(main())
