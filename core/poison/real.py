"""Poisoning a real image/caption dataset; the output is a dataset folder of the same format.

* dirty-label: images whose captions mention target B (and not A) get captions of concept A
  (A's own captions from the data, round-robin, else "a photo of a {A}").
* nightshade: images of A keep their captions but are perturbed, ‖δ‖∞ ≤ ε, so the SD VAE encodes
  them near an image of B (:func:`core.poison.builders.nightshade_perturb`); SSIM to the originals
  (:func:`core.poison.builders.ssim`) is reported as the perceptual measure.

Two streamed passes: captions only (choose the images), then pixels in batches.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.data.captioned import (
    DataReport,
    Record,
    iter_batches,
    iter_records,
    keyword_pattern,
    mentions,
    to_uint8_image,
)
from core.io import atomic_write_json, run_metadata
from core.models.sd import RealSD
from core.poison.plan import METHODS


@dataclass(frozen=True)
class RealPoisonConfig:
    """Poison concept A (keywords ``concept``) towards target B (keywords ``target``).

    budget: poison pairs to write; epsilon: L∞ bound in [-1, 1] pixel units; steps: PGD steps;
    resolution: output image size (None: the model's, or 512 for dirty-label without a model).
    """

    concept: tuple[str, ...]
    target: tuple[str, ...]
    method: str = "dirty-label"
    budget: int = 50
    epsilon: float = 8 / 255
    steps: int = 100
    resolution: int | None = None
    batch: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {list(METHODS)}, got {self.method!r}")
        if not self.concept or not self.target:
            raise ValueError("concept and target need at least one keyword each")
        if {k.lower() for k in self.concept} & {k.lower() for k in self.target}:
            raise ValueError("concept and target share a keyword; they must be different concepts")
        if self.budget < 1:
            raise ValueError(f"budget must be ≥ 1, got {self.budget}")
        if not 0 < self.epsilon <= 0.5:
            raise ValueError(
                f"epsilon must be in (0, 0.5] ([-1, 1] pixel units), got {self.epsilon}"
            )
        if self.steps < 1 or self.batch < 1:
            raise ValueError("steps and batch must be ≥ 1")


def select(
    sources: list[str], cfg: RealPoisonConfig, report: DataReport
) -> tuple[list[Record], list[Record], list[str]]:
    """Caption-only pass: up to ``budget`` records of A only, of B only, and A's captions."""
    pa, pb = keyword_pattern(cfg.concept), keyword_pattern(cfg.target)
    only_a: list[Record] = []
    only_b: list[Record] = []
    # Keep a few spares: some selected files may turn out unreadable in the pixel pass.
    want = cfg.budget + max(4, cfg.budget // 4)
    for rec in itertools.chain.from_iterable(iter_records(s, report) for s in sources):
        a, b = mentions(rec.caption, pa), mentions(rec.caption, pb)
        if a and not b and len(only_a) < want:
            only_a.append(rec)
        elif b and not a and len(only_b) < want:
            only_b.append(rec)
    return only_a, only_b, [r.caption for r in only_a]


def poison_dataset(
    sources: list[str], out: Path, cfg: RealPoisonConfig, sd: RealSD | None = None
) -> dict[str, Any]:
    """Write ``budget`` poison pairs (``poison-00000.png`` + ``.txt``) and ``poison_report.json``
    into ``out``. Nightshade needs ``sd`` (its VAE). Returns the report."""
    from core.poison.builders import nightshade_perturb

    if cfg.method == "nightshade" and sd is None:
        raise ValueError("nightshade poisoning needs the model's VAE: pass --model DIR")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = DataReport()
    only_a, only_b, a_captions = select(sources, cfg, report)
    needed = {"dirty-label": ("target", only_b), "nightshade": ("concept", only_a)}
    name, pool = needed[cfg.method]
    if not pool:
        kws = cfg.target if name == "target" else cfg.concept
        raise ValueError(
            f"no captions mention the {name} keywords {list(kws)} (without the other concept); "
            f"check the keywords or the data ({report.records} records read)"
        )
    if cfg.method == "nightshade" and not only_b:
        raise ValueError(
            f"nightshade needs anchor images of the target {list(cfg.target)}: none found"
        )
    res = cfg.resolution or (sd.resolution if sd is not None else 512)
    fallback = f"a photo of a {cfg.concept[0]}"
    n, ssims, linfs, reductions = 0, [], [], []
    anchors = iter_batches(itertools.cycle(only_b), res, cfg.batch, report) if only_b else None
    for imgs, caps, _ in iter_batches(pool, res, cfg.batch, report):
        imgs = imgs[: cfg.budget - n]
        if cfg.method == "dirty-label":
            caps = [
                a_captions[(n + i) % len(a_captions)] if a_captions else fallback
                for i in range(len(imgs))
            ]
        else:
            assert sd is not None and anchors is not None
            anchor = next(anchors)[0]
            anchor = (
                np.resize(anchor, imgs.shape)
                if anchor.shape[0] < imgs.shape[0]
                else anchor[: imgs.shape[0]]
            )
            imgs, r = nightshade_perturb(
                sd.vae, imgs, anchor.astype(np.float32), cfg.epsilon, cfg.steps, sd.device
            )
            ssims.append((r["ssim"], len(imgs)))
            linfs.append((r["linf"], len(imgs)))
            reductions.append((r["latent_distance_reduction"], len(imgs)))
        for x, c in zip(imgs, caps):
            to_uint8_image(x).save(out / f"poison-{n:05d}.png")
            (out / f"poison-{n:05d}.txt").write_text(c + "\n")
            n += 1
        if n >= cfg.budget:
            break
    result: dict[str, Any] = {
        "config": asdict(cfg),
        "poison_pairs": n,
        "requested": cfg.budget,
        "resolution": res,
        "concept_only_images_found": len(only_a),
        "target_only_images_found": len(only_b),
        "caption_source": "data" if a_captions else "template",
        "data": report.to_dict(),
        **run_metadata(cfg.seed),
    }
    if ssims:
        result["ssim"] = _weighted(ssims)
        result["linf"] = _weighted(linfs)
        result["latent_distance_reduction"] = _weighted(reductions)
    atomic_write_json(out / "poison_report.json", result)
    return result


def _weighted(pairs: list[tuple[float, int]]) -> float:
    total = sum(k for _, k in pairs)
    return float(sum(v * k for v, k in pairs) / max(total, 1))
