"""Copy a finished sweep folder into a compact demo pack (what ``assets/demo/`` ships).

A pack is the sweep's ``results.json``, ``embeddings.npz``, ``generations.npz``,
``training.json``, every level's fine-tuned weights (``weights/``, core.results.weights) and the
PNG grids of the seed the pack files were assembled from
(core/sweep/mini/runner.py ``assemble``); the per-level ``levels/*.npz`` stay behind.

The sweep folder is untrusted input (core.results.validate): every file is read once, without
following links, and the bytes read are validated (schema, array headers and index values,
decoded PNGs) before any of them is written; file names come from the validated integer levels
and seed, and every written path is checked to lie inside ``out``. Each file is written
atomically, and the copy is loaded back with core.results.pack.load_pack before returning.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from core.io import atomic_save_npz, atomic_write_bytes, atomic_write_json, ensure_writable_dir
from core.results import schema
from core.results.pack import EMBEDDINGS, GENERATIONS, TRAINING, load_pack
from core.results.schema import (
    DEFENSE,
    GRIDS_DIR,
    PACK_FILES,
    RESULTS,
    SCIENCE,
    WEIGHTS_DIR,
    grid_file,
)
from core.results.validate import (
    MAX_JSON_BYTES,
    MAX_NPZ_BYTES,
    MAX_PNG_BYTES,
    BrokenPack,
    check_embedding_headers,
    check_embeddings,
    check_generation_headers,
    check_generations,
    check_png,
    check_results,
    check_training,
    exists,
    parse_json,
    read_file,
    read_npz,
)
from core.results.weights import MAX_WEIGHTS_BYTES, parse_weights, weights_levels, weights_rel

# What a pack folder may hold at its top level (``--force`` replaces only such a folder).
PACK_ENTRIES: frozenset[str] = frozenset(
    {*PACK_FILES, GRIDS_DIR, WEIGHTS_DIR, "README.md", DEFENSE, SCIENCE}
)


def _check_headers(check: Any, k: int, root: Path, headers: Any) -> None:
    """``check(headers, k, root)``, bound per npz file before its arrays are read."""
    check(headers, k, root)


def check_replaceable_pack(out: Path) -> None:
    """ValueError unless ``out`` is absent, empty, or itself a pack (``results.json`` and only
    pack files: :data:`PACK_ENTRIES`, ``defense_*.npz``): ``sweep-pack --force`` replaces
    nothing else (a sweep folder, a home folder, a link)."""
    out = Path(out)
    if out.is_symlink():
        raise ValueError(f"--out {out}: is a symbolic link; give the pack folder itself")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not exists(out, RESULTS) or not (out / RESULTS).is_file() or (out / RESULTS).is_symlink():
        raise ValueError(
            f"--out {out}: is not a pack (no {RESULTS}); --force replaces only a pack folder: "
            "choose a new or empty folder"
        )
    other = sorted(
        p.name
        for p in out.iterdir()
        if p.name not in PACK_ENTRIES
        and not (p.name.startswith("defense_") and p.name.endswith(".npz"))
    )
    if other:
        raise ValueError(
            f"--out {out}: is not only a pack (it also holds {', '.join(other[:5])}); "
            "--force replaces only a pack folder: choose a new or empty folder"
        )


def _output_path(out: Path, rel: str) -> Path:
    """``out/rel``, proven to lie inside ``out`` (no ``..``, no link on the way)."""
    dest = (Path(out) / rel).resolve()
    base = Path(out).resolve()
    if base not in dest.parents:
        raise ValueError(f"out: {rel!r} would be written outside {out}; refusing")
    return dest


def read_sweep(sweep_dir: Path) -> dict[str, bytes]:
    """The files a pack is made of, read once from ``sweep_dir`` and validated as read:
    relative path → bytes. FileNotFoundError for an unfinished sweep, BrokenPack (ValueError)
    for a crafted or corrupt one."""
    sweep_dir = Path(sweep_dir)
    missing = [f for f in PACK_FILES if not exists(sweep_dir, f)]
    if missing:
        raise FileNotFoundError(
            f"sweep_dir: {sweep_dir} lacks {missing}; let the sweep finish (or resume it with "
            f"the same `implosion sweep` command) before packing"
        )
    files = {rel: read_file(sweep_dir, rel, MAX_JSON_BYTES) for rel in (RESULTS, TRAINING)}
    results = check_results(parse_json(files[RESULTS], RESULTS, sweep_dir), sweep_dir)
    check_training(parse_json(files[TRAINING], TRAINING, sweep_dir), sweep_dir)
    if not results.get("complete", True):
        raise ValueError(f"sweep_dir: {sweep_dir} holds an unfinished sweep; resume it first")
    cfg = results["config"]
    if not cfg.get("seeds") or not cfg.get("levels"):
        raise BrokenPack(f"{RESULTS}: config.seeds and config.levels must not be empty", sweep_dir)
    k = len(cfg["concepts"])
    npz_checks = (
        (EMBEDDINGS, check_embedding_headers, check_embeddings),
        (GENERATIONS, check_generation_headers, check_generations),
    )
    for rel, check_headers, check_arrays in npz_checks:
        files[rel] = read_file(sweep_dir, rel, MAX_NPZ_BYTES)
        arrays = read_npz(
            sweep_dir,
            rel,
            partial(_check_headers, check_headers, k, sweep_dir),
            data=files[rel],
        )
        check_arrays(arrays, k, sweep_dir)
        del arrays
    seed = int(cfg["seeds"][0])
    for c in cfg["levels"]:
        rel = grid_file(Path(), int(c), seed).as_posix()
        files[rel] = read_file(sweep_dir, rel, MAX_PNG_BYTES)
        check_png(files[rel], rel, sweep_dir)
    levels, seeds = {int(c) for c in cfg["levels"]}, {int(s) for s in cfg["seeds"]}
    for c_p, s in weights_levels(sweep_dir):  # every level's weights, each validated
        if c_p in levels and s in seeds:
            rel = weights_rel(c_p, s)
            files[rel] = read_file(sweep_dir, rel, MAX_WEIGHTS_BYTES)
            parse_weights(files[rel], rel, sweep_dir, (c_p, s))
    return files


def write_pack(
    sweep_dir: Path, out: Path, note: str | None = None, files: dict[str, bytes] | None = None
) -> dict[str, int]:
    """Copy the pack files of ``sweep_dir`` into ``out``; returns {relative path: bytes}.

    Everything is read and validated (:func:`read_sweep`, or ``files`` it returned) before the
    first byte is written."""
    files = read_sweep(sweep_dir) if files is None else files
    out = ensure_writable_dir(Path(out), "out")
    (out / GRIDS_DIR).mkdir(exist_ok=True)
    sizes: dict[str, int] = {}
    for rel, data in files.items():
        atomic_write_bytes(_output_path(out, rel), data)
        sizes[rel] = len(data)
    if note:
        atomic_write_bytes(_output_path(out, "README.md"), note.encode())
    load_pack(out)  # fails loudly if the copy is not a readable pack
    return sizes


def write_pack_files(
    out: Path, levels: tuple[int, ...], seed: int, concepts: list[str], text_concept: np.ndarray
) -> None:
    """``embeddings.npz`` / ``generations.npz`` / ``training.json`` from the per-level files
    ``levels/cp{c}_seed{seed}.npz``: every array named in ``schema.LEVEL_ARRAYS`` (and any other
    the runner saved) goes to embeddings.npz as ``{name}_{c}``, ``images`` to generations.npz,
    ``loss`` and the ``probe_*`` arrays to training.json. ``text_concept``: (K, d) embeddings of
    the concept prompts."""
    emb: dict[str, np.ndarray] = {
        schema.CONCEPTS: np.array(concepts),
        schema.LEVELS: np.array(levels),
        schema.TEXT_CONCEPT: np.asarray(text_concept, dtype=np.float16),
    }
    gens: dict[str, np.ndarray] = {schema.LEVELS: np.array(levels)}
    training: dict[str, Any] = {}
    probe = schema.PROBE_PREFIX
    for c in levels:
        with np.load(schema.level_file(out, c, seed), allow_pickle=False) as z:
            level = {name: z[name] for name in z.files}
        loss = level.pop(schema.LOSS).tolist()
        gens[schema.level_array_key(schema.IMAGES, c)] = level.pop(schema.IMAGES)
        probes = {
            k[len(probe) :]: level.pop(k).tolist() for k in list(level) if k.startswith(probe)
        }
        emb.update({schema.level_array_key(name, c): a for name, a in level.items()})
        training[str(c)] = {"step": list(range(1, len(loss) + 1)), "loss": loss}
        if probes:  # {"step", "ad", "acc_unpoisoned"} at the probe steps (mini/runner.py)
            training[str(c)]["probe"] = probes
    atomic_save_npz(out / EMBEDDINGS, emb, compressed=True)
    atomic_save_npz(out / GENERATIONS, gens, compressed=True)
    atomic_write_json(out / TRAINING, training)
