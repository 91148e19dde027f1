"""Reconstruction-inconsistency detector (IMPRESS-style): a poison is an image the VAE does not
reproduce consistently.

A Nightshade-style poison x_A + δ is built so that the VAE encoder E maps it near another concept's
latent. The decoder D then draws something that is not quite x, and encoding that drawing again
lands elsewhere: the image is not a fixed point of the autoencoder. The score is the relative
latent cycle inconsistency

    r(x) = ‖E(D(E(x))) − E(x)‖₂ / ‖E(x)‖₂        (E = encoder mean, D = decoder)

higher = more suspicious. It needs pixels and the model's VAE, so it is computed when the
Nightshade cache is built (core.defend.pairs.build_nightshade_cache), for the poisons and for an
equal-size reference set of clean images of the same concepts (and of their targets) rendered from
the pack's world with the fixed held-out seed :data:`CLEAN_SEED`; the report reads the stored
scores. Of the variants measured on the shipped 32-px base (4 concepts × 32 poisons, ε 16/255,
60 PGD steps; the reconstruction section of bench/results/defend.md, by bench/defend.py), the
latent cycle separated best (AUC 0.98–1.00 over C_P 1–4), ahead of the pixel reconstruction error
‖D(E(x)) − x‖² (0.86–1.00, recall at 1 % FPR 0.03–1.00) and of the latent's movement under
Gaussian pixel noise of 4/255 (0.63–0.79), so the score is the latent cycle alone.

Dirty-label poisons are clean images of another concept, so the detector has nothing to see there:
their rows compare clean images of the targets with clean images of the poisoned concepts (even
and odd rows of the reference set, so no image is on both sides). Any AUC away from ½ there is
how much less consistently the VAE reproduces some concepts than others, not poison (measured
0.62–0.78 over 4 concepts: with so few, concept differences do not average out).

A cache written before these scores existed has no ``recon_*`` arrays: the detector is then
:class:`Unavailable` with the reason, and the other detectors are unaffected.
"""

from __future__ import annotations

from typing import Any

import numpy as np

RECON = "reconstruction"
# Seed of the clean reference images (the world's own sample seeds are small integers; the sweep
# and the poison builders draw from other streams).
CLEAN_SEED = 918_273
# Arrays a Nightshade cache holds for this detector.
RECON_KEYS = ("recon_score", "recon_clean_score", "recon_clean_concept")


class Unavailable(ValueError):
    """The detector cannot be scored on this pack; ``str(e)`` says why and how to fix it."""


def reconstruction_scores(vae: Any, images: np.ndarray, batch: int = 256) -> np.ndarray:
    """r(x) (n,) float32 for images (n, 3, S, S) in [-1, 1] (see the module docstring)."""
    import torch

    x_all = np.asarray(images, dtype=np.float32)
    if x_all.ndim != 4 or x_all.shape[0] < 1:
        raise ValueError(f"images: expected (n, 3, S, S) with n ≥ 1, got {x_all.shape}")
    device = next(vae.parameters()).device
    out = []
    with torch.no_grad():
        for i in range(0, x_all.shape[0], batch):
            x = torch.from_numpy(x_all[i : i + batch]).to(device)
            z = vae.encode(x).latent_dist.mean
            x_rec = vae.decode(z).sample.clamp(-1, 1)
            z2 = vae.encode(x_rec).latent_dist.mean
            num = (z2 - z).flatten(1).norm(dim=1)
            out.append((num / z.flatten(1).norm(dim=1).clamp_min(1e-8)).cpu())
    return torch.cat(out).numpy().astype(np.float32)


def clean_reference(
    world: Any, concepts: Any, per_concept: int, seed: int = CLEAN_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """(images (m, 3, S, S), concept ids (m,) int64): ``per_concept`` clean images of each concept,
    rendered from ``world`` with the held-out ``seed``."""
    ids = sorted({int(c) for c in concepts})
    d = world.sample(per_concept, seed=seed, concepts=ids)
    return d.images, np.asarray(d.labels, dtype=np.int64)


def cache_scores(
    vae: Any, world: Any, poisons: np.ndarray, poison_concept: np.ndarray, targets: dict[int, int]
) -> dict[str, np.ndarray]:
    """The ``recon_*`` arrays a Nightshade cache stores: the poisons' scores, and the scores of a
    clean reference set of the poisoned concepts and their targets, as many per concept as there
    are poisons per concept."""
    cc = np.asarray(poison_concept, dtype=np.int64)
    per = int(np.bincount(cc).max())
    ref = set(cc.tolist()) | {int(targets[int(a)]) for a in set(cc.tolist())}
    images, labels = clean_reference(world, ref, per)
    return {
        "recon_score": reconstruction_scores(vae, poisons),
        "recon_clean_score": reconstruction_scores(vae, images),
        "recon_clean_concept": labels,
    }


def check_cache(ns: dict[str, np.ndarray], n: int, k: int) -> str | None:
    """None if ``ns`` holds valid ``recon_*`` arrays for n poisons and K concepts; else the reason
    the detector is unavailable (absent arrays) — malformed ones raise ValueError."""
    present = [key for key in RECON_KEYS if key in ns]
    if not present:
        return (
            "this pack's Nightshade cache was built before the reconstruction detector existed "
            "(it holds embeddings only, no VAE scores); remove the "
            "defense_nightshade_*.npz file and run `implosion defend --pack P --methods "
            "dirty-label nightshade` to rebuild it with them"
        )
    if len(present) != len(RECON_KEYS):
        raise ValueError(f"has {present} but not all of {list(RECON_KEYS)}")
    s, cs, cc = (ns[key] for key in RECON_KEYS)
    ok = (
        s.shape == (n,)
        and s.dtype.kind == "f"
        and cs.ndim == 1
        and cs.dtype.kind == "f"
        and cc.shape == cs.shape
        and cc.dtype.kind in "iu"
        and bool(np.isfinite(s).all() and np.isfinite(cs).all())
        and (cc.size == 0 or 0 <= int(cc.min()) <= int(cc.max()) < k)
    )
    if not ok:
        raise ValueError(
            f"recon_score must be ({n},) finite floats, recon_clean_score/recon_clean_concept "
            f"(m,) finite floats / ids in [0, {k - 1}]"
        )
    return None


def level_scores(
    ns: dict[str, np.ndarray],
    poisoned: Any,
    targets: dict[int, int],
    method: str,
    rows: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(scores, truth) of one level whose poisoned concepts are ``poisoned``, from a cache ``ns``
    checked by :func:`check_cache`.

    nightshade: the poisons of those concepts (``rows`` of the cache, default all of them)
    against the clean reference images of the same concepts. dirty-label: clean reference images
    of their targets (even rows per concept) against those of the concepts themselves (odd rows).
    Unavailable when the level has no poison or no clean image to compare."""
    cs, cc = ns["recon_clean_score"].astype(np.float64), ns["recon_clean_concept"]
    pset = [int(a) for a in poisoned]
    # position of each reference row within its concept (even → dirty-label poison side)
    pos = np.zeros(cc.shape[0], dtype=np.int64)
    for c in np.unique(cc):
        m = cc == c
        pos[m] = np.arange(int(m.sum()))
    if method == "nightshade":
        if rows is None:
            rows = np.flatnonzero(np.isin(ns["caption_concept"], pset))
        pos_s = ns["recon_score"][rows].astype(np.float64)
        neg_s = cs[np.isin(cc, pset)]
    elif method == "dirty-label":
        tgt = [int(targets[a]) for a in pset if a in targets]
        pos_s = np.concatenate([cs[(cc == b) & (pos % 2 == 0)] for b in tgt] or [np.empty(0)])
        neg_s = cs[np.isin(cc, pset) & (pos % 2 == 1)]
    else:
        raise ValueError(f"method: unknown {method!r}; choose dirty-label or nightshade")
    if pos_s.size == 0 or neg_s.size == 0:
        raise Unavailable(
            f"the Nightshade cache has no {'poison' if pos_s.size == 0 else 'clean'} "
            f"reconstruction scores for concepts {pset[:4]}…; rebuild it for this pack"
        )
    return np.r_[pos_s, neg_s], np.r_[np.ones(pos_s.size, bool), np.zeros(neg_s.size, bool)]
