"""Real image/caption datasets, streamed: never more than one batch of pixels in memory.

Sources (:func:`iter_records`):

* a folder of images with same-name ``.txt`` captions (``dog1.jpg`` + ``dog1.txt``), by the one
  folder rule of :func:`core.data.images.walk_folder` (recursive, sorted, UTF-8 captions);
* a ``.csv`` / ``.jsonl`` file with an image-path column and a caption column (paths relative
  to the file's folder), or ``.parquet`` of the same (needs pyarrow).

Unreadable, non-image and caption-less files are skipped and counted in a :class:`DataReport`;
grayscale / palette / CMYK / alpha images are converted to RGB (alpha over white); large images are
decoded at reduced size where the format allows and resized (shorter side, then centre crop).
"""

from __future__ import annotations

import csv
import json
import re
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from core.data.images import IMAGE_EXTS as IMAGE_EXTS  # re-exported: one list of suffixes
from core.data.images import to_rgb as _to_rgb
from core.data.images import walk_folder

IMAGE_KEYS = ("image", "image_path", "file_name", "filename", "file", "path")
CAPTION_KEYS = ("caption", "text", "prompt")
MAX_EXAMPLES = 20  # file names kept per skip reason in the report


@dataclass
class DataReport:
    """Counts of what a pass over a source saw. ``skipped`` maps a reason to example paths."""

    records: int = 0
    loaded: int = 0
    converted: dict[str, int] = field(default_factory=dict)  # original mode → count
    resized: int = 0
    skipped: dict[str, list[str]] = field(default_factory=dict)
    skipped_count: dict[str, int] = field(default_factory=dict)
    duplicates: list[str] = field(default_factory=list)

    def skip(self, reason: str, path: str | Path) -> None:
        """Count one skipped file under ``reason`` (keeps the first few names as examples)."""
        self.skipped_count[reason] = self.skipped_count.get(reason, 0) + 1
        examples = self.skipped.setdefault(reason, [])
        if len(examples) < MAX_EXAMPLES:
            examples.append(str(path))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "records": self.records,
            "loaded": self.loaded,
            "skipped": sum(self.skipped_count.values()),
            "skipped_by_reason": dict(self.skipped_count),
            "skipped_examples": dict(self.skipped),
            "converted_to_rgb": dict(self.converted),
            "resized": self.resized,
            "duplicates": list(self.duplicates[:MAX_EXAMPLES]),
            "duplicate_count": len(self.duplicates),
        }


@dataclass(frozen=True)
class Record:
    """One (image path, caption) pair, not yet decoded."""

    image: Path
    caption: str


# ---------------------------------------------------------------------- records
def iter_records(
    source: str | Path,
    report: DataReport | None = None,
    image_key: str | None = None,
    caption_key: str | None = None,
) -> Iterator[Record]:
    """Stream (image path, caption) records from a folder, CSV, JSONL or parquet file."""
    report = report if report is not None else DataReport()
    src = Path(source).expanduser()
    if not src.exists():
        raise FileNotFoundError(
            f"--data {src}: no such file or folder; pass a folder of images with same-name .txt "
            f"captions, or a .csv/.jsonl/.parquet with image and caption columns"
        )
    if src.is_dir():
        rows: Iterable[Record] = _folder_records(src, report)
    else:
        suffix = src.suffix.lower()
        if suffix == ".csv":
            rows = _table_records(src, _csv_rows(src), report, image_key, caption_key)
        elif suffix in (".jsonl", ".ndjson"):
            rows = _table_records(src, _jsonl_rows(src), report, image_key, caption_key)
        elif suffix == ".parquet":
            rows = _table_records(src, _parquet_rows(src), report, image_key, caption_key)
        else:
            raise ValueError(
                f"--data {src}: unsupported file type {suffix!r}; use a folder, .csv, .jsonl "
                f"or .parquet"
            )
    seen: set[str] = set()
    for rec in rows:
        key = str(rec.image.resolve())
        if key in seen:  # same image listed twice: keep the first pairing
            report.duplicates.append(str(rec.image))
            continue
        seen.add(key)
        report.records += 1
        yield rec


def _folder_records(root: Path, report: DataReport) -> Iterator[Record]:
    """The one folder rule (:func:`core.data.images.walk_folder`): recursive, sorted, reported."""
    for entry in walk_folder(root):
        if entry.kind == "pair":
            yield Record(entry.path, str(entry.caption))
        elif entry.kind == "duplicate":
            report.duplicates.append(str(entry.path))
        else:
            report.skip(entry.kind, entry.path)


def _csv_rows(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        yield from csv.DictReader(f)


def _jsonl_rows(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8", errors="replace") as f:
        for i, line in enumerate(f, 1):
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    row = None
                # valid JSON that is not an object (a list, a string) is a bad row too
                yield row if isinstance(row, dict) else {"__bad_line__": i}


def _parquet_rows(path: Path) -> Iterator[dict[str, Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError as e:
        raise ValueError(
            f"--data {path}: reading parquet needs pyarrow (`pip install pyarrow`); or convert "
            f"the table to .csv/.jsonl"
        ) from e
    import pyarrow as pa

    try:
        table = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as e:
        raise ValueError(
            f"--data {path}: not a readable parquet file ({type(e).__name__}: {str(e)[:120]}); "
            f"check the file, or convert the table to .csv/.jsonl"
        ) from e
    try:
        for batch in table.iter_batches(batch_size=1024):
            yield from batch.to_pylist()
    except (pa.ArrowException, OSError) as e:
        raise ValueError(
            f"--data {path}: parquet file is corrupt ({type(e).__name__}: {str(e)[:120]})"
        ) from e


def _table_records(
    path: Path,
    rows: Iterable[dict[str, Any]],
    report: DataReport,
    image_key: str | None,
    caption_key: str | None,
) -> Iterator[Record]:
    ik = ck = None
    for i, row in enumerate(rows):
        if "__bad_line__" in row:
            report.skip("bad_row", f"{path}:{row['__bad_line__']}")
            continue
        if ik is None:
            ik = _pick_key(row, image_key, IMAGE_KEYS, "image", path)
            ck = _pick_key(row, caption_key, CAPTION_KEYS, "caption", path)
        img, cap = row.get(ik), row.get(ck or "")
        if not img or not isinstance(img, str) or not cap:
            report.skip("missing_image_or_caption", f"{path}:row {i + 1}")
            continue
        p = Path(img).expanduser()
        yield Record(p if p.is_absolute() else path.parent / p, str(cap).strip())


def _pick_key(
    row: dict[str, Any], given: str | None, candidates: tuple[str, ...], what: str, path: Path
) -> str:
    if given is not None:
        if given not in row:
            raise ValueError(f"--data {path}: no column {given!r}; columns are {sorted(row)}")
        return given
    for k in candidates:
        if k in row:
            return k
    raise ValueError(
        f"--data {path}: no {what} column (looked for {list(candidates)}); columns are "
        f"{sorted(row)}; rename the {what} column to one of {list(candidates)}"
    )


# ---------------------------------------------------------------------- pixels
def load_image(path: Path, resolution: int, report: DataReport | None = None) -> np.ndarray | None:
    """Decode one image to (3, R, R) float32 in [-1, 1]: RGB conversion, shorter side resized to
    R, centre crop. Returns None (and counts the reason) if the file cannot be decoded."""
    report = report if report is not None else DataReport()
    try:
        with warnings.catch_warnings():
            # 89–178 MP: decoded (JPEG at reduced scale); above PIL's hard limit: skipped
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                if im.format == "JPEG":  # decode at 1/2..1/8 scale: huge JPEGs stay cheap
                    im.draft("RGB", (resolution, resolution))
                im.load()
                rgb = to_rgb(im, report)
    except FileNotFoundError:
        report.skip("missing_file", path)
        return None
    except Image.DecompressionBombError:
        report.skip("too_many_pixels", path)
        return None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        report.skip("unreadable_image", path)
        return None
    except Exception:  # noqa: BLE001 — broken files in the wild raise struct.error, IndexError…
        report.skip("unreadable_image", path)
        return None
    w, h = rgb.size
    if min(w, h) != resolution:
        if min(w, h) > 2 * resolution:
            report.resized += 1
        s = resolution / min(w, h)
        rgb = rgb.resize(
            (max(resolution, round(w * s)), max(resolution, round(h * s))), Image.Resampling.BICUBIC
        )
    w, h = rgb.size
    left, top = (w - resolution) // 2, (h - resolution) // 2
    rgb = rgb.crop((left, top, left + resolution, top + resolution))
    report.loaded += 1
    arr = np.asarray(rgb, dtype=np.float32).transpose(2, 0, 1)
    return arr / 127.5 - 1


def to_rgb(im: Image.Image, report: DataReport | None = None) -> Image.Image:
    """RGB copy of any PIL image (:func:`core.data.images.to_rgb`), counting conversions."""
    if report is not None and im.mode != "RGB":
        report.converted[im.mode] = report.converted.get(im.mode, 0) + 1
    return _to_rgb(im)


def to_uint8_image(x: np.ndarray) -> Image.Image:
    """(3, R, R) float in [-1, 1] → PIL RGB image."""
    arr = ((np.clip(x, -1, 1) + 1) * 127.5).round().astype(np.uint8).transpose(1, 2, 0)
    return Image.fromarray(arr)


# ---------------------------------------------------------------------- concepts, batches
def keyword_pattern(keywords: Iterable[str]) -> re.Pattern[str]:
    """Case-insensitive whole-word regex for any of ``keywords`` (plural 's' allowed)."""
    words = [k.strip() for k in keywords if k.strip()]
    if not words:
        raise ValueError("concept keywords: empty list; give at least one word, e.g. --concept dog")
    alt = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"\b(?:{alt})(?:s|es)?\b", re.IGNORECASE)


def mentions(caption: str, pattern: re.Pattern[str]) -> bool:
    """Whether ``caption`` names the concept of ``pattern``."""
    return pattern.search(caption) is not None


def iter_batches(
    records: Iterable[Record], resolution: int, batch: int, report: DataReport | None = None
) -> Iterator[tuple[np.ndarray, list[str], list[Path]]]:
    """Decoded batches (B, 3, R, R) float32 + captions + paths; unreadable files are skipped."""
    report = report if report is not None else DataReport()
    imgs: list[np.ndarray] = []
    caps: list[str] = []
    paths: list[Path] = []
    for rec in records:
        x = load_image(rec.image, resolution, report)
        if x is None:
            continue
        imgs.append(x)
        caps.append(rec.caption)
        paths.append(rec.image)
        if len(imgs) == batch:
            yield np.stack(imgs), caps, paths
            imgs, caps, paths = [], [], []
    if imgs:
        yield np.stack(imgs), caps, paths


def shuffled(records: Iterable[Record], buffer: int, seed: int) -> Iterator[Record]:
    """Approximate shuffle with a bounded buffer (as webdataset does): memory O(buffer)."""
    rng = np.random.default_rng(seed)
    buf: list[Record] = []
    for rec in records:
        buf.append(rec)
        if len(buf) >= buffer:
            j = int(rng.integers(len(buf)))
            buf[j], buf[-1] = buf[-1], buf[j]
            yield buf.pop()
    rng.shuffle(buf)  # type: ignore[arg-type]
    yield from buf
