"""Copy a finished sweep folder into a compact demo pack (what ``assets/demo/`` ships).

A pack is the sweep's ``results.json``, ``embeddings.npz``, ``generations.npz``,
``training.json`` and the PNG grids of the seed the pack files were assembled from
(core/sweep/level.py ``assemble``); the per-level ``levels/*.npz`` stay behind. Each file is
copied atomically, and the copy is loaded back with core.results.pack.load_pack before returning.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from core.io import (
    atomic_save_npz,
    atomic_write_bytes,
    atomic_write_json,
    ensure_writable_dir,
    read_json_file,
)
from core.results.pack import EMBEDDINGS, GENERATIONS, TRAINING, load_pack

PACK_FILES = ("results.json", "embeddings.npz", "generations.npz", "training.json")


def write_pack(sweep_dir: Path, out: Path, note: str | None = None) -> dict[str, int]:
    """Copy the pack files of ``sweep_dir`` into ``out``; returns {relative path: bytes}."""
    sweep_dir = Path(sweep_dir)
    missing = [f for f in PACK_FILES if not (sweep_dir / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"sweep_dir: {sweep_dir} lacks {missing}; let the sweep finish (or resume it with "
            f"the same `implosion sweep` command) before packing"
        )
    results = read_json_file(
        sweep_dir / "results.json", "sweep_dir", "resume the sweep with the same command first"
    )
    if not results.get("complete", True):
        raise ValueError(f"sweep_dir: {sweep_dir} holds an unfinished sweep; resume it first")
    seed = results["config"]["seeds"][0]
    out = ensure_writable_dir(Path(out), "out")
    (out / "grids").mkdir(exist_ok=True)
    sizes: dict[str, int] = {}
    names = [*PACK_FILES, *(f"grids/cp{c}_seed{seed}.png" for c in results["config"]["levels"])]
    for rel in names:
        data = (sweep_dir / rel).read_bytes()
        atomic_write_bytes(out / rel, data)
        sizes[rel] = len(data)
    if note:
        atomic_write_bytes(out / "README.md", note.encode())
    load_pack(out)  # fails loudly if the copy is not a readable pack
    return sizes


def write_pack_files(
    out: Path, levels: tuple[int, ...], seed: int, concepts: list[str], text_concept: np.ndarray
) -> None:
    """``embeddings.npz`` / ``generations.npz`` / ``training.json`` from the per-level files
    ``levels/cp{c}_seed{seed}.npz`` (keys image, text, caption_concept, image_concept, poisoned,
    generated, images, loss, optional probe_step / probe_ad / probe_acc_unpoisoned). ``text_concept``: (K, d) embeddings of the concept prompts."""
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
        probes = {
            k[len("probe_") :]: level.pop(k).tolist() for k in list(level) if k.startswith("probe_")
        }
        emb.update({f"{name}_{c}": a for name, a in level.items()})
        training[str(c)] = {"step": list(range(1, len(loss) + 1)), "loss": loss}
        if probes:  # {"step", "ad", "acc_unpoisoned"} at the probe steps (core/sweep/level.py)
            training[str(c)]["probe"] = probes
    atomic_save_npz(out / EMBEDDINGS, emb, compressed=True)
    atomic_save_npz(out / GENERATIONS, gens, compressed=True)
    atomic_write_json(out / TRAINING, training)
