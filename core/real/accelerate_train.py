"""Multi-process / multi-GPU fine-tuning of a real SD model under ``accelerate launch``.

    accelerate launch --config_file examples/accelerate/multi_gpu.yaml \\
        -m core.real.accelerate_train --model SD_DIR --data DATA --out OUT --mode lora --steps 1000

The same loss as :mod:`core.real.train` (frozen VAE + text encoder, DDPM ε/v target, CFG caption
dropout); each process reads a disjoint shard of the stream (record i goes to rank i mod world),
accelerate averages gradients, handles mixed precision (``--mixed_precision``) and ``--cpu``.
The main process saves the result (LoRA merged) with :func:`core.real.train.save_finetuned`.
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
import torch.nn.functional as F

from core.real.data import DataReport
from core.real.lora import MODES, setup_trainable
from core.real.sd import load_sd
from core.real.train import RealFinetuneConfig, data_stream, save_finetuned


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Flags mirror ``implosion real finetune``."""
    p = argparse.ArgumentParser(prog="core.real.accelerate_train", description=__doc__)
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
    p.add_argument("--cpu", action="store_true", help="force CPU (also: accelerate launch --cpu)")
    return p.parse_args(argv)


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
    )
    acc = Accelerator(mixed_precision=a.mixed_precision, cpu=a.cpu)
    set_seed(a.seed, device_specific=True)
    sd = load_sd(cfg.model, acc.device)
    sd.unet.float()
    params = setup_trainable(sd.unet, cfg.mode, cfg.rank)
    if cfg.gradient_checkpointing:
        sd.unet.enable_gradient_checkpointing()
    opt = torch.optim.AdamW(params, lr=cfg.lr)
    unet, opt = acc.prepare(sd.unet, opt)
    unet.train()
    report = DataReport()
    res = cfg.resolution or sd.resolution
    rank, world = acc.process_index, acc.num_processes
    shard = data_stream(cfg, res, report, rank=rank, world=world)
    T = int(sd.scheduler.config.num_train_timesteps)
    loss_v, t0 = float("nan"), time.time()
    for step in range(1, cfg.steps + 1):
        items = list(itertools.islice(shard, cfg.batch))
        caps = [c if np.random.rand() >= cfg.cfg_dropout else "" for *_, c in items]
        with torch.no_grad():
            z0 = sd.encode_images(torch.from_numpy(np.stack([x for _, _, x, _ in items])), True)
            context = sd.encode_prompts(caps).float()
        eps = torch.randn_like(z0)
        t = torch.randint(0, T, (z0.shape[0],), device=z0.device)
        zt = sd.scheduler.add_noise(z0, eps, t)
        target = eps if sd.prediction_type == "epsilon" else sd.scheduler.get_velocity(z0, eps, t)
        with acc.autocast():
            pred = unet(zt, t, encoder_hidden_states=context).sample
        loss = F.mse_loss(pred.float(), target.float())
        acc.backward(loss)
        if acc.sync_gradients:
            acc.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss_v = float(acc.gather(loss.detach()[None]).mean())
        if acc.is_main_process and (step % 10 == 0 or step == cfg.steps):
            print(f"step {step}/{cfg.steps}  loss {loss_v:.4f}", flush=True)
    acc.wait_for_everyone()
    if acc.is_main_process:
        sd.unet = acc.unwrap_model(unet).eval()
        seconds = time.time() - t0
        result: dict[str, Any] = {
            "loss": loss_v,
            "steps": cfg.steps,
            "processes": world,
            "seconds": round(seconds, 2),
            "images_per_second": round(cfg.steps * cfg.batch * world / seconds, 2),
            "data_rank0": report.to_dict(),
        }
        save_finetuned(sd, cfg, Path(cfg.out), result)
        print(json.dumps({k: v for k, v in result.items() if k != "data_rank0"}), flush=True)
    acc.end_training()
    return 0


if __name__ == "__main__":
    sys.exit(main())
