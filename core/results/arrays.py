"""Untrusted ``.npz`` arrays, checked from their headers before anything is allocated.

The zip directory and every member's ``.npy`` header are read first; object dtypes, declared sizes
that disagree with the zip entry or exceed :data:`MAX_ARRAY_BYTES`, and shapes that disagree with
the results schema are refused before any array is allocated; arrays are then read without pickle.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from core.results.safe_files import BrokenPack, open_file
from core.results.schema import (
    CONCEPTS,
    EMBEDDINGS,
    GENERATIONS,
    IMAGES,
    LEVEL_ARRAYS,
    LEVELS,
    TEXT_CONCEPT,
    level_array_key,
)

MAX_NPZ_MEMBERS = 4096
MAX_ARRAY_BYTES = 4 * 2**30  # one array; the demo's largest is 0.8 MB
MAX_NPZ_BYTES = 16 * 2**30  # all arrays of one file, uncompressed
MAX_DEFLATE_RATIO = 1100  # deflate cannot expand more than ~1032:1
_NPY_HEADER_MAX = 10_000
# dtype kinds a pack array may have: bool, signed/unsigned int, float, unicode/bytes strings
_ARRAY_KINDS = frozenset("biufUS")


# ---------------------------------------------------------------- arrays
@dataclass(frozen=True)
class ArrayHeader:
    """One member of an npz file as its headers declare it (nothing allocated yet)."""

    key: str
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran: bool
    nbytes: int


@contextlib.contextmanager
def _npz_open(root: Path, rel: str, data: bytes | None = None) -> Iterator[zipfile.ZipFile]:
    """The zip of ``root/rel`` (or of ``data``, bytes already read from it)."""
    with contextlib.ExitStack() as stack:
        f: BinaryIO = (
            io.BytesIO(data)
            if data is not None
            else stack.enter_context(open_file(root, rel, MAX_NPZ_BYTES))
        )
        try:
            z = zipfile.ZipFile(f)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as e:
            raise BrokenPack(f"{rel} is not a readable zip ({e})", root) from None
        with z:
            yield z


def _member_header(z: zipfile.ZipFile, info: zipfile.ZipInfo, rel: str, root: Path) -> ArrayHeader:
    name = info.filename
    if not name.endswith(".npy") or len(name) > 200:
        raise BrokenPack(f"{rel}: member {name[:60]!r} is not an .npy array", root)
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise BrokenPack(f"{rel}: member {name!r} uses an unsupported compression", root)
    if info.file_size > MAX_DEFLATE_RATIO * info.compress_size + 4096:
        raise BrokenPack(
            f"{rel}: member {name!r} declares {info.file_size:,} bytes from "
            f"{info.compress_size:,} compressed (more than deflate can expand)",
            root,
        )
    try:
        with z.open(info) as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(
                    f, max_header_size=_NPY_HEADER_MAX
                )
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(
                    f, max_header_size=_NPY_HEADER_MAX
                )
            else:
                raise ValueError(f"npy format version {version}")
            offset = f.tell()
    except (ValueError, zipfile.BadZipFile, zlib.error, EOFError, OSError, SyntaxError) as e:
        raise BrokenPack(f"{rel}: member {name!r} has no valid array header ({e})", root) from None
    key = name[: -len(".npy")]
    if dtype.hasobject or dtype.kind not in _ARRAY_KINDS or dtype.fields is not None:
        raise BrokenPack(f"{rel}: array {key!r} has dtype {dtype} (objects are never read)", root)
    if any(not isinstance(d, int) or d < 0 for d in shape) or len(shape) > 8:
        raise BrokenPack(f"{rel}: array {key!r} has an invalid shape {shape}", root)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > MAX_ARRAY_BYTES:
        raise BrokenPack(
            f"{rel}: array {key!r} declares shape {shape} = {nbytes:,} bytes "
            f"(at most {MAX_ARRAY_BYTES:,})",
            root,
        )
    if offset + nbytes != info.file_size:
        raise BrokenPack(
            f"{rel}: array {key!r} declares {nbytes:,} bytes of data but its zip entry holds "
            f"{info.file_size - offset:,}",
            root,
        )
    return ArrayHeader(key, tuple(shape), dtype, bool(fortran), nbytes)


def npz_headers(root: Path, rel: str, data: bytes | None = None) -> dict[str, ArrayHeader]:
    """Key → declared shape and dtype of every array in ``root/rel`` (or ``data``), read from
    the zip directory and the ``.npy`` headers only (the arrays are not decompressed)."""
    with _npz_open(root, rel, data) as z:
        return _headers(z, rel, root)


def _headers(z: zipfile.ZipFile, rel: str, root: Path) -> dict[str, ArrayHeader]:
    infos = z.infolist()
    if len(infos) > MAX_NPZ_MEMBERS:
        raise BrokenPack(f"{rel} has {len(infos):,} members (at most {MAX_NPZ_MEMBERS})", root)
    out: dict[str, ArrayHeader] = {}
    for info in infos:
        h = _member_header(z, info, rel, root)
        if h.key in out:
            raise BrokenPack(f"{rel}: array {h.key!r} appears twice", root)
        out[h.key] = h
    total = sum(h.nbytes for h in out.values())
    if total > MAX_NPZ_BYTES:
        raise BrokenPack(
            f"{rel} declares {total:,} bytes of arrays (at most {MAX_NPZ_BYTES:,})", root
        )
    return out


def read_npz(
    root: Path,
    rel: str,
    check: Callable[[dict[str, ArrayHeader]], None] | None = None,
    keys: Callable[[str], bool] | None = None,
    data: bytes | None = None,
) -> dict[str, np.ndarray]:
    """Arrays of ``root/rel`` (or of ``data``, bytes read from it): every header checked first
    (``check(headers)`` may refuse more), then the arrays ``keys`` selects (default all) read
    without pickle. BrokenPack for a crafted, truncated or corrupt file."""
    with _npz_open(root, rel, data) as z:
        headers = _headers(z, rel, root)
        if check is not None:
            check(headers)
        out: dict[str, np.ndarray] = {}
        for key in headers:
            if keys is not None and not keys(key):
                continue
            try:
                with z.open(f"{key}.npy") as f:
                    out[key] = np.lib.format.read_array(
                        f, allow_pickle=False, max_header_size=_NPY_HEADER_MAX
                    )
            except (ValueError, zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
                raise BrokenPack(f"{rel}: array {key!r} is corrupt ({e})", root) from None
    return out


def _concept_id_arrays() -> list[str]:
    return [name for name, rule in LEVEL_ARRAYS.items() if rule.concept_ids]


def is_index_array(key: str) -> bool:
    """The small integer arrays of a pack that readers index with (``levels``, concept ids)."""
    ids = "|".join(map(re.escape, _concept_id_arrays()))
    return key == LEVELS or (bool(ids) and re.fullmatch(rf"({ids})_\d{{1,9}}", key) is not None)


def _level_keys(headers: dict[str, ArrayHeader], prefix: str) -> Iterator[tuple[int, str]]:
    for key in headers:
        m = re.fullmatch(rf"{prefix}_(\d{{1,9}})", key)
        if m:
            yield int(m.group(1)), key


def check_embedding_headers(h: dict[str, ArrayHeader], k: int, root: Path) -> None:
    """Shapes and dtypes of ``embeddings.npz`` against the schema (core/results/pack.py)."""
    rel = EMBEDDINGS

    def want(key: str, ndim: int, kinds: str, first: int | None = None) -> ArrayHeader:
        if key not in h:
            raise BrokenPack(f"{rel}: array {key!r} is missing", root)
        a = h[key]
        if len(a.shape) != ndim or a.dtype.kind not in kinds:
            raise BrokenPack(
                f"{rel}: array {key!r} is {a.dtype}{list(a.shape)}, expected {ndim}-d of kind "
                f"{'/'.join(kinds)}",
                root,
            )
        if first is not None and a.shape[0] != first:
            raise BrokenPack(f"{rel}: array {key!r} has {a.shape[0]} rows, expected {first}", root)
        return a

    want(CONCEPTS, 1, "US", k)
    want(LEVELS, 1, "iu")
    d = want(TEXT_CONCEPT, 2, "f", k).shape[1]
    first = next(iter(LEVEL_ARRAYS))  # its rows are the level's kept pairs
    for c, _ in _level_keys(h, first):
        n = want(
            level_array_key(first, c), LEVEL_ARRAYS[first].ndim, LEVEL_ARRAYS[first].kinds
        ).shape[0]
        for name, rule in LEVEL_ARRAYS.items():
            key = level_array_key(name, c)
            if not rule.required and key not in h:
                continue
            a = want(key, rule.ndim, rule.kinds, n if rule.rows == "pairs" else k)
            if rule.ndim == 2 and a.shape[1] != d:
                raise BrokenPack(f"{rel}: array '{key}' has width {a.shape[1]}, not {d}", root)


def check_embeddings(arrays: dict[str, np.ndarray], k: int, root: Path) -> None:
    """Values readers index with: levels in [0, K], concept ids in [0, K)."""
    levels = arrays[LEVELS]
    if levels.size and (levels.min() < 0 or levels.max() > k):
        raise BrokenPack(f"{EMBEDDINGS}: '{LEVELS}' holds a C_P outside [0, {k}]", root)
    ids = _concept_id_arrays()
    for key, a in arrays.items():
        name = key.rsplit("_", 1)[0]
        if name in ids and a.size:
            bad = a[(a < 0) | (a >= k)]
            if bad.size:
                raise BrokenPack(
                    f"{EMBEDDINGS}: array {key!r} holds concept id {int(bad[0])}, outside "
                    f"[0, {k - 1}]",
                    root,
                )


def check_generation_headers(h: dict[str, ArrayHeader], k: int, root: Path) -> None:
    """``generations.npz``: ``levels`` (L,) int and per level ``images_{c}`` (K, m, S, S, 3) uint8."""
    rel = GENERATIONS
    if LEVELS not in h or len(h[LEVELS].shape) != 1 or h[LEVELS].dtype.kind not in "iu":
        raise BrokenPack(f"{rel}: array '{LEVELS}' is missing or not a 1-d integer array", root)
    for _, key in _level_keys(h, IMAGES):
        a = h[key]
        if len(a.shape) != 5 or a.shape[0] != k or a.shape[4] != 3 or a.dtype != np.uint8:
            raise BrokenPack(
                f"{rel}: array {key!r} is {a.dtype}{list(a.shape)}, expected uint8 "
                f"[{k}, m, S, S, 3]",
                root,
            )


def check_generation_levels(levels: np.ndarray, keys: Iterable[str], k: int, root: Path) -> None:
    """Every C_P that ``generations.npz`` lists is in [0, K] and has its ``images_{c}``."""
    have = set(keys)
    for c in levels.tolist():
        key = level_array_key(IMAGES, c) if isinstance(c, int) else f"{IMAGES}_?"
        if not isinstance(c, int) or not 0 <= c <= k or key not in have:
            raise BrokenPack(f"{GENERATIONS}: level {c} is listed but has no '{key}'", root)


def check_generations(arrays: dict[str, np.ndarray], k: int, root: Path) -> dict[int, np.ndarray]:
    """Level → images of a read ``generations.npz`` (:func:`check_generation_levels` first)."""
    check_generation_levels(arrays[LEVELS], arrays, k, root)
    return {int(c): arrays[level_array_key(IMAGES, c)] for c in arrays[LEVELS].tolist()}
