"""Read a folder of images with same-name ``.txt`` captions and embed them as AD input pairs.

Layout: ``DIR/cat_001.png`` + ``DIR/cat_001.txt`` (UTF-8 caption). Image suffixes: .png .jpg .jpeg
.webp (any case); only the top level of DIR is read, in sorted filename order. Images without a
caption are reported as ``unpaired``; unreadable images or captions (and empty captions) are skipped
and reported in ``skipped`` with the reason, never silently dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:  # PIL and tqdm load only when a folder is embedded (fast `import core.metrics`)
    from PIL import Image

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp")


class Embedder(Protocol):
    """What :func:`core.models.dual.load_embedder` returns (and what tests fake)."""

    def encode_images(self, images: list[Image.Image]) -> np.ndarray: ...

    def encode_texts(self, texts: list[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class FolderPairs:
    """Image paths with their captions (same order), plus what could not be paired."""

    images: list[Path]
    captions: list[str]
    unpaired: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


@dataclass(frozen=True)
class FolderEmbeddings:
    """``image``, ``text``: (n, d) float32 embeddings of the n usable pairs, in ``paths`` order."""

    image: np.ndarray
    text: np.ndarray
    paths: list[Path]
    captions: list[str]
    unpaired: list[Path]
    skipped: list[tuple[Path, str]]


def find_pairs(folder: str | Path) -> FolderPairs:
    """Pair every image in ``folder`` with its same-stem ``.txt`` caption (captions are read here)."""
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"--dataset: {root} is not a directory; pass a folder of images + .txt")
    images, captions, unpaired, skipped = [], [], [], []
    for path in sorted(p for p in root.iterdir() if p.is_file()):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        txt = path.with_suffix(".txt")
        if not txt.is_file():
            unpaired.append(path)
            continue
        try:
            caption = txt.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as e:
            skipped.append((path, f"unreadable caption {txt.name}: {e}"))
            continue
        if not caption:
            skipped.append((path, f"empty caption {txt.name}"))
            continue
        images.append(path)
        captions.append(caption)
    return FolderPairs(images, captions, unpaired, skipped)


def _load_rgb(path: Path) -> Image.Image:
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        return im.convert("RGB")


def _check_batch(out: object, n: int, what: str) -> np.ndarray:
    arr = np.asarray(out, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[0] != n:
        raise ValueError(
            f"embedder: {what} returned shape {arr.shape} for {n} inputs; expected ({n}, d)"
        )
    return arr


def embed_pairs(
    pairs: FolderPairs,
    embedder: Embedder,
    batch_size: int = 32,
    progress: bool = True,
) -> FolderEmbeddings:
    """Embed the pairs batch by batch (images converted to RGB) with a tqdm progress bar.

    Images that PIL cannot decode are skipped (added to ``skipped``) together with their caption.
    """
    from PIL import Image
    from tqdm.auto import tqdm

    if batch_size < 1:
        raise ValueError(f"batch_size: must be ≥ 1, got {batch_size}")
    img_parts: list[np.ndarray] = []
    txt_parts: list[np.ndarray] = []
    paths: list[Path] = []
    captions: list[str] = []
    skipped = list(pairs.skipped)
    todo = list(zip(pairs.images, pairs.captions, strict=True))
    with tqdm(total=len(todo), desc="embedding", unit="img", disable=not progress) as bar:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            ims, caps, ok_paths = [], [], []
            for path, caption in batch:
                try:
                    ims.append(_load_rgb(path))
                except (OSError, ValueError, Image.DecompressionBombError) as e:
                    skipped.append((path, f"unreadable image: {e}"))
                    continue
                caps.append(caption)
                ok_paths.append(path)
            if ims:
                img_parts.append(_check_batch(embedder.encode_images(ims), len(ims), "images"))
                txt_parts.append(_check_batch(embedder.encode_texts(caps), len(caps), "texts"))
                paths.extend(ok_paths)
                captions.extend(caps)
            bar.update(len(batch))
    if not paths:
        raise ValueError(
            f"--dataset: no usable image/caption pairs ({len(pairs.unpaired)} images without a "
            f".txt caption, {len(skipped)} skipped); expected NAME.png next to NAME.txt"
        )
    return FolderEmbeddings(
        np.concatenate(img_parts),
        np.concatenate(txt_parts),
        paths,
        captions,
        list(pairs.unpaired),
        skipped,
    )


def embed_folder(
    folder: str | Path,
    embedder: Embedder,
    batch_size: int = 32,
    progress: bool = True,
) -> FolderEmbeddings:
    """:func:`find_pairs` then :func:`embed_pairs`: (n, d) image and text embeddings of a folder."""
    return embed_pairs(find_pairs(folder), embedder, batch_size, progress)


def summarise_skips(emb: FolderEmbeddings, limit: int = 3) -> Sequence[str]:
    """Human lines about unpaired and skipped files (first ``limit`` of each)."""
    lines = []
    if emb.unpaired:
        names = ", ".join(p.name for p in emb.unpaired[:limit])
        lines.append(f"{len(emb.unpaired)} image(s) without a .txt caption ignored ({names}…)")
    if emb.skipped:
        first = "; ".join(f"{p.name}: {why}" for p, why in emb.skipped[:limit])
        lines.append(f"{len(emb.skipped)} file(s) skipped ({first})")
    return lines
