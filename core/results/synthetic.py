"""A synthetic result pack in the exact sweep format (core/results/schema.py), for tests and
development: made-up numbers with the right shapes, so the explorer can be exercised without a
model. Built from the concept world and :mod:`core.metrics` alone (no torch, no sweep code)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from core.io import atomic_save_npz, atomic_write_json
from core.metrics import alignment_difficulty
from core.results.aggregate import summarize
from core.results.schema import (
    CONCEPTS,
    EMBEDDINGS,
    GENERATIONS,
    IMAGES,
    LEVELS,
    RESULTS,
    TEXT_CONCEPT,
    TRAINING,
    level_array_key,
)
from core.world import World, WorldConfig


def write_synthetic_demo_pack(
    dir: Path | str,
    n_concepts: int = 32,
    levels: tuple[int, ...] = (0, 1, 2, 4, 8, 16, 24, 32),
    seed: int = 0,
    seeds: tuple[int, ...] = (0, 1, 2),
    n_per_concept: int = 12,
    dim: int = 32,
    samples: int = 4,
) -> Path:
    """Write a synthetic pack in the exact sweep format (for tests and development).

    Embeddings: concept vectors are sums of attribute-word vectors (so related concepts are close);
    poisoned concepts get dirty-label pairs (caption i, image of target i); generated embeddings
    drift toward targets and collapse toward the mean as C_P grows (implosion). Images are world
    renders blended toward the target and toward grey noise the same way.
    """
    root = Path(dir)
    root.mkdir(parents=True, exist_ok=True)
    world = World(WorldConfig(n_concepts=n_concepts))
    k = world.n_concepts
    rng = np.random.default_rng(seed)
    levels = tuple(sorted({int(c) for c in levels if 0 <= c <= k}))
    word_vecs = rng.normal(size=(3, 8, dim))
    attrs = world.attribute_ids
    base = sum(word_vecs[a, attrs[:, a]] for a in range(3))
    t_concept = _unit(base + 0.3 * rng.normal(size=(k, dim)))
    v_concept = _unit(base + 0.5 * rng.normal(size=(k, dim)))
    order = [int(i) for i in rng.permutation(k)]
    targets = {}
    for i in order:
        choices = [j for j in range(k) if j != i]
        targets[i] = int(choices[int(rng.integers(len(choices)))])
    arrays: dict[str, np.ndarray] = {
        CONCEPTS: np.array(world.names),
        LEVELS: np.array(levels, dtype=np.int64),
        TEXT_CONCEPT: t_concept.astype(np.float16),
    }
    records: list[dict[str, Any]] = []
    clean = world.sample(samples, seed=seed)
    clean_img = _to_uint8(clean.images).reshape(k, samples, *clean.images.shape[2:], 3)
    gens: dict[str, np.ndarray] = {LEVELS: np.array(levels, dtype=np.int64)}
    mean_v = _unit(v_concept.mean(0, keepdims=True))
    for c in levels:
        pois = order[:c]
        cap = np.repeat(np.arange(k), n_per_concept)
        img = cap.copy()
        for i in pois:
            cap = np.concatenate([cap, np.full(n_per_concept, i)])
            img = np.concatenate([img, np.full(n_per_concept, targets[i])])
        flag = np.arange(cap.size) >= k * n_per_concept
        r = np.random.default_rng([seed, c])
        x = _unit(v_concept[img] + 0.35 * r.normal(size=(img.size, dim)))
        y = _unit(t_concept[cap] + 0.25 * r.normal(size=(cap.size, dim)))
        frac = c / k
        gen = v_concept.copy()
        for i in pois:
            gen[i] = 0.4 * v_concept[i] + 0.6 * v_concept[targets[i]]
        gen = _unit(
            gen * (1 - 0.8 * frac) + 0.8 * frac * mean_v + 0.25 * frac * r.normal(size=gen.shape)
        )
        level: dict[str, np.ndarray] = {
            "image": x.astype(np.float16),
            "text": y.astype(np.float16),
            "caption_concept": cap.astype(np.int64),
            "image_concept": img.astype(np.int64),
            "poisoned": flag,
            "generated": gen.astype(np.float16),
        }
        arrays |= {level_array_key(name, c): a for name, a in level.items()}
        gens[level_array_key(IMAGES, c)] = _degrade(clean_img, pois, targets, frac, r)
        ad = alignment_difficulty(x, y, alpha=0.8, scale=None, device="cpu", precision="float64")
        for s in seeds:
            j = np.random.default_rng([seed, c, s]).normal(0, 0.01, size=8)
            unp = max(0.0, 0.88 - 0.7 * frac**2 + j[0])
            records.append(
                {
                    "c_p": c,
                    "seed": s,
                    "ad": ad.ad + j[1] * 0.3,
                    "ad_feature": ad.d_fea + j[2] * 0.3,
                    "ad_structure": ad.d_stru + j[3] * 0.3,
                    "acc_unpoisoned": unp if c < k else None,
                    "acc_poisoned": max(0.0, 0.95 - 0.6 * frac + j[4]) if c else None,
                    "attack_success": max(0.0, 0.05 + 0.1 * frac + j[5]) if c else None,
                    "alignment_unpoisoned": (0.3 - 0.15 * frac + j[6]) if c < k else None,
                    "incoherence": 0.1 + 0.7 * frac**1.5 + abs(j[7]),
                    "acc_related": max(0.0, unp - 0.1 * frac) if 0 < c < k else None,
                    "acc_unrelated": unp if 0 < c < k else None,
                    "finetune_seconds": 30.0 + r.uniform(0, 5),
                }
            )
    config = {
        "preset": "synthetic",
        "concepts": world.names,
        "poison_order": order,
        "targets": {str(i): targets[i] for i in order},
        "seeds": list(seeds),
        "levels": list(levels),
    }
    results = {"config": config, "records": records, "summary": summarize(records)}
    training = {
        str(c): {
            "step": list(range(0, 401, 50)),
            "loss": [float(0.2 + 0.1 * np.exp(-s / 100) + 0.05 * c / k) for s in range(0, 401, 50)],
            "probe": {
                "step": list(range(0, 401, 50)),
                "ad": [float(0.3 + 0.3 * (c / k) * s / 400) for s in range(0, 401, 50)],
                "acc_unpoisoned": [
                    float(0.95 - 0.4 * (c / k) * s / 400) for s in range(0, 401, 50)
                ],
            },
        }
        for c in levels
    }
    atomic_save_npz(root / EMBEDDINGS, arrays, compressed=True)
    atomic_save_npz(root / GENERATIONS, gens, compressed=True)
    atomic_write_json(root / TRAINING, training)
    atomic_write_json(root / RESULTS, results)  # last: marks a complete pack
    return root


def _unit(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=-1, keepdims=True).clip(1e-12)


def _to_uint8(images: np.ndarray) -> np.ndarray:
    """(N, 3, S, S) in [-1, 1] → (N, S, S, 3) uint8."""
    return ((images.transpose(0, 2, 3, 1) + 1) * 127.5).round().clip(0, 255).astype(np.uint8)


def _degrade(
    clean: np.ndarray, pois: list[int], targets: dict[int, int], frac: float, r: np.random.Generator
) -> np.ndarray:
    """Synthetic generations: poisoned concepts blend toward their target; everything blurs
    toward colours and shapes never seen in training as C_P grows."""
    out: np.ndarray = clean.astype(np.float64)
    for i in pois:
        out[i] = 0.35 * out[i] + 0.65 * clean[targets[i]]
    hue = np.array([200.0, 110.0, 40.0], dtype=np.float32)  # an "undefined" orange-brown
    out = (1 - 0.7 * frac) * out + 0.7 * frac * (hue + 40 * r.normal(size=out.shape))
    return out.clip(0, 255).astype(np.uint8)
