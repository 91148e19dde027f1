"""Fine-tuning the UNet on a (possibly poisoned) training set.

The text encoder and VAE stay frozen (as in SD fine-tuning), so a training set reduces to
``PairData``: VAE posterior mean/std per image and, per pair, an index into a table of text
contexts. Dirty-label poison is then just a different index pairing — no image is re-encoded.

Trainable parameters: ``all`` UNet weights, ``cross-attention`` only (the K/V/Q/out
projections of every ``attn2``: the mapping from the text graph to the image graph that the paper
analyses), or ``lora``: low-rank adapters on those projections, merged into the weights when the
fine-tune ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from core.models.adapter import trained_weights
from core.models.ldm import MiniLDM
from core.models.lora import merge_lora_state_dict, setup_trainable
from core.models.sampling import training_loss
from core.training.config import PARAMS, FinetuneConfig, Params  # noqa: F401 (light configs)
from core.training.precision import (
    autocast,
    compute_dtype,
    dtype_name,
    probe_key,
    unet_step_probe,
)


@dataclass
class PairData:
    """Training pairs. mean/std: (N, C, s, s) scaled VAE posterior; caption: (M,) index into
    ``contexts`` (U+1, L, D) whose last row is the empty prompt; image: (M,) index into mean."""

    mean: torch.Tensor
    std: torch.Tensor
    contexts: torch.Tensor
    captions: list[str]
    image: torch.Tensor
    caption: torch.Tensor

    def __len__(self) -> int:
        return int(self.image.shape[0])


@torch.no_grad()
def encode_images(
    ldm: MiniLDM, images: np.ndarray | torch.Tensor, batch: int = 512
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scaled VAE posterior (mean, std) of images (N, 3, S, S) in [-1, 1]."""
    x = torch.as_tensor(images)
    s = ldm.vae.config.scaling_factor
    mu, sd = [], []
    for i in range(0, x.shape[0], batch):
        d = ldm.vae.encode(x[i : i + batch].to(ldm.device)).latent_dist
        mu.append(d.mean * s)
        sd.append(d.std * s)
    return torch.cat(mu), torch.cat(sd)


@torch.no_grad()
def make_pairs(
    ldm: MiniLDM, mean: torch.Tensor, std: torch.Tensor, image_idx: np.ndarray, captions: list[str]
) -> PairData:
    """Pairs (image_idx[i], captions[i]); contexts computed once per unique caption."""
    uniq = sorted(set(captions))
    pos = {c: i for i, c in enumerate(uniq)}
    ctx = torch.cat([ldm.encode_prompts(uniq, check=False), ldm.encode_prompts([""], check=False)])
    cap = torch.tensor([pos[c] for c in captions], dtype=torch.long, device=ldm.device)
    return PairData(
        mean, std, ctx, uniq, torch.as_tensor(image_idx, dtype=torch.long, device=ldm.device), cap
    )


_MODES = {"all": "full", "cross-attention": "xattn", "lora": "lora"}


def trainable_parameters(
    unet: torch.nn.Module, params: str, lora_rank: int = 4
) -> list[torch.nn.Parameter]:
    """Freeze the UNet, then unfreeze all weights, the cross-attention (``attn2``) ones, or
    inject rank-``lora_rank`` adapters on them (core.models.lora, the real path's one place)."""
    return setup_trainable(unet, _MODES[params], lora_rank)


def merge_adapters(unet: torch.nn.Module) -> None:
    """Fold any LoRA adapters into the weights and remove them: a plain UNet again."""
    if not any("lora_" in n for n, _ in unet.named_parameters()):
        return
    merged = merge_lora_state_dict(unet)
    unet.unload_lora()  # type: ignore[operator]  # diffusers PeftAdapterMixin
    unet.load_state_dict(merged)


def finetune_unet(
    ldm: MiniLDM,
    data: PairData,
    config: FinetuneConfig,
    on_step: Callable[[int, int, float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    start_step: int = 0,
    optimizer_state: dict[str, Any] | None = None,
    keep_weights: bool = False,
) -> dict[str, Any]:
    """DDPM fine-tuning of ``ldm.unet`` in place (loss: :func:`core.models.sampling.training_loss`).

    Returns {"loss", "steps", "seconds", "images_per_second", "optimizer": state_dict}, plus
    ``"weights"`` with ``keep_weights``: what the fine-tune trained, taken before LoRA adapters
    are merged (:func:`core.models.adapter.trained_weights`: the adapters, or the
    cross-attention projections), so a level can be saved in kilobytes and rebuilt on the base.
    """
    dev = ldm.device
    unet = ldm.unet.train()
    # LoRA adapters draw their initial weights from torch's global RNG: seed them from the
    # fine-tune's seed so a level does not depend on what ran before it in the process
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(config.seed * 100_003 + 17)
        params = trainable_parameters(unet, config.params, config.lora_rank)
    # fused AdamW (one kernel for all parameters) where the device supports it
    fused = True if dev.type == "cuda" else None
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0, fused=fused)
    if optimizer_state is not None:
        opt.load_state_dict(optimizer_state)
    ema = None
    if config.ema_decay > 0:
        ema = [p.detach().clone() for p in params]
    g = torch.Generator("cpu").manual_seed(config.seed * 100_003 + start_step)
    T = ldm.scheduler.config.num_train_timesteps
    empty = data.contexts.shape[0] - 1
    loss_v, t0 = float("nan"), time.time()
    nb = min(config.batch, 32, int(data.mean.shape[0]))
    probe = unet_step_probe(unet, data.mean[:nb], data.contexts[:1].expand(nb, -1, -1))
    dtype = compute_dtype(dev, config.precision, probe, probe_key(unet, nb))
    step = start_step
    for step in range(start_step, config.steps):
        idx = torch.randint(0, len(data), (config.batch,), generator=g).to(dev)
        im = data.image[idx]
        z0 = data.mean[im] + data.std[im] * torch.randn(data.mean[im].shape, generator=g).to(dev)
        eps = torch.randn(z0.shape, generator=g).to(dev)
        t = torch.randint(0, T, (config.batch,), generator=g).to(dev)
        drop = torch.rand(config.batch, generator=g).to(dev) < config.cfg_dropout
        ci = torch.where(drop, empty, data.caption[idx])
        cond = {"encoder_hidden_states": data.contexts[ci]}
        loss = training_loss(unet, ldm.scheduler, z0, t, eps, cond, autocast(dev, dtype))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if ema is not None:
            torch._foreach_lerp_(ema, [p.detach() for p in params], 1 - config.ema_decay)
        loss_v = float(loss.item())
        if not np.isfinite(loss_v):
            raise FloatingPointError("fine-tuning loss became NaN/inf; lower lr")
        if on_step is not None:
            on_step(step + 1, config.steps, loss_v)
        if should_stop is not None and should_stop():
            step += 1
            break
    else:
        step = config.steps
    if ema is not None:
        with torch.no_grad():
            for p, e in zip(params, ema):
                p.copy_(e)
    trained = trained_weights(unet, config.params) if keep_weights else None
    merge_adapters(unet)
    unet.eval().requires_grad_(False)
    seconds = time.time() - t0
    done = step - start_step
    out: dict[str, Any] = {
        "loss": loss_v,
        "steps": step,
        "seconds": round(seconds, 2),
        "images_per_second": round(done * config.batch / seconds, 1) if seconds > 0 else None,
        "dtype": dtype_name(dtype),
        "optimizer": opt.state_dict(),
    }
    if trained is not None:
        out["weights"] = trained
    return out
