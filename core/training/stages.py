"""The four stages of ``train-base`` (see core/training/base.py); each returns its metrics dict."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from core.io import atomic_write_json, atomic_write_with
from core.models.judge import judge_scores
from core.models.sampling import training_loss
from core.training.common import batches, clone_for_ema, ema_update, lr_ok, warmup_cosine
from core.training.precision import autocast, compute_dtype, probe_key, unet_step_probe


def _small_net_dtype(device: torch.device) -> torch.dtype:
    # The dual encoder and VAE are small convolutional/transformer nets that measured slower in
    # bf16 on CPU even with native support: bf16 only on CUDA (where it is native and faster).
    return compute_dtype(device) if device.type == "cuda" else torch.float32


def _optimize(opt: torch.optim.Optimizer, sched: Any, loss: torch.Tensor) -> float:
    """One optimizer + LR-schedule step; returns the loss (FloatingPointError if not finite)."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()
    return lr_ok(loss.item())


def train_dual(ldm, config, images, labels, captions, g, st, stop) -> dict[str, float]:
    """Contrastive CLIP training. Targets are label-aware: an image's positives are all captions
    of its concept in the batch (plain InfoNCE would push apart same-concept captions)."""
    clip = ldm.clip.train()
    opt = torch.optim.AdamW(clip.parameters(), lr=config.lr, weight_decay=0.01)
    sched = warmup_cosine(opt, config.dual_steps)
    nxt = batches(len(labels), config.batch, g)
    loss_v = float("nan")
    bar = st.loop("dual", config.dual_steps)
    for step in bar:
        idx = nxt()
        ids = ldm.tokenize([captions[i] for i in idx.tolist()])
        with autocast(ldm.device, _small_net_dtype(ldm.device)):
            out = clip(input_ids=ids, pixel_values=images[idx])
        logits = out.logits_per_image.float()  # (B, B), scaled cosines
        same = (labels[idx][:, None] == labels[idx][None, :]).float()
        target = same / same.sum(1, keepdim=True)
        loss = (
            -(target * logits.log_softmax(1)).sum(1).mean()
            - (target * logits.t().log_softmax(1)).sum(1).mean()
        )
        loss_v = _optimize(opt, sched, loss)
        bar.set_postfix(loss=f"{loss_v:.3f}")
        st.report("dual", step + 1, config.dual_steps, loss_v)
        if stop():
            break
    clip.eval()
    acc = _zero_shot_accuracy(ldm, images[:4096], labels[:4096])
    return {"loss": loss_v, "zero_shot_accuracy": acc}


@torch.no_grad()
def _zero_shot_accuracy(ldm, images: torch.Tensor, labels: torch.Tensor) -> float:
    prompts = [c.caption(0) for c in ldm.world.concepts]
    t = ldm.text_embeds(prompts)
    z = ldm.image_embeds(images)
    return float(((z @ t.T).argmax(1) == labels).float().mean())


def train_vae(ldm, config, images, g, st, stop) -> dict[str, float]:
    """AutoencoderKL: L1 + MSE reconstruction + ``vae.kl_weight`` · KL (1e-6 by default: latents
    stay near-deterministic); from step ``config.vae_freeze_encoder_at`` (if > 0) the encoder is
    frozen and only the decoder trains."""
    vae = ldm.vae.train()
    opt = torch.optim.AdamW(vae.parameters(), lr=config.lr, weight_decay=0.0)
    sched = warmup_cosine(opt, config.vae_steps)
    nxt = batches(images.shape[0], config.vae_batch or min(config.batch, 128), g)
    loss_v = float("nan")
    bar = st.loop("vae", config.vae_steps)
    freeze_at = config.vae_freeze_encoder_at
    for step in bar:
        x = images[nxt()]
        frozen = 0 < freeze_at <= step  # past it only the decoder learns
        with autocast(ldm.device, _small_net_dtype(ldm.device)):
            with torch.set_grad_enabled(not frozen):
                dist = vae.encode(x).latent_dist
            rec = vae.decode(dist.sample()).sample.float()
        kl = dist.kl().mean()
        loss = F.l1_loss(rec, x) + F.mse_loss(rec, x) + ldm.config.vae.kl_weight * kl
        loss_v = _optimize(opt, sched, loss)
        bar.set_postfix(loss=f"{loss_v:.4f}")
        st.report("vae", step + 1, config.vae_steps, loss_v)
        if stop():
            break
    vae.eval()
    with torch.no_grad():
        x = images[:1024]
        rec = vae.decode(vae.encode(x).latent_dist.mean).sample
        mse = float(F.mse_loss(rec, x))
    return {"loss": loss_v, "recon_mse": mse}


def train_judge(ldm, config, images, attrs, g, st, stop) -> dict[str, float]:
    """Judge on real images and on VAE reconstructions (one of each per image, precomputed), so
    generated images, which pass through the decoder, are in distribution for it."""
    judge = ldm.judge.train()
    with torch.no_grad():
        rec = torch.cat(
            [
                ldm.vae.decode(
                    ldm.vae.encode(images[i : i + 512]).latent_dist.sample()
                ).sample.clamp(-1, 1)
                for i in range(0, images.shape[0], 512)
            ]
        )
    pool = torch.cat([images, rec])
    pool_attrs = torch.cat([attrs, attrs])
    opt = torch.optim.AdamW(judge.parameters(), lr=config.lr, weight_decay=0.01)
    sched = warmup_cosine(opt, config.judge_steps)
    nxt = batches(pool.shape[0], min(config.batch, 128), g)
    loss_v = float("nan")
    bar = st.loop("judge", config.judge_steps)
    for step in bar:
        idx = nxt()
        loss = judge.loss(pool[idx], pool_attrs[idx])
        loss_v = _optimize(opt, sched, loss)
        bar.set_postfix(loss=f"{loss_v:.3f}")
        st.report("judge", step + 1, config.judge_steps, loss_v)
        if stop():
            break
    judge.eval()
    held = ldm.world.sample(16, seed=config.seed + 10_000)  # held-out real images
    x = torch.from_numpy(held.images).to(ldm.device)
    table = torch.from_numpy(ldm.world.attribute_ids).to(ldm.device)
    truth = torch.from_numpy(held.labels)
    acc = float((judge_scores(judge, x, table).predicted.cpu() == truth).float().mean())
    with torch.no_grad():
        rec_x = ldm.vae.decode(ldm.vae.encode(x).latent_dist.mean).sample.clamp(-1, 1)
    acc_rec = float((judge_scores(judge, rec_x, table).predicted.cpu() == truth).float().mean())
    return {"loss": loss_v, "heldout_accuracy": acc, "heldout_recon_accuracy": acc_rec}


def train_unet(ldm, config, images, captions, g, st, stop) -> dict[str, Any]:
    """DDPM ε-prediction: L = E‖ε − ε_θ(√ᾱ_t z_0 + √(1−ᾱ_t) ε, t, c)‖², on frozen latents z_0 and
    frozen text states c (precomputed: the encoders never change here); c = ∅ with prob. p_drop."""
    dev = ldm.device
    ckpt = st.ckpt
    # Latent statistics: SD scales latents to unit variance; we measure the factor on our data.
    with torch.no_grad():
        ldm.vae.register_to_config(scaling_factor=1.0)
        mu, sd = [], []
        for i in range(0, images.shape[0], 512):
            d = ldm.vae.encode(images[i : i + 512]).latent_dist
            mu.append(d.mean)
            sd.append(d.std)
        mean, std = torch.cat(mu), torch.cat(sd)
        scale = float(1.0 / mean.std())
        ldm.vae.register_to_config(scaling_factor=scale)
        uniq = sorted(set(captions))
        cap_idx = torch.tensor([uniq.index(c) for c in captions], device=dev)
        ctx_table = torch.cat(
            [ldm.encode_prompts(uniq, check=False), ldm.encode_prompts([""], check=False)]
        )
    empty = len(uniq)
    unet = ldm.unet.train()
    nb = min(config.batch, 32, int(mean.shape[0]))
    probe = unet_step_probe(unet, mean[:nb] * scale, ctx_table[:1].expand(nb, -1, -1))
    dtype = compute_dtype(dev, config.precision, probe, probe_key(unet, nb))
    ema = clone_for_ema(unet)
    opt = torch.optim.AdamW(unet.parameters(), lr=config.unet_lr, weight_decay=0.0)
    sched = warmup_cosine(opt, config.unet_steps)
    start = 0
    state_path = ckpt / "unet_state.json"
    if state_path.exists():  # resume mid-stage
        start = json.loads(state_path.read_text())["step"]
        unet.load_state_dict(load_file(str(ckpt / "unet.safetensors")))
        ema.load_state_dict(load_file(str(ckpt / "unet_ema.safetensors")))
        opt.load_state_dict(torch.load(ckpt / "unet_opt.pt", weights_only=True))
        sched.load_state_dict(torch.load(ckpt / "unet_sched.pt", weights_only=True))
        g.manual_seed(config.seed + start)
    nxt = batches(images.shape[0], config.batch, g)
    T = ldm.scheduler.config.num_train_timesteps
    loss_v, t_start = float("nan"), None
    bar = st.loop("unet", config.unet_steps, start)
    import time

    for step in bar:
        if step == start + 5:
            t_start = time.time()
        idx = nxt()
        z0 = mean[idx] + std[idx] * torch.randn(mean[idx].shape, generator=g).to(dev)
        z0 = z0 * scale
        eps = torch.randn(z0.shape, generator=g).to(dev)
        t = torch.randint(0, T, (z0.shape[0],), generator=g).to(dev)
        ci = torch.where(
            torch.rand(z0.shape[0], generator=g).to(dev) < config.cfg_dropout, empty, cap_idx[idx]
        )
        cond = {"encoder_hidden_states": ctx_table[ci]}
        loss = training_loss(unet, ldm.scheduler, z0, t, eps, cond, autocast(dev, dtype))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        sched.step()
        ema_update(ema, unet, min(config.ema_decay, (1 + step) / (10 + step)))
        loss_v = lr_ok(loss.item())
        bar.set_postfix(loss=f"{loss_v:.4f}")
        st.report("unet", step + 1, config.unet_steps, loss_v)
        last = step + 1 == config.unet_steps
        if (step + 1) % config.checkpoint_every == 0 or last or stop():
            _checkpoint_unet(ckpt, unet, ema, opt, sched, step + 1)
        if stop():
            break
    done = config.unet_steps - start
    ips = (done - 5) * config.batch / (time.time() - t_start) if t_start and done > 6 else None
    ldm.unet.load_state_dict(ema.state_dict())
    ldm.unet.eval()
    return {
        "loss": loss_v,
        "latent_scale": scale,
        "images_per_second": None if ips is None else round(ips, 1),
    }


def _checkpoint_unet(ckpt, unet, ema, opt, sched, step: int) -> None:
    def tensors(path: Path, state: dict[str, torch.Tensor]) -> None:
        save_file(state, str(path))

    for name, m in (("unet", unet), ("unet_ema", ema)):
        state = {k: v.detach().cpu().contiguous() for k, v in m.state_dict().items()}
        atomic_write_with(ckpt / f"{name}.safetensors", partial(tensors, state=state))
    for name, obj in (("unet_opt.pt", opt), ("unet_sched.pt", sched)):
        atomic_write_with(ckpt / name, partial(torch.save, obj.state_dict()))
    atomic_write_json(ckpt / "unet_state.json", {"step": step})
