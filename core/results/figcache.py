"""Figures of a pack that do not depend on user input, computed once and kept on disk.

The graph layout (one PCA fitted on every level) is the slow part of the first picture: well under
a second on an idle machine, tens of seconds on a loaded one. It depends only on the pack, so it is
computed once, by :func:`warm` when a pack is written or on the first view, and read back from
``<runs>/.figcache/<pack id>/<version>/`` by every later session and server.

- ``<pack id>``: a hash of the pack folder's resolved path (packs in git, such as the demo, stay
  untouched: nothing is written inside a pack).
- ``<version>``: modification time (ns) and size of ``results.json`` and ``embeddings.npz``, so a
  re-written pack gets a new folder and nothing saved is ever overwritten.
- ``positions-<method>.npz``: the arrays of :func:`core.figures.graph.graph_positions`, flat keys
  ``text_concept``, ``image_concept``, ``generated_<c>``, ``pairs_<c>_{image,text,index}``.

UMAP stays lazy: it is cached the same way, but only when a user asks for it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from core.io import atomic_save_npz, runs_dir
from core.results.pack import EMBEDDINGS, RESULTS, Pack, load_pack

CACHE_DIR = ".figcache"
PRECOMPUTED_METHODS: tuple[str, ...] = ("pca",)  # what warm() computes; UMAP only on request


def pack_version(root: Path) -> str:
    """``<mtime_ns>-<size>`` of results.json and embeddings.npz: changes whenever the pack does."""
    parts = []
    for name in (RESULTS, EMBEDDINGS):
        try:
            st = (Path(root) / name).stat()
            parts.append(f"{st.st_mtime_ns}-{st.st_size}")
        except OSError:
            parts.append("0-0")
    return "_".join(parts)


def cache_folder(root: Path) -> Path:
    """Where the cached figures of the pack at ``root`` (this version of it) live."""
    pack_id = hashlib.sha1(str(Path(root).resolve()).encode()).hexdigest()[:16]
    return runs_dir() / CACHE_DIR / pack_id / pack_version(root)


def _flatten(pos: dict[str, Any]) -> dict[str, np.ndarray]:
    out = {"text_concept": pos["text_concept"], "image_concept": pos["image_concept"]}
    for c, g in pos["generated"].items():
        out[f"generated_{int(c)}"] = g
    for c, p in pos["pairs"].items():
        for key in ("image", "text", "index"):
            out[f"pairs_{int(c)}_{key}"] = p[key]
    return out


def _unflatten(z: dict[str, np.ndarray]) -> dict[str, Any]:
    pos: dict[str, Any] = {
        "text_concept": z["text_concept"],
        "image_concept": z["image_concept"],
        "generated": {},
        "pairs": {},
    }
    for key, a in z.items():
        if key.startswith("generated_"):
            pos["generated"][int(key.split("_")[1])] = a
        elif key.startswith("pairs_"):
            _, c, what = key.split("_", 2)
            pos["pairs"].setdefault(int(c), {})[what] = a
    pos["generated"] = dict(sorted(pos["generated"].items()))
    pos["pairs"] = dict(sorted(pos["pairs"].items()))
    return pos


def compute_positions(pack: Pack, method: str = "pca") -> dict[str, Any]:
    """The graph layout of every saved level of ``pack`` (no cache). ValueError if none is."""
    from core.figures.graph import graph_positions

    levels = {}
    for c in pack.levels:  # a pack still filling in has only its saved levels
        try:
            levels[c] = pack.level_arrays(c)
        except ValueError:
            continue
    if not levels:
        raise ValueError(f"no C_P level of {pack.root} has embeddings yet; wait for the first one")
    return graph_positions(pack.embeddings()["text_concept"], levels, method=method)


def cached_positions(
    pack: Pack, method: str = "pca", compute: Callable[[Pack, str], dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Graph positions of ``pack`` from the disk cache, computing and saving them on a miss.

    A cache folder that cannot be written (read-only runs dir) only costs the recomputation.
    """
    method = method.lower()
    path = cache_folder(pack.root) / f"positions-{method}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                return _unflatten({k: z[k] for k in z.files})
        except (OSError, ValueError, KeyError):
            pass  # a torn or foreign file: recompute; the atomic writer never leaves one
    pos = (compute or compute_positions)(pack, method)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():  # another session may have written it meanwhile: keep theirs
            atomic_save_npz(path, _flatten(pos))
    except OSError:
        pass
    return pos


def is_cached(pack: Pack, method: str = "pca") -> bool:
    """Whether the positions for ``method`` are on disk already (the first view will be fast)."""
    return (cache_folder(pack.root) / f"positions-{method.lower()}.npz").is_file()


def warm(folder: Path, methods: tuple[str, ...] = PRECOMPUTED_METHODS) -> list[Path]:
    """Compute and save the input-independent figures of the pack in ``folder``; returns the
    cache files. Call it after writing a pack (a sweep's last level) so its first view is instant;
    packs without embeddings yet are skipped (nothing to lay out)."""
    pack = load_pack(Path(folder))
    if not (pack.root / EMBEDDINGS).is_file():
        return []
    out = []
    for m in methods:
        cached_positions(pack, m)
        out.append(cache_folder(pack.root) / f"positions-{m}.npz")
    return out


__all__ = [
    "cache_folder",
    "cached_positions",
    "compute_positions",
    "is_cached",
    "pack_version",
    "warm",
]
