"""Figures of a pack that do not depend on user input, computed once and kept on disk.

The graph layout (one PCA fitted on every level) is the slow part of the first picture: well under
a second on an idle machine, tens of seconds on a loaded one. It depends only on the pack, so it is
computed once, by :func:`warm` when a pack is written or on the first view, and read back from
``<runs>/.figcache/<pack id>/<version>/`` by every later session and server.

- ``<version>``: a SHA-1 of the contents of ``results.json`` and ``embeddings.npz``: the layout
  depends on nothing else, so a re-written pack gets a new folder (nothing saved is ever
  overwritten), and the same pack anywhere (a fresh checkout) finds the same entry. Nothing is
  written inside a pack.
- ``positions-<method>.npz``: the arrays of :func:`core.figures.graph.graph_positions`, flat keys
  ``text_concept``, ``image_concept``, ``generated_<c>``, ``pairs_<c>_{image,text,index}``.

The shipped demo's entry is committed under ``<assets>/figcache/<version>/`` (read-only, looked up
first), so even a cold server draws the demo's graph without computing it; after rebuilding the
demo pack, refresh it with ``python -m core.results.figcache assets/demo --ship``.
UMAP stays lazy: it is cached the same way, but only when a user asks for it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from core.io import assets_dir, atomic_save_npz, runs_dir
from core.results.pack import EMBEDDINGS, RESULTS, Pack, load_pack
from core.results.schema import TEXT_CONCEPT

CACHE_DIR = ".figcache"
SHIPPED_DIR = "figcache"  # under the assets folder: committed entries (the demo's)
PRECOMPUTED_METHODS: tuple[str, ...] = ("pca",)  # what warm() computes; UMAP only on request
_VERSIONS: dict[tuple, str] = {}  # (path, mtime_ns, size, …) → content hash: hash each file once


def pack_version(root: Path) -> str:
    """SHA-1 (16 hex) of the contents of results.json and embeddings.npz (memoised per file
    modification time and size, so a page asking twice reads nothing twice)."""
    stats = []
    for name in (RESULTS, EMBEDDINGS):
        try:
            st = (Path(root) / name).stat()
            stats.append((str(Path(root) / name), st.st_mtime_ns, st.st_size))
        except OSError:
            stats.append((str(Path(root) / name), 0, 0))
    key = tuple(stats)
    if key not in _VERSIONS:
        h = hashlib.sha1()
        for path, _, size in stats:
            h.update(Path(path).read_bytes() if size else b"-")
        _VERSIONS[key] = h.hexdigest()[:16]
    return _VERSIONS[key]


def cache_folder(root: Path) -> Path:
    """Where the cached figures of the pack at ``root`` (this version of it) are written."""
    return runs_dir() / CACHE_DIR / pack_version(root)


def _cached_file(root: Path, method: str) -> Path | None:
    """The cache file for ``method``: the shipped one if committed, else the runs-dir one."""
    name = f"positions-{method.lower()}.npz"
    for folder in (assets_dir() / SHIPPED_DIR / pack_version(root), cache_folder(root)):
        if (folder / name).is_file():
            return folder / name
    return None


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
    return graph_positions(pack.embeddings()[TEXT_CONCEPT], levels, method=method)


def cached_positions(
    pack: Pack, method: str = "pca", compute: Callable[[Pack, str], dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Graph positions of ``pack`` from the disk cache, computing and saving them on a miss.

    A cache folder that cannot be written (read-only runs dir) only costs the recomputation.
    """
    method = method.lower()
    path = cache_folder(pack.root) / f"positions-{method}.npz"
    found = _cached_file(pack.root, method)
    if found is not None:
        try:
            with np.load(found, allow_pickle=False) as z:
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
    return _cached_file(pack.root, method) is not None


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
        found = _cached_file(pack.root, m)
        if found is not None:
            out.append(found)
    return out


def ship(folder: Path) -> Path:
    """Copy the PCA layout of the pack in ``folder`` into ``<assets>/figcache/<version>/`` (for
    the committed demo pack); returns the file. Computes it first if needed."""
    pack = load_pack(Path(folder))
    dest = assets_dir() / SHIPPED_DIR / pack_version(pack.root) / "positions-pca.npz"
    if not dest.is_file():
        atomic_save_npz(dest, _flatten(cached_positions(pack, "pca")))
    return dest


def main(argv: list[str] | None = None) -> int:
    """``python -m core.results.figcache PACK [--ship]``: warm (or ship) a pack's layout."""
    import argparse

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("pack", type=Path, help="a pack folder, e.g. assets/demo")
    ap.add_argument("--ship", action="store_true", help="write it under <assets>/figcache")
    a = ap.parse_args(argv)
    print(ship(a.pack) if a.ship else "\n".join(map(str, warm(a.pack))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = [
    "cache_folder",
    "cached_positions",
    "compute_positions",
    "is_cached",
    "pack_version",
    "ship",
    "warm",
]
