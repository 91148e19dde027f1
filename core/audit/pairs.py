"""What an audit reads: n (image, text) embedding pairs with the concept each caption names.

Sources, each validated here once, before any embedding or AD work:

* an embeddings file (``.npz`` with ``image``, ``text`` (n, d), optional concept ids under
  ``caption_concept`` / ``labels`` / ``--labels KEY``, ``poisoned`` (n,) bool and ``concepts``
  (K,) names). Uncompressed members are memory-mapped, so 10⁶ pairs stream from disk;
* a level of a results pack (the training pairs the sweep recorded, with ground truth);
* a captioned image folder or a ``.jsonl`` / ``.csv`` / ``.parquet`` manifest, through the
  project's readers (core.data.captioned, core.metrics.folder), embedded with a dual encoder.
  An image without a caption, a caption row without an image, or a manifest path that leaves the
  manifest's folder is an error naming the file;
* a planned poisoning (core.audit.plan).

Captions name concepts by keyword (core.data.concepts): the model's concept names when known
(mini world), else the most frequent caption words. A caption naming none or several is concept
-1, "(unlabelled)": it still counts in AD.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

UNLABELLED = "(unlabelled)"
LABEL_KEYS: tuple[str, ...] = ("caption_concept", "labels", "concept")
AUTO_CONCEPTS = 16  # concepts found from caption words when the model's names are unknown


@dataclass(frozen=True)
class AuditPairs:
    """n pairs. image, text: (n, d) float arrays (numpy or np.memmap), row i = pair i; concept:
    (n,) int64 caption concept ids (-1: none); names: K concept names; poisoned: (n,) bool ground
    truth or None; captions / paths: per pair or None; thumbnails: (m, S, S, 3) uint8 with
    thumb_index (n,) int64 into it, or None."""

    image: Any
    text: Any
    concept: np.ndarray
    names: tuple[str, ...]
    source: str
    poisoned: np.ndarray | None = None
    captions: tuple[str, ...] | None = None
    paths: tuple[str, ...] | None = None
    thumbnails: np.ndarray | None = None
    thumb_index: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.image)
        if np.ndim(self.image) != 2 or np.shape(self.text) != np.shape(self.image):
            raise ValueError(
                f"pairs: image and text must be (n, d) arrays of the same shape, got "
                f"{np.shape(self.image)} and {np.shape(self.text)}"
            )
        if n < 2:
            raise ValueError(f"pairs: an audit needs at least 2 pairs, got {n}")
        if np.shape(self.concept) != (n,):
            raise ValueError(f"pairs: concept must have shape ({n},), got {np.shape(self.concept)}")
        if self.poisoned is not None and np.shape(self.poisoned) != (n,):
            raise ValueError(f"pairs: poisoned must have shape ({n},)")
        k = len(self.names)
        if self.concept.size and (self.concept.max() >= k or self.concept.min() < -1):
            raise ValueError(
                f"pairs: concept ids must be in -1..{k - 1} (K={k} names), got "
                f"{int(self.concept.min())}..{int(self.concept.max())}; pass the concept names"
            )

    def __len__(self) -> int:
        return len(self.image)

    def name(self, concept: int) -> str:
        return self.names[concept] if concept >= 0 else UNLABELLED

    def thumbnail(self, i: int) -> np.ndarray | str | None:
        """Pair i's image: a uint8 (S, S, 3) array, a file path, or None."""
        if self.thumbnails is not None and self.thumb_index is not None:
            return self.thumbnails[int(self.thumb_index[i])]
        if self.paths is not None:
            return self.paths[i]
        return None


# ---------------------------------------------------------------------- embeddings files
def _npz_member(path: Path, zf: zipfile.ZipFile, key: str) -> np.ndarray:
    """Member ``key`` of an npz: memory-mapped when stored uncompressed, else read."""
    info = zf.getinfo(f"{key}.npy")
    if info.compress_type == zipfile.ZIP_STORED:
        with open(path, "rb") as f:
            f.seek(info.header_offset)
            local = f.read(30)
            name_len = int.from_bytes(local[26:28], "little")
            extra_len = int.from_bytes(local[28:30], "little")
            start = info.header_offset + 30 + name_len + extra_len
            f.seek(start)
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            if dtype.hasobject:
                raise ValueError(f"--embeddings: array {key!r} holds Python objects; not loaded")
            offset = f.tell()
        return np.memmap(
            path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C"
        )
    with zf.open(info) as fh:
        return np.lib.format.read_array(fh, allow_pickle=False)


def from_embeddings(path: str | Path, labels_key: str | None = None) -> AuditPairs:
    """Pairs of an ``.npz`` embeddings file (see module doc); ValueError naming what is wrong."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"--embeddings: {p} does not exist or is not a file")
    fix = "save it with np.savez(FILE, image=..., text=..., caption_concept=...)"
    try:
        zf = zipfile.ZipFile(p)
    except (zipfile.BadZipFile, OSError) as e:
        raise ValueError(f"--embeddings: {p} is not an .npz archive ({e}); {fix}") from e
    with zf:
        keys = {n[:-4] for n in zf.namelist() if n.endswith(".npy")}
        missing = [k for k in ("image", "text") if k not in keys]
        if missing:
            raise ValueError(
                f"--embeddings: {p.name} has no array(s) {', '.join(missing)}; arrays present: "
                f"{', '.join(sorted(keys)) or 'none'}; {fix}"
            )
        if labels_key is not None and labels_key not in keys:
            raise ValueError(f"--labels: {p.name} has no array {labels_key!r}; has {sorted(keys)}")
        image, text = _npz_member(p, zf, "image"), _npz_member(p, zf, "text")
        key = labels_key or next((k for k in LABEL_KEYS if k in keys), None)
        n = len(image)
        concept = (
            np.asarray(_npz_member(p, zf, key)).astype(np.int64)
            if key
            else np.full(n, -1, np.int64)
        )
        poisoned = (
            np.asarray(_npz_member(p, zf, "poisoned")).astype(bool) if "poisoned" in keys else None
        )
        if "concepts" in keys:
            names = tuple(str(c) for c in np.asarray(_npz_member(p, zf, "concepts")).tolist())
        else:
            k = int(concept.max()) + 1 if concept.size else 0
            names = tuple(f"concept {i}" for i in range(k))
    return AuditPairs(image, text, concept, names, f"embeddings {p}", poisoned=poisoned)


# ---------------------------------------------------------------------- a pack's level
def from_pack(pack_dir: str | Path, c_p: int) -> AuditPairs:
    """The training pairs a sweep recorded at level ``c_p`` (its first seed), with ground truth."""
    from core.results.pack import load_pack

    pack = load_pack(Path(pack_dir))
    if c_p not in pack.levels:
        raise ValueError(f"--level: C_P={c_p} is not a level of {pack.root}; levels: {pack.levels}")
    a = pack.level_arrays(c_p)
    names = tuple(pack.concepts)
    captions = None
    return AuditPairs(
        a["image"],
        a["text"],
        a["caption_concept"].astype(np.int64),
        names,
        f"pack {pack.root} level C_P={c_p} seed {pack.config.get('seeds', [0])[0]}",
        poisoned=a["poisoned"].astype(bool),
        captions=captions,
    )


# ---------------------------------------------------------------------- folders and manifests
def label_captions(
    captions: Sequence[str], names: Sequence[str] | None = None, auto: int = AUTO_CONCEPTS
) -> tuple[np.ndarray, tuple[str, ...]]:
    """(concept ids (n,), names): the concept each caption names alone (else -1), by keyword."""
    from core.data.captioned import Record
    from core.data.concepts import ConceptIndex, frequent_words

    keywords: list[tuple[str, ...]] = (
        [(n,) for n in names] if names else frequent_words(list(captions), auto)
    )
    index = ConceptIndex.build(keywords, [Record(Path(""), c) for c in captions])
    return index.labels.astype(np.int64), tuple(k[0] for k in keywords)


def folder_records(folder: str | Path) -> tuple[list[Path], list[str]]:
    """(image paths, captions) of a captioned folder; ValueError if any image lacks a caption."""
    from core.metrics.folder import find_pairs

    fp = find_pairs(folder)
    if fp.unpaired:
        names = ", ".join(p.name for p in fp.unpaired[:3])
        raise ValueError(
            f"--dataset: {len(fp.unpaired)} image(s) in {folder} have no same-name .txt caption "
            f"({names}{'…' if len(fp.unpaired) > 3 else ''}); add the captions or move them out"
        )
    if fp.skipped:
        path, why = fp.skipped[0]
        raise ValueError(
            f"--dataset: {path.name}: {why}; fix or remove it ({len(fp.skipped)} such)"
        )
    if len(fp.images) < 2:
        raise ValueError(f"--dataset: {folder} has {len(fp.images)} captioned image(s); need ≥ 2")
    return list(fp.images), list(fp.captions)


def manifest_records(
    manifest: str | Path, root: str | Path | None = None
) -> tuple[list[Path], list[str]]:
    """(image paths, captions) of a .jsonl/.csv/.parquet manifest; every image must exist inside
    the manifest's folder (or ``root``, the folder its relative paths start from, for a manifest
    uploaded on its own) and every row must have an image and a caption (ValueError otherwise)."""
    from core.data.captioned import DataReport, iter_records

    m = Path(manifest)
    if not m.is_file():
        raise ValueError(f"--manifest: {m} is not a file; give a .jsonl, .csv or .parquet")
    base = Path(root) if root is not None else m.parent
    if not base.is_dir():
        raise ValueError(f"--manifest: image folder {base} does not exist")
    root = base.resolve()
    report = DataReport()
    paths, captions = [], []
    for rec in iter_records(m, report):
        image = rec.image  # relative paths come joined to the manifest's folder
        if image.is_relative_to(m.parent):
            image = base / image.relative_to(m.parent)
        real = image.resolve()
        if not real.is_relative_to(root):
            raise ValueError(
                f"--manifest: {m.name} points outside its folder ({rec.image}); keep the images "
                f"under {root} and give paths relative to the manifest"
            )
        if not real.is_file():
            raise ValueError(f"--manifest: {m.name} lists {rec.image}, which does not exist")
        paths.append(real)
        captions.append(rec.caption)
    bad = report.skipped_count
    if bad:
        reason, count = next(iter(bad.items()))
        example = report.skipped[reason][0]
        raise ValueError(
            f"--manifest: {count} row(s) of {m.name} are unusable ({reason.replace('_', ' ')}, "
            f"e.g. {example}); give every row an image path and a caption"
        )
    if len(paths) < 2:
        raise ValueError(f"--manifest: {m.name} lists {len(paths)} usable pair(s); need ≥ 2")
    return paths, captions


def embed_records(
    paths: Sequence[Path],
    captions: Sequence[str],
    embedder: Any,
    names: Sequence[str] | None,
    source: str,
    progress: bool = True,
) -> AuditPairs:
    """Embed (image, caption) pairs with ``embedder`` (core.metrics.folder.Embedder) and label
    their captions (``names``: the model's concept names, else frequent caption words)."""
    from core.metrics.folder import FolderPairs, embed_pairs

    emb = embed_pairs(FolderPairs(list(paths), list(captions)), embedder, progress=progress)
    if emb.skipped:
        path, why = emb.skipped[0]
        raise ValueError(f"{source}: {path.name}: {why}; fix or remove it")
    concept, found = label_captions(emb.captions, names)
    return AuditPairs(
        emb.image,
        emb.text,
        concept,
        found,
        source,
        captions=tuple(emb.captions),
        paths=tuple(str(p) for p in emb.paths),
    )
