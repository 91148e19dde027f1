"""The one image loader and the one folder rule for every dataset path.

Every reader of an image/caption folder (``implosion ad --dataset`` through
:mod:`core.metrics.folder`, the real-data loader :mod:`core.data.captioned`) uses:

* :func:`walk_folder` — the folder rule: recursive, sub-folders in sorted order, files sorted by
  name, hidden files and folders (``.name``) and symlinked folders skipped; an image pairs with the
  same-stem ``.txt`` in its own folder (UTF-8). Everything that is not a usable pair is yielded
  with the reason, never dropped silently.
* :func:`to_rgb` — pixel rule: RGB; alpha composited over white; 16-bit and 32-bit integer
  grayscale scaled by the bit depth (``I;16``: v/65535, so a 16-bit PNG keeps its brightness
  instead of clipping to near-white); float images in [0, 1] scaled by 255.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

IMAGE_EXTS: tuple[str, ...] = (
    ".png",
    ".jpg",
    ".jpeg",
    ".webp",
    ".bmp",
    ".gif",
    ".tif",
    ".tiff",
)

# What walk_folder reports besides pairs (reason keys shared with DataReport).
SKIP_REASONS = (
    "not_an_image",
    "caption_without_image",
    "image_without_caption",
    "empty_caption",
    "unreadable_caption",
    "duplicate",
)


class FolderEntry(NamedTuple):
    """``kind`` is ``"pair"`` (``caption`` set) or one of :data:`SKIP_REASONS` (``detail`` why)."""

    kind: str
    path: Path
    caption: str | None = None
    detail: str = ""


def is_image_name(name: str) -> bool:
    """Whether a file name has one of :data:`IMAGE_EXTS` (any case)."""
    return os.path.splitext(name)[1].lower() in IMAGE_EXTS


def walk_folder(root: str | Path) -> Iterator[FolderEntry]:
    """Image/caption pairs of ``root`` and everything skipped, by the one folder rule above.

    Directory by directory (only one listing in memory), deterministic order.
    """
    for dirpath, dirnames, filenames in os.walk(Path(root)):
        d = Path(dirpath)
        # Sorted, not hidden, and never through a symlinked folder (os.walk does not follow).
        dirnames[:] = sorted(n for n in dirnames if not n.startswith("."))
        by_stem: dict[str, list[str]] = {}
        texts: set[str] = set()
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            stem, ext = os.path.splitext(name)
            if ext.lower() in IMAGE_EXTS:
                by_stem.setdefault(stem, []).append(name)
            elif ext.lower() == ".txt":
                texts.add(stem)
            else:
                yield FolderEntry("not_an_image", d / name)
        for stem in sorted(texts - by_stem.keys()):
            yield FolderEntry("caption_without_image", d / f"{stem}.txt")
        for stem, names in sorted(by_stem.items(), key=lambda kv: kv[1][0]):
            for extra in names[1:]:  # dog.png + dog.jpg share dog.txt: ambiguous, keep the first
                yield FolderEntry("duplicate", d / extra, detail=f"same name as {names[0]}")
            image = d / names[0]
            if stem not in texts:
                yield FolderEntry("image_without_caption", image)
                continue
            txt = d / f"{stem}.txt"
            try:
                caption = txt.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as e:
                yield FolderEntry("unreadable_caption", image, detail=f"{txt.name}: {e}")
                continue
            if not caption:
                yield FolderEntry("empty_caption", image, detail=txt.name)
                continue
            yield FolderEntry("pair", image, caption)


def to_rgb(im: Image.Image) -> Image.Image:
    """RGB copy of any PIL image by the one pixel rule (see the module docstring)."""
    mode = im.mode
    if mode == "RGB":
        return im.copy()
    if mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    if im.mode.startswith("I;16") or im.mode in ("I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        if im.mode == "F":
            scale = 255.0 if float(np.nanmax(arr, initial=0.0)) <= 1.0 else 1.0
        elif im.mode == "I" and float(arr.max(initial=0)) <= 255:
            scale = 1.0  # 8-bit values stored as 32-bit ints
        else:
            scale = 255.0 / 65535.0  # 16-bit depth (I;16 or a 16-bit PNG opened as I)
        arr = np.clip(np.nan_to_num(arr * scale), 0, 255).round().astype(np.uint8)
        return Image.fromarray(arr).convert("RGB")
    return im.convert("RGB")


def read_rgb(path: Path, draft_size: int | None = None) -> Image.Image:
    """Decode ``path`` fully and return it as RGB (:func:`to_rgb`).

    ``draft_size``: JPEGs are decoded at a reduced scale no smaller than this (cheap for huge
    photos). Raises what PIL raises for unreadable files (OSError, ValueError…).
    """
    with Image.open(path) as im:
        if draft_size is not None and im.format == "JPEG":
            im.draft("RGB", (draft_size, draft_size))
        im.load()
        return to_rgb(im)
