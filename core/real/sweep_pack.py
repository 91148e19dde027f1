"""Results of the real sweep: one level's metrics from CLIP zero-shot scores, and the demo-pack
files (core/demo.py format) assembled from the per-level arrays."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from core.demo import EMBEDDINGS, GENERATIONS, TRAINING
from core.io import atomic_save_npz, atomic_write_json


def level_record(
    c_p: int,
    seed: int,
    plan: tuple[list[int], dict[int, int]],
    relation: np.ndarray,
    concept: np.ndarray,
    z: dict[str, np.ndarray],
) -> dict[str, Any]:
    """Implosion metrics of one level from CLIP zero-shot scores ``z`` of the generations
    (``pred``, ``cosine`` (N, K), ``incoherence`` (N,)); ``concept`` (N,) is each image's prompt
    concept. Means over concepts; None where a group is empty (e.g. acc_poisoned at C_P = 0)."""
    order, targets = plan
    k = relation.shape[0]
    pois = order[:c_p]
    own = [concept == j for j in range(k)]
    acc = np.array([np.mean(z["pred"][m] == j) for j, m in enumerate(own)])
    align = np.array([np.mean(z["cosine"][m, j]) for j, m in enumerate(own)])
    incoh = np.array([np.mean(z["incoherence"][m]) for m in own])
    unp = [j for j in range(k) if j not in pois]
    related = [j for j in unp if pois and relation[j, pois].any()]
    unrelated = [j for j in unp if pois and j not in related]

    def mean(values: np.ndarray | list[float], ix: list[int] | None = None) -> float | None:
        v = np.asarray(values, dtype=float)[ix] if ix is not None else np.asarray(values)
        return float(v.mean()) if v.size else None

    return {
        "c_p": c_p,
        "seed": seed,
        "acc_unpoisoned": mean(acc, unp),
        "acc_poisoned": mean(acc, pois),
        "attack_success": mean([np.mean(z["pred"][own[a]] == targets[a]) for a in pois]),
        "alignment_unpoisoned": mean(align, unp),
        "incoherence": mean(z["incoherence"]),
        "incoherence_unpoisoned": mean(incoh, unp),
        "acc_related": mean(acc, related),
        "acc_unrelated": mean(acc, unrelated),
        "per_concept_acc": [round(float(v), 4) for v in acc],
    }


def write_pack_files(
    out: Path, levels: tuple[int, ...], seed: int, concepts: list[str], text_concept: np.ndarray
) -> None:
    """``embeddings.npz`` / ``generations.npz`` / ``training.json`` from the per-level files
    ``levels/cp{c}_seed{seed}.npz`` (keys image, text, caption_concept, image_concept, poisoned,
    generated, images, loss). ``text_concept``: (K, d) embeddings of the concept prompts."""
    emb: dict[str, np.ndarray] = {
        "concepts": np.array(concepts),
        "levels": np.array(levels),
        "text_concept": np.asarray(text_concept, dtype=np.float16),
    }
    gens: dict[str, np.ndarray] = {"levels": np.array(levels)}
    training: dict[str, Any] = {}
    for c in levels:
        with np.load(out / "levels" / f"cp{c}_seed{seed}.npz", allow_pickle=False) as z:
            level = {name: z[name] for name in z.files}
        loss = level.pop("loss").tolist()
        gens[f"images_{c}"] = level.pop("images")
        emb.update({f"{name}_{c}": a for name, a in level.items()})
        training[str(c)] = {"step": list(range(1, len(loss) + 1)), "loss": loss}
    atomic_save_npz(out / EMBEDDINGS, emb, compressed=True)
    atomic_save_npz(out / GENERATIONS, gens, compressed=True)
    atomic_write_json(out / TRAINING, training)
