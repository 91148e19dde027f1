"""Training pairs with ground truth for the detectors: from a pack, or rebuilt Nightshade-style.

A sweep records, per level, every training pair's (or a random subsample's) image and text
embedding in the dual encoder's joint space, the concept its caption names, the concept its image
shows and whether it is poisoned (core/sweep/mini/runner.py → ``embeddings.npz``). That is the
dirty-label evaluation set. The Nightshade-style set keeps the level's clean pairs and replaces the
dirty-label pairs by as many Nightshade poisons (core.poison.builders: images of the caption's own
concept perturbed so the VAE sees the target) built with the pack's model and world; their
embeddings are cached in the pack (``defense_nightshade_eps{E}_steps{S}.npz``, never overwritten).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.defend.config import METHODS
from core.defend.reconstruction import (
    RECON_KEYS,
    Unavailable,
    cache_scores,
    check_cache,
    level_scores,
)
from core.io import atomic_save_npz, default_base
from core.results.pack import Pack


@dataclass(frozen=True)
class Pairs:
    """n training pairs: image, text (n, d) float32; caption_concept, image_concept (n,) int64;
    poisoned (n,) bool (ground truth)."""

    image: np.ndarray
    text: np.ndarray
    caption_concept: np.ndarray
    image_concept: np.ndarray
    poisoned: np.ndarray

    def __len__(self) -> int:
        return int(self.poisoned.shape[0])


def dirty_label_pairs(pack: Pack, c_p: int) -> Pairs:
    """The pairs the sweep recorded at level ``c_p`` (dirty-label poison, as trained on)."""
    a = pack.level_arrays(c_p)
    return Pairs(
        a["image"].astype(np.float32),
        a["text"].astype(np.float32),
        a["caption_concept"].astype(np.int64),
        a["image_concept"].astype(np.int64),
        a["poisoned"].astype(bool),
    )


def nightshade_file(pack: Pack, epsilon: float, steps: int) -> Path:
    return pack.root / f"defense_nightshade_eps{round(epsilon * 255)}_steps{steps}.npz"


def _model_dir(pack: Pack) -> Path:
    return Path(pack.config["model"]) if pack.config.get("model") else default_base()


def build_nightshade_cache(
    pack: Pack,
    epsilon: float = 16 / 255,
    steps: int = 60,
    device: str = "cpu",
) -> Path:
    """Build Nightshade-style poisons for every concept the pack ever poisons and store their
    embeddings in the pack (skipped if the file exists). Cost: PGD over
    ``poison_ratio · n_clean_per_concept`` images per concept (≈ 0.5 s per image on 2 loaded CPU
    cores at 60 steps). The cache also holds the reconstruction detector's scores of the poisons
    and of a clean reference set (core.defend.reconstruction.cache_scores)."""
    path = nightshade_file(pack, epsilon, steps)
    if path.is_file():
        return path
    import torch

    from core.models.ldm import MiniLDM
    from core.poison.builders import budget_count, build_poison
    from core.poison.plan import PoisonConfig

    ldm = MiniLDM.from_pretrained(_model_dir(pack), device)
    if ldm.world.names != pack.concepts:
        raise ValueError(
            f"model: {_model_dir(pack)} has concepts {ldm.world.names[:3]}… but the pack has "
            f"{pack.concepts[:3]}…; set the pack's config.model to the model it was made with"
        )
    cfg = pack.config
    concepts = tuple(pack.poisoned_at(max(pack.levels)))
    if not concepts:
        raise ValueError(
            "pack: no level poisons any concept; nothing to build Nightshade poisons for"
        )
    n_p = budget_count(float(cfg.get("poison_ratio", 1.0)), int(cfg.get("n_clean_per_concept", 32)))
    targets = tuple((a, pack.targets[a]) for a in concepts)
    ps = build_poison(
        ldm.world,
        PoisonConfig(concepts, "nightshade", targets, n_p, epsilon=epsilon, steps=steps),
        n_p,
        vae=ldm.vae,
        device=device,
    )
    with torch.no_grad():
        image = ldm.image_embeds(torch.from_numpy(ps.images).to(device)).cpu().numpy()
        uniq = sorted(set(ps.captions))
        t_u = ldm.text_embeds(uniq).cpu().numpy()
    text = t_u[[uniq.index(c) for c in ps.captions]]
    recon = cache_scores(ldm.vae, ldm.world, ps.images, ps.caption_concept, pack.targets)
    atomic_save_npz(
        path,
        {
            "image": image.astype(np.float16),
            "text": text.astype(np.float16),
            "caption_concept": ps.caption_concept,
            "target_concept": np.array([pack.targets[int(a)] for a in ps.caption_concept]),
            "report": np.array([f"{k}={v:.6g}" for k, v in ps.report.items()]),
            **recon,
        },
    )
    return path


def nightshade_pairs(pack: Pack, c_p: int, epsilon: float = 16 / 255, steps: int = 60) -> Pairs:
    """Level ``c_p``'s clean pairs plus Nightshade-style poisons of its poisoned concepts, as many
    as the level's recorded dirty-label pairs (a random subset when the pack subsampled)."""
    path = nightshade_file(pack, epsilon, steps)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path.name} is not in {pack.root}: build it first with "
            f"`implosion defend --pack {pack.root} --methods nightshade` (or build_nightshade_cache)"
        )
    dl = dirty_label_pairs(pack, c_p)
    ns = _read_nightshade(pack, path)
    rows = _level_rows(ns, pack, c_p, int(dl.poisoned.sum()))
    clean = ~dl.poisoned
    k = rows.size
    return Pairs(
        np.concatenate([dl.image[clean], ns["image"][rows].astype(np.float32)]),
        np.concatenate([dl.text[clean], ns["text"][rows].astype(np.float32)]),
        np.concatenate([dl.caption_concept[clean], ns["caption_concept"][rows]]),
        np.concatenate([dl.image_concept[clean], ns["caption_concept"][rows]]),
        np.r_[np.zeros(int(clean.sum()), bool), np.ones(k, bool)],
    )


def _level_rows(ns: dict[str, np.ndarray], pack: Pack, c_p: int, want: int) -> np.ndarray:
    """Cache rows of level ``c_p``'s poisoned concepts, at most ``want`` (a fixed random subset)."""
    rows = np.flatnonzero(np.isin(ns["caption_concept"], pack.poisoned_at(c_p)))
    if rows.size > want:
        rows = np.sort(np.random.default_rng([c_p, 31]).choice(rows, want, replace=False))
    return rows


def reconstruction_level(
    pack: Pack, c_p: int, method: str, epsilon: float = 16 / 255, steps: int = 60
) -> tuple[np.ndarray, np.ndarray]:
    """(scores, truth) of the reconstruction detector at level ``c_p`` for ``method``, read from
    the Nightshade cache (core.defend.reconstruction.level_scores; the Nightshade poisons are the
    same rows :func:`nightshade_pairs` uses). :class:`Unavailable` (a ValueError) with the reason
    when the cache is missing or predates the detector."""
    path = nightshade_file(pack, epsilon, steps)
    if not path.is_file():
        raise Unavailable(
            f"it scores pixels with the pack's VAE, stored when the Nightshade cache is built, and "
            f"{path.name} is not in {pack.root}: run `implosion defend --pack {pack.root} "
            "--methods dirty-label nightshade`"
        )
    ns = _read_nightshade(pack, path)
    reason = ns.pop("_recon_unavailable", None)
    if reason is not None:
        raise Unavailable(str(reason))
    rows = None
    if method == "nightshade":
        rows = _level_rows(ns, pack, c_p, int(dirty_label_pairs(pack, c_p).poisoned.sum()))
    return level_scores(ns, pack.poisoned_at(c_p), pack.targets, method, rows)


def _read_nightshade(pack: Pack, path: Path) -> dict[str, Any]:
    """image / text (n, d) and caption_concept (n,) of a stored Nightshade cache, read like any
    pack file (core.results.validate): no pickle, headers before allocation, ids within K. The
    reconstruction scores (``recon_*``) are read when present; when absent,
    ``_recon_unavailable`` says why."""
    from core.results.validate import BrokenPack, read_npz

    keys = ("image", "text", "caption_concept")
    ns = read_npz(path.parent, path.name, keys=(*keys, *RECON_KEYS).__contains__)
    n = ns["caption_concept"].shape[0] if "caption_concept" in ns else -1
    k = len(pack.concepts)
    ok = (
        all(key in ns for key in keys)
        and ns["caption_concept"].ndim == 1
        and ns["caption_concept"].dtype.kind in "iu"
        and all(
            ns[a].ndim == 2 and ns[a].shape[0] == n and ns[a].dtype.kind == "f" for a in keys[:2]
        )
    )
    if not ok or (
        n and not 0 <= int(ns["caption_concept"].min()) <= int(ns["caption_concept"].max()) < k
    ):
        raise BrokenPack(
            f"{path.name} is not a Nightshade cache of this pack (image, text (n, d), "
            f"caption_concept (n,) ids in [0, {k - 1}]); remove it to rebuild",
            path.parent,
        )
    try:
        reason = check_cache(ns, n, k)
    except ValueError as e:
        raise BrokenPack(
            f"{path.name}: reconstruction scores are malformed ({e}); remove it to rebuild",
            path.parent,
        ) from None
    out: dict[str, Any] = dict(ns)
    if reason is not None:
        out["_recon_unavailable"] = reason
    return out


def level_pairs(pack: Pack, c_p: int, method: str, **nightshade: Any) -> Pairs:
    """Pairs of level ``c_p`` for ``method`` ("dirty-label" or "nightshade")."""
    if method == "dirty-label":
        return dirty_label_pairs(pack, c_p)
    if method == "nightshade":
        return nightshade_pairs(pack, c_p, **nightshade)
    raise ValueError(f"method: unknown {method!r}; choose one of {list(METHODS)}")
