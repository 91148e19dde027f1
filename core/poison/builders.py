"""Poison builders: dirty-label and Nightshade-style, with exact ground truth of what is poisoned.

A training set here is a list of (image, caption) pairs. Each builder returns a
:class:`PoisonedSet`: the poison pairs plus, for every pair, the concept its caption names
(``caption_concept``) and the concept its image shows (``image_concept``). For dirty-label pairs
these differ; for Nightshade-style pairs the image *looks* like the caption's concept but its VAE
latent has been pushed towards the target's.

* dirty-label (Nightshade paper §4): caption of concept A on an image of target B.
* Nightshade-style: x_A + δ, ‖δ‖∞ ≤ ε, minimising ‖E(x_A + δ) − E(x_B)‖² (E = VAE encoder mean)
  by projected sign-gradient descent; reported with its L∞ size, SSIM to the original and the
  latent distance reached.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from core.poison.plan import PoisonConfig, choose_targets
from core.world import World


@dataclass
class PoisonedSet:
    """Poison pairs. images: (P, 3, S, S) float32 [-1, 1]; captions: P strings;
    caption_concept / image_concept: (P,) int64; targets: {A: B}; report: sizes and distances."""

    images: np.ndarray
    captions: list[str]
    caption_concept: np.ndarray
    image_concept: np.ndarray
    targets: dict[int, int]
    method: str
    substitute: dict[int, int] = field(default_factory=dict)  # A → clean pairs to drop
    report: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.captions)


def budget_count(budget: int | float, n_clean: int) -> int:
    """Poison pairs per concept: a count, or round(ratio · n_clean) (at least 1)."""
    if isinstance(budget, int):
        return budget
    return max(1, round(budget * n_clean))


def build_poison(
    world: World,
    config: PoisonConfig,
    n_clean_per_concept: int,
    vae: Any = None,
    device: str | torch.device = "cpu",
    anchor_images: Callable[[int, int], np.ndarray] | None = None,
) -> PoisonedSet:
    """Build the poison pairs for ``config`` (fresh images drawn from the world with its seed).

    Nightshade anchors (the images whose VAE latents the perturbation chases) are natural images
    of the target B by default; ``anchor_images(b, n) -> (n, 3, S, S)`` overrides them, e.g. the
    model's own generations for B's prompt, as the Nightshade paper does."""
    config.validate(world)
    targets = (
        choose_targets(world, config.concepts, config.targets, config.seed)
        if isinstance(config.targets, str)
        else {a: b for a, b in config.targets if a in config.concepts}
    )
    n_p = budget_count(config.budget, n_clean_per_concept)
    rng = np.random.default_rng([config.seed, 7])
    caps, cap_c, img_c, imgs = [], [], [], []
    report: dict[str, float] = {"pairs_per_concept": n_p}
    for a in config.concepts:
        b = targets[a]
        shown = a if config.method == "nightshade" else b
        d = world.sample(n_p, seed=int(rng.integers(1 << 30)), concepts=[shown])
        imgs.append(d.images)
        caps += [world.concepts[a].caption(int(t)) for t in rng.integers(0, 5, n_p)]
        cap_c += [a] * n_p
        img_c += [b if config.method == "dirty-label" else a] * n_p
    images = np.concatenate(imgs)
    if config.method == "nightshade":
        if vae is None:
            raise ValueError("nightshade poisoning needs the model's VAE (pass vae=ldm.vae)")
        anchors = np.concatenate(
            [
                anchor_images(targets[a], n_p)
                if anchor_images is not None
                else world.sample(
                    n_p, seed=int(rng.integers(1 << 30)), concepts=[targets[a]]
                ).images
                for a in config.concepts
            ]
        )
        images, report2 = nightshade_perturb(
            vae, images, anchors, config.epsilon, config.steps, device
        )
        report.update(report2)
    sub = {a: n_p for a in config.concepts} if config.mode == "substitute" else {}
    return PoisonedSet(
        images.astype(np.float32),
        caps,
        np.asarray(cap_c, dtype=np.int64),
        np.asarray(img_c, dtype=np.int64),
        targets,
        config.method,
        sub,
        report,
    )


def nightshade_perturb(
    vae: Any,
    images: np.ndarray,
    anchors: np.ndarray,
    epsilon: float,
    steps: int,
    device: str | torch.device = "cpu",
    batch: int = 256,
) -> tuple[np.ndarray, dict[str, float]]:
    """PGD: min_δ ‖E(x + δ) − E(x_anchor)‖², ‖δ‖∞ ≤ ε, x + δ ∈ [-1, 1]. Returns perturbed images
    (N, 3, S, S) and a report (mean L∞, mean SSIM, latent distance before/after, relative)."""
    outs, d0s, d1s = [], [], []
    step_size = 2.5 * epsilon / steps
    for i in range(0, images.shape[0], batch):
        x = torch.from_numpy(images[i : i + batch]).to(device)
        with torch.no_grad():
            z_t = vae.encode(torch.from_numpy(anchors[i : i + batch]).to(device)).latent_dist.mean
            d0s.append((vae.encode(x).latent_dist.mean - z_t).flatten(1).norm(dim=1))
        delta = torch.zeros_like(x, requires_grad=True)
        for _ in range(steps):
            z = vae.encode((x + delta).clamp(-1, 1)).latent_dist.mean
            loss = (z - z_t).pow(2).sum()
            (grad,) = torch.autograd.grad(loss, delta)
            with torch.no_grad():
                delta -= step_size * grad.sign()
                delta.clamp_(-epsilon, epsilon)
                delta.copy_((x + delta).clamp(-1, 1) - x)
        xp = (x + delta).detach().clamp(-1, 1)
        with torch.no_grad():
            d1s.append((vae.encode(xp).latent_dist.mean - z_t).flatten(1).norm(dim=1))
        outs.append(xp.cpu())
    out = torch.cat(outs)
    x_all = torch.from_numpy(images)
    d0, d1 = torch.cat(d0s), torch.cat(d1s)
    return out.numpy(), {
        "linf": float((out - x_all).abs().flatten(1).max(1).values.mean()),
        "epsilon": float(epsilon),
        "ssim": float(ssim(out, x_all).mean()),
        "latent_distance_before": float(d0.mean()),
        "latent_distance_after": float(d1.mean()),
        "latent_distance_reduction": float(1 - (d1 / d0.clamp_min(1e-8)).mean()),
    }


def ssim(x: torch.Tensor, y: torch.Tensor, window: int = 7) -> torch.Tensor:
    """Mean SSIM per image (N,), images in [-1, 1] mapped to [0, 1]; uniform window, C1/C2 as in
    Wang et al. 2004 (K1 = 0.01, K2 = 0.03, L = 1)."""
    x, y = (x.float() + 1) / 2, (y.float() + 1) / 2
    c1, c2 = 0.01**2, 0.03**2
    k = torch.ones(x.shape[1], 1, window, window) / window**2

    def f(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, k, groups=x.shape[1])

    mx, my = f(x), f(y)
    vx, vy, cxy = f(x * x) - mx**2, f(y * y) - my**2, f(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1)
