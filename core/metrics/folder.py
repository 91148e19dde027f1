"""Read a folder of images with same-name ``.txt`` captions and embed them as AD input pairs.

Layout: ``DIR/cat_001.png`` + ``DIR/cat_001.txt`` (UTF-8 caption). The folder rule and the pixel
rule are the real-data loader's (:mod:`core.data.images`): sub-folders are read too, in sorted
order; 16-bit images are scaled by their bit depth. Images without a caption are reported as
``unpaired``; unreadable images or captions (and empty captions, duplicate names) are skipped and
reported in ``skipped`` with the reason, never silently dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:  # PIL and tqdm load only when a folder is embedded (fast `import core.metrics`)
    from PIL import Image


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
    from core.data.images import walk_folder  # the one folder rule of every dataset reader

    images, captions, unpaired, skipped = [], [], [], []
    reasons = {
        "unreadable_caption": "unreadable caption",
        "empty_caption": "empty caption",
        "duplicate": "duplicate name",
    }
    for entry in walk_folder(root):
        if entry.kind == "pair":
            images.append(entry.path)
            captions.append(str(entry.caption))
        elif entry.kind == "image_without_caption":
            unpaired.append(entry.path)
        elif entry.kind in reasons:
            skipped.append((entry.path, f"{reasons[entry.kind]} {entry.detail}".strip()))
    return FolderPairs(images, captions, unpaired, skipped)


def _load_rgb(path: Path) -> Image.Image:
    from core.data.images import read_rgb  # the one pixel rule (16-bit scaled by bit depth)

    return read_rgb(path)


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
