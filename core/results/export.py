"""Run bundles: one zip with a run's (or pack's) config, results and image grids."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from core.results.schema import GENERATIONS, GRIDS_DIR, RESULTS, TRAINING

MAX_BUNDLE_FILE = 256 * 2**20  # one file in a bundle (logs included)
BUNDLE_FILES: tuple[str, ...] = (
    "config.json",
    "status.json",
    "progress.json",
    "result.json",
    RESULTS,
    TRAINING,
    "metrics.jsonl",
    "log.txt",
)


def _png(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def bundle_run(folder: Path | str, max_samples: int = 64) -> bytes:
    """Zip ``folder`` (a run directory or pack folder) for download or sharing.

    Includes the JSON/text files in :data:`BUNDLE_FILES` (wherever found: the folder or its pack
    sub-folder), up to ``max_samples`` PNGs from ``samples/``, and, when ``generations.npz``
    exists, one PNG grid per C_P labelled with the level, each row's concept (and whether it is
    poisoned at that level) and what the columns are; before it exists, the per-level grids
    saved so far. Weights are left out.
    Files are read like any pack file (core.results.validate): a link is never followed, so a
    bundle made to be shared cannot carry a local file; a pack that fails validation is
    :class:`~core.results.validate.BrokenPack`.
    """
    from core.results.pack import find_pack_dir, load_pack
    from core.results.validate import check_folder, exists, read_file

    root = Path(folder)
    if root.name in ("sweep", "pack", "out", "results") and (root.parent / "config.json").is_file():
        root = root.parent  # a sweep's pack folder inside its run directory: bundle the run
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder; pick an existing run or pack")
    pack_dir = find_pack_dir(root)
    pack = load_pack(pack_dir) if pack_dir is not None else None
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for base in dict.fromkeys([root, *([pack_dir] if pack_dir else [])]):
            prefix = "" if base == root else f"{base.relative_to(root)}/"
            for name in BUNDLE_FILES:
                if exists(base, name):
                    z.writestr(f"{prefix}{name}", read_file(base, name, MAX_BUNDLE_FILE))
        samples = [n for n in check_folder(root, "samples") if n.endswith(".png")]
        for name in samples[-max_samples:]:
            z.writestr(f"samples/{name}", read_file(root, f"samples/{name}", MAX_BUNDLE_FILE))
        if pack is not None and exists(pack.root, GENERATIONS):
            # One labelled grid per C_P (the pack's generations at fixed seeds); the sweep's
            # per-level grids show the same generations and are left out.
            for c, images in sorted(pack.generations().items()):
                z.writestr(
                    f"{GRIDS_DIR}/generations_cp{int(c):03d}.png", _png(_labelled(pack, c, images))
                )
        elif pack is not None:  # not finished yet: the per-level grids saved so far
            for name in check_folder(pack.root, GRIDS_DIR):
                if name.endswith(".png"):
                    rel = f"{GRIDS_DIR}/{name}"
                    z.writestr(rel, read_file(pack.root, rel, MAX_BUNDLE_FILE))
    return buf.getvalue()


def _labelled(pack: Any, c_p: int, images: np.ndarray) -> np.ndarray:
    """The C_P grid with its title and row labels (the shown seed's poisoned set)."""
    from core.figures.export import labelled_grid

    try:
        poisoned = set(pack.groups(int(c_p))["poisoned"])
    except ValueError:
        poisoned = set()
    seed = getattr(pack, "shown_seed", 0)
    rows = [f"{n}{'  (poisoned)' if i in poisoned else ''}" for i, n in enumerate(pack.concepts)]
    title = f"C_P = {int(c_p)}: generations per concept (poisoned: seed {seed}'s plan)"
    return labelled_grid(images, rows, title, "samples, same seeds at every C_P")
