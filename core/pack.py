"""Copy a finished sweep folder into a compact demo pack (what ``assets/demo/`` ships).

A pack is the sweep's ``results.json``, ``embeddings.npz``, ``generations.npz``,
``training.json`` and the PNG grids of the seed the pack files were assembled from
(core/sweep_level.py ``assemble``); the per-level ``levels/*.npz`` stay behind. Each file is
copied atomically, and the copy is loaded back with core.demo.load_pack before returning.
"""

from __future__ import annotations

import json
from pathlib import Path

from core.demo import load_pack
from core.io import atomic_write_bytes, ensure_writable_dir

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
    results = json.loads((sweep_dir / "results.json").read_text())
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
