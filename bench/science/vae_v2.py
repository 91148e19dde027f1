"""The encoder gate for the 64-px textured world: can a bounded pixel change move the latent?

Trains an 8×-compression AutoencoderKL (64 px → 8×8 latent) on textured-world images for a
bounded time (resumable: run the same command again to continue), then measures on held-out
images (a world seed offset the training never drew):

* reconstruction PSNR (dB, pixels in [0, 1]) through the latent mean;
* Nightshade-style PGD (``core.poison.builders.nightshade_perturb``: sign-gradient descent on
  ‖E(x + δ) − E(x_anchor)‖², E = the encoder's latent mean) from each source image toward an
  image of another concept, at L∞ budgets given in 1/255 of the [0, 1] pixel range (the usual
  convention: 16/255 is ε = 32/255 in the model's [-1, 1] units): the share of the latent gap
  closed, 1 − mean(‖E(x+δ) − E(a)‖ / ‖E(x) − E(a)‖), and SSIM to the source.

``--shipped`` runs the same measurement on the shipped base's VAE (32-px flat world) as the
reference. Results are appended to ``--out`` (one row per run, nothing overwritten).

    nice -n 10 python bench/science/vae_v2.py --name base --steps 3000 --minutes 20
    nice -n 10 python bench/science/vae_v2.py --name base --eval-only
    nice -n 10 python bench/science/vae_v2.py --shipped
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

from core.io import atomic_write_json, atomic_write_with, run_metadata  # noqa: E402
from core.models.config import VAEConfig, build_vae  # noqa: E402
from core.poison.builders import nightshade_perturb  # noqa: E402
from core.training.common import batches, warmup_cosine  # noqa: E402
from core.world import World, WorldConfig  # noqa: E402

HELD_OUT_SEED = 90_000  # sample() seed for evaluation images; training uses seed 0


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _state_dict(m: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in m.state_dict().items()}


def patch_discriminator(width: int = 32) -> torch.nn.Module:
    """A small PatchGAN (as in the taming-transformers VAE loss that Stable Diffusion's VAE was
    trained with): one real/fake logit per ~16-px patch."""
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(3, width, 4, 2, 1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(width, 2 * width, 4, 2, 1),
        nn.GroupNorm(8, 2 * width),
        nn.LeakyReLU(0.2),
        nn.Conv2d(2 * width, 4 * width, 4, 1, 1),
        nn.GroupNorm(8, 4 * width),
        nn.LeakyReLU(0.2),
        nn.Conv2d(4 * width, 1, 4, 1, 1),
    )


def train(args: argparse.Namespace, world: World, vae: Any, run: Path) -> dict[str, Any]:
    """Train until ``args.steps`` or ``args.minutes`` of this call; checkpoint into ``run``."""
    data = world.sample(args.n_per_concept, seed=0)
    images = torch.from_numpy(data.images)
    opt = torch.optim.AdamW(vae.parameters(), lr=args.lr, weight_decay=0.0)
    sched = warmup_cosine(opt, args.steps)
    disc = patch_discriminator() if args.gan else None
    d_opt = (
        torch.optim.AdamW(disc.parameters(), lr=args.lr, betas=(0.5, 0.9), weight_decay=0.0)
        if disc is not None
        else None
    )
    state: dict[str, Any] = {"step": 0, "seconds": 0.0, "loss": []}
    if (run / "state.json").exists():
        state = json.loads((run / "state.json").read_text())
        vae.load_state_dict(load_file(str(run / "vae.safetensors")))
        opt.load_state_dict(torch.load(run / "opt.pt", weights_only=True))
        sched.load_state_dict(torch.load(run / "sched.pt", weights_only=True))
        if disc is not None and d_opt is not None and (run / "disc.safetensors").exists():
            disc.load_state_dict(load_file(str(run / "disc.safetensors")))
            d_opt.load_state_dict(torch.load(run / "disc_opt.pt", weights_only=True))
    g = torch.Generator().manual_seed(args.seed + state["step"])
    nxt = batches(images.shape[0], args.batch, g)
    vae.train()
    t0, last_ckpt = time.time(), time.time()

    def checkpoint() -> None:
        state["seconds"] = round(state["seconds"] + time.time() - t_mark[0], 1)
        t_mark[0] = time.time()
        weights = _state_dict(vae)
        atomic_write_with(run / "vae.safetensors", lambda p: save_file(weights, str(p)))
        atomic_write_with(run / "opt.pt", lambda p: torch.save(opt.state_dict(), p))
        atomic_write_with(run / "sched.pt", lambda p: torch.save(sched.state_dict(), p))
        if disc is not None and d_opt is not None:
            d_weights = _state_dict(disc)
            atomic_write_with(run / "disc.safetensors", lambda p: save_file(d_weights, str(p)))
            atomic_write_with(run / "disc_opt.pt", lambda p: torch.save(d_opt.state_dict(), p))
        atomic_write_json(run / "state.json", state)

    t_mark = [t0]
    stop_at = min(args.steps, args.stop_at or args.steps)
    while state["step"] < stop_at and time.time() - t0 < args.minutes * 60:
        x = images[nxt()]
        if args.crop < x.shape[-1]:  # one random crop per batch, on the 8-px latent grid
            oy, ox = 8 * torch.randint(0, (x.shape[-1] - args.crop) // 8 + 1, (2,), generator=g)
            x = x[:, :, oy : oy + args.crop, ox : ox + args.crop]
        frozen = bool(args.freeze_encoder_at) and state["step"] >= args.freeze_encoder_at
        with torch.set_grad_enabled(not frozen):  # past the freeze only the decoder learns
            dist = vae.encode(x).latent_dist
        rec = vae.decode(dist.sample()).sample
        loss = F.l1_loss(rec, x) + F.mse_loss(rec, x) + args.kl * dist.kl().mean()
        if args.grad_loss:
            loss = loss + args.grad_loss * gradient_l1(rec, x)
        gan_on = disc is not None and state["step"] >= args.gan_start
        if gan_on:  # hinge GAN, generator side, with taming's adaptive weight
            g_loss = -disc(rec).mean()
            last = vae.decoder.conv_out.weight
            (g_rec,) = torch.autograd.grad(loss, last, retain_graph=True)
            (g_gan,) = torch.autograd.grad(g_loss, last, retain_graph=True)
            w = (g_rec.norm() / (g_gan.norm() + 1e-4)).clamp(0, 1e4).detach()
            loss = loss + args.gan * w * g_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if gan_on and d_opt is not None:
            d_loss = F.relu(1 - disc(x)).mean() + F.relu(1 + disc(rec.detach())).mean()
            d_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            d_opt.step()
        state["step"] += 1
        if state["step"] % 50 == 0:
            state["loss"].append([state["step"], round(float(loss.detach()), 5), _load()])
            print(
                f"step {state['step']} loss {float(loss.detach()):.4f} load {_load()}", flush=True
            )
        if time.time() - last_ckpt > 120:
            checkpoint()
            last_ckpt = time.time()
    checkpoint()
    vae.eval()
    return state


def gradient_l1(rec: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """L1 between the horizontal and vertical pixel differences of two batches: a loss that
    rewards keeping fine detail (edges, patterns) which L1 + MSE on pixels lets blur."""
    dx = (rec[..., :, 1:] - rec[..., :, :-1]) - (x[..., :, 1:] - x[..., :, :-1])
    dy = (rec[..., 1:, :] - rec[..., :-1, :]) - (x[..., 1:, :] - x[..., :-1, :])
    return dx.abs().mean() + dy.abs().mean()


@torch.no_grad()
def psnr(vae: Any, x: torch.Tensor) -> float:
    """Mean PSNR (dB) of reconstructions through the latent mean, pixels mapped to [0, 1]."""
    rec = torch.cat(
        [
            vae.decode(vae.encode(x[i : i + 64]).latent_dist.mean).sample.clamp(-1, 1)
            for i in range(0, x.shape[0], 64)
        ]
    )
    mse = ((rec - x) / 2).pow(2).flatten(1).mean(1)
    return float((10 * torch.log10(1 / mse.clamp_min(1e-10))).mean())


@torch.no_grad()
def nearest_anchors(
    vae: Any, world: World, src: np.ndarray, tgt_c: np.ndarray, pool: int
) -> np.ndarray:
    """For each source image, the image of its target concept (out of ``pool`` held-out renders)
    whose latent mean is nearest to the source's: the attacker's free choice of anchor."""
    rng = np.random.default_rng([HELD_OUT_SEED, 3])
    z_src = vae.encode(torch.from_numpy(src)).latent_dist.mean.flatten(1)
    out = np.empty_like(src)
    for i, c in enumerate(tgt_c):
        cand = world.render(np.full(pool, c), rng)
        z = vae.encode(torch.from_numpy(cand)).latent_dist.mean.flatten(1)
        out[i] = cand[int((z - z_src[i]).norm(dim=1).argmin())]
    return out


def pgd_gate(
    vae: Any, world: World, n: int, eps255: list[float], steps: int, anchor_pool: int = 1
) -> list[dict[str, Any]]:
    """Held-out source images (n, cycling through the concepts) and, for each, an anchor image of
    a different concept (the first render, or with ``anchor_pool`` > 1 the render of that concept
    nearest in latent space out of that many); PGD at each budget. Rows: budget, gap closed,
    SSIM, seconds, load."""
    rng = np.random.default_rng(HELD_OUT_SEED)
    k = world.n_concepts
    src_c = np.arange(n) % k
    tgt_c = (src_c + rng.integers(1, k, n)) % k
    src = world.render(src_c, np.random.default_rng([HELD_OUT_SEED, 1]))
    if anchor_pool > 1:
        anc = nearest_anchors(vae, world, src, tgt_c, anchor_pool)
    else:
        anc = world.render(tgt_c, np.random.default_rng([HELD_OUT_SEED, 2]))
    rows = []
    for e in eps255:
        t = time.time()
        load = _load()
        _, r = nightshade_perturb(vae, src, anc, 2 * e / 255, steps, batch=64)
        rows.append(
            {
                "eps255": e,
                "epsilon_model_units": round(2 * e / 255, 5),
                "pgd_steps": steps,
                "anchor_pool": anchor_pool,
                "images": n,
                "gap_closed": round(r["latent_distance_reduction"], 4),
                "ssim": round(r["ssim"], 4),
                "linf": round(r["linf"], 4),
                "latent_distance_before": round(r["latent_distance_before"], 4),
                "latent_distance_after": round(r["latent_distance_after"], 4),
                "seconds": round(time.time() - t, 1),
                "load_before": load,
                "load_after": _load(),
            }
        )
        print(
            f"ε {e}/255: gap closed {r['latent_distance_reduction']:.3f}, SSIM {r['ssim']:.3f} "
            f"({time.time() - t:.0f} s, load {load} → {_load()})",
            flush=True,
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", default="base", help="run folder under --root")
    ap.add_argument("--root", type=Path, default=Path("build/science/vae_v2"))
    ap.add_argument("--channels", type=int, nargs="+", default=[16, 32, 64, 64])
    ap.add_argument("--latent", type=int, default=4, help="latent channels")
    ap.add_argument("--layers", type=int, default=1, help="resnet layers per block")
    ap.add_argument("--kl", type=float, default=1e-6, help="KL weight")
    ap.add_argument("--texture", type=float, default=1.0)
    ap.add_argument("--noise", type=float, default=0.02, help="textured world's sensor noise")
    ap.add_argument(
        "--grad-loss",
        type=float,
        default=0.0,
        help="weight of an L1 loss on pixel differences (keeps fine detail; 0 = off)",
    )
    ap.add_argument(
        "--gan",
        type=float,
        default=0.0,
        help="weight of a PatchGAN hinge loss on reconstructions, scaled adaptively as in "
        "taming-transformers (SD's VAE recipe uses 0.5; 0 = off)",
    )
    ap.add_argument("--gan-start", type=int, default=300, help="step the GAN loss starts at")
    ap.add_argument(
        "--freeze-encoder-at",
        type=int,
        default=0,
        help="from this step on only the decoder trains (the encoder keeps the gain it has "
        "then; 0 = never)",
    )
    ap.add_argument("--n-per-concept", type=int, default=250)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument(
        "--crop",
        type=int,
        default=64,
        help="train on random crops of this size (a multiple of 8; the VAE is convolutional, "
        "so a 32-px crop costs a quarter of a full image and the encoder still reads 64 px)",
    )
    ap.add_argument("--steps", type=int, default=3000, help="planned steps (cosine schedule)")
    ap.add_argument("--minutes", type=float, default=20.0, help="training time of this call")
    ap.add_argument(
        "--stop-at",
        type=int,
        default=0,
        help="stop this call at this step (the schedule still plans --steps; 0 = --steps)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eval-only", action="store_true")
    ap.add_argument("--shipped", action="store_true", help="measure the shipped base's VAE")
    ap.add_argument("--model", type=Path, default=None, help="measure this train-base model's VAE")
    ap.add_argument("--pgd-images", type=int, default=32)
    ap.add_argument("--pgd-steps", type=int, default=200)
    ap.add_argument("--eps255", type=float, nargs="+", default=[8, 16])
    ap.add_argument(
        "--anchor-pool",
        type=int,
        default=1,
        help="choose each anchor as the nearest-latent image of its concept out of this many",
    )
    ap.add_argument("--out", type=Path, default=Path("bench/results/world_v2_encoder.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    row: dict[str, Any] = {"load_start": _load()}
    if args.shipped or args.model:
        from core.commands.base import default_base
        from core.models.ldm import MiniLDM

        ldm = MiniLDM.from_pretrained(args.model or default_base())
        world, vae = ldm.world, ldm.vae.eval()
        c = world.config
        row.update(
            name=f"base {args.model}" if args.model else "shipped base",
            world=f"{c.style} {c.image_size} px, texture {c.texture}, noise {c.noise}",
            vae=ldm.config.vae.__dict__,
        )
    else:
        cfg = VAEConfig(
            channels=tuple(args.channels), latent_channels=args.latent, layers_per_block=args.layers
        )
        world = World(
            WorldConfig(image_size=64, style="textured", texture=args.texture, noise=args.noise)
        )
        vae = build_vae(cfg, 64)
        run = args.root / args.name
        run.mkdir(parents=True, exist_ok=True)
        if args.eval_only:
            state = json.loads((run / "state.json").read_text())
            vae.load_state_dict(load_file(str(run / "vae.safetensors")))
            vae.eval()
        else:
            atomic_write_json(run / "args.json", {k: str(v) for k, v in vars(args).items()})
            state = train(args, world, vae, run)
        row.update(
            name=args.name,
            world=f"textured 64 px, texture {args.texture}, noise {args.noise}",
            vae={"channels": args.channels, "latent_channels": args.latent, "layers": args.layers},
            kl_weight=args.kl,
            grad_loss=args.grad_loss,
            gan=args.gan,
            freeze_encoder_at=args.freeze_encoder_at,
            gan_start=args.gan_start,
            train={
                "steps": state["step"],
                "planned_steps": args.steps,
                "batch": args.batch,
                "crop": args.crop,
                "images": args.n_per_concept * world.n_concepts,
                "seconds": state["seconds"],
                "last_loss": state["loss"][-1] if state["loss"] else None,
            },
            parameters=sum(p.numel() for p in vae.parameters()),
        )
    held = torch.from_numpy(world.sample(8, seed=HELD_OUT_SEED).images)
    row["psnr_db"] = round(psnr(vae, held), 2)
    print(f"{row['name']}: held-out PSNR {row['psnr_db']} dB (load {_load()})", flush=True)
    row["pgd"] = pgd_gate(
        vae, world, args.pgd_images, args.eps255, args.pgd_steps, args.anchor_pool
    )
    row["metadata"] = run_metadata(args.seed)
    old = json.loads(args.out.read_text()) if args.out.exists() else {"rows": []}
    old["rows"].append(row)
    atomic_write_json(args.out, old)
    if not math.isfinite(row["psnr_db"]):
        raise SystemExit("PSNR is not finite: the VAE diverged")


if __name__ == "__main__":
    main()
