"""Safe reading of untrusted pack files: regular files only, bounded JSON, decoded PNGs.

Every file of a pack is opened with ``O_NOFOLLOW`` and checked with ``fstat``: a symbolic link (the
pack folder itself, a sub-folder such as ``grids/``, or a file) is refused, never followed, so a pack
cannot make the app read ``/proc/self/environ`` or a local secret. JSON is at most
:data:`MAX_JSON_BYTES`, UTF-8 and nested at most :data:`MAX_JSON_DEPTH` deep (checked on the bytes
before parsing); PNGs are decoded (at most :data:`MAX_PNG_PIXELS`) before they are copied anywhere.
The schema checks on top of this live in :mod:`core.results.validate`.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

MAX_JSON_BYTES = 64 * 2**20  # results.json of the 5-seed demo: 64 KB
MAX_JSON_DEPTH = 32  # results.json nests 5 deep (config → plans → seed → targets → id)
MAX_FOLDER_ENTRIES = 4096
MAX_PNG_PIXELS = 64 * 2**20
MAX_PNG_BYTES = 256 * 2**20


class BrokenPack(ValueError):
    """A pack or sweep folder that fails validation; ``reason`` says which file and what is wrong."""

    def __init__(self, reason: str, root: Path | str | None = None) -> None:
        self.reason = reason
        self.root = None if root is None else Path(root)
        where = f"{self.root}: " if self.root is not None else ""
        super().__init__(f"{where}broken pack ({reason})")


# ---------------------------------------------------------------- files
def _inside(root: Path, rel: str) -> Path:
    """``root / rel`` for a relative path of plain names (no ``..``, not absolute)."""
    parts = Path(rel).parts
    if not parts or Path(rel).is_absolute() or any(p in ("", ".", "..") for p in parts):
        raise BrokenPack(f"{rel!r} is not a plain relative file name", root)
    return Path(root).joinpath(*parts)


def _no_links(root: Path, rel: str) -> Path:
    """``root / rel`` after checking that neither ``root`` nor a folder on the way is a link."""
    path = _inside(root, rel)
    d = Path(root)
    if d.is_symlink():
        raise BrokenPack("the pack folder is a symbolic link; copy the pack instead", root)
    for part in Path(rel).parts[:-1]:
        d = d / part
        if d.is_symlink():
            raise BrokenPack(f"{d.name}/ is a symbolic link (links are never followed)", root)
    return path


def exists(root: Path, rel: str) -> bool:
    """Whether ``root/rel`` is there at all (a link counts: reading it is what gets refused)."""
    try:
        _inside(root, rel).lstat()
    except (OSError, BrokenPack):
        return False
    return True


@contextlib.contextmanager
def open_file(root: Path, rel: str, max_bytes: int) -> Iterator[BinaryIO]:
    """The regular file ``root/rel`` opened for reading, never through a link.

    FileNotFoundError when it is absent; BrokenPack when it or a folder on the way is a link,
    it is not a regular file, or it is larger than ``max_bytes``.
    """
    path = _no_links(Path(root), rel)
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise
    except OSError as e:
        if e.errno == errno.ELOOP or path.is_symlink():
            raise BrokenPack(f"{rel} is a symbolic link (links are never followed)", root) from None
        raise BrokenPack(f"{rel}: cannot read ({e.strerror or e})", root) from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise BrokenPack(f"{rel} is not a regular file", root)
        if st.st_size > max_bytes:
            raise BrokenPack(f"{rel} is {st.st_size:,} bytes, over the {max_bytes:,} limit", root)
        yield f


def read_file(root: Path, rel: str, max_bytes: int) -> bytes:
    """Bytes of the regular file ``root/rel`` (at most ``max_bytes``; see :func:`open_file`)."""
    with open_file(root, rel, max_bytes) as f:
        try:
            data = f.read(max_bytes + 1)
        except OSError as e:
            raise BrokenPack(f"{rel}: cannot read ({e.strerror or e})", root) from None
    if len(data) > max_bytes:
        raise BrokenPack(f"{rel} grew past the {max_bytes:,} byte limit while read", root)
    return data


def check_folder(root: Path, rel: str) -> list[str]:
    """Names in the sub-folder ``root/rel`` (e.g. ``grids``), refusing a link as the folder or
    as any entry: only regular files and folders. [] when it is absent."""
    d = _no_links(Path(root), f"{rel}/_")
    d = d.parent
    try:
        st = d.lstat()
    except FileNotFoundError:
        return []
    if stat.S_ISLNK(st.st_mode):
        raise BrokenPack(f"{rel}/ is a symbolic link (links are never followed)", root)
    if not stat.S_ISDIR(st.st_mode):
        raise BrokenPack(f"{rel} is not a folder", root)
    names = []
    with os.scandir(d) as it:
        for i, e in enumerate(it):
            if i >= MAX_FOLDER_ENTRIES:
                raise BrokenPack(f"{rel}/ holds more than {MAX_FOLDER_ENTRIES} entries", root)
            if e.is_symlink():
                raise BrokenPack(f"{rel}/{e.name} is a symbolic link (never followed)", root)
            names.append(e.name)
    return sorted(names)


# ---------------------------------------------------------------- JSON
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


def json_depth(data: bytes) -> int:
    """Deepest ``[``/``{`` nesting of JSON text (strings skipped), without parsing it."""
    text = _STRING.sub(b'""', data)
    a = np.frombuffer(text, dtype=np.uint8)
    step = (
        (a == ord("[")).astype(np.int8)
        + (a == ord("{")).astype(np.int8)
        - (a == ord("]")).astype(np.int8)
        - (a == ord("}")).astype(np.int8)
    )
    return int(np.cumsum(step, dtype=np.int64).max(initial=0))


def parse_json(data: bytes, rel: str, root: Path | None = None) -> Any:
    """JSON of ``data`` (UTF-8, at most :data:`MAX_JSON_DEPTH` deep); BrokenPack otherwise."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BrokenPack(f"{rel} is not UTF-8 text (byte {e.start})", root) from None
    depth = json_depth(data)
    if depth > MAX_JSON_DEPTH:
        raise BrokenPack(f"{rel} nests {depth} levels deep (at most {MAX_JSON_DEPTH})", root)
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:
        where = f" at line {e.lineno}" if isinstance(e, json.JSONDecodeError) else ""
        raise BrokenPack(f"{rel} is not valid JSON{where}", root) from None


def read_json(root: Path, rel: str, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Parsed JSON file ``root/rel`` through :func:`read_file` and :func:`parse_json`."""
    return parse_json(read_file(root, rel, max_bytes), rel, root)


# ---------------------------------------------------------------- images
def check_png(data: bytes, rel: str, root: Path | None = None) -> None:
    """Decode PNG bytes fully (at most :data:`MAX_PNG_PIXELS`); BrokenPack if it is not one."""
    from PIL import Image

    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise BrokenPack(f"{rel} is not a PNG file", root)
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            if w * h > MAX_PNG_PIXELS:
                raise BrokenPack(f"{rel} is {w}×{h} pixels (at most {MAX_PNG_PIXELS:,})", root)
            im.load()
    except BrokenPack:
        raise
    except Exception as e:  # noqa: BLE001 — PIL raises many types for a corrupt file
        raise BrokenPack(f"{rel} is not a decodable PNG ({type(e).__name__})", root) from None
