"""The one reader of untrusted pack files: results packs and sweep folders are parsed here, once.

A pack folder may come from anywhere (a colleague's zip, a download), so nothing in it is trusted:

- **regular files only**: every file is opened with ``O_NOFOLLOW`` and checked with ``fstat``; a
  symbolic link (the pack folder itself, a sub-folder such as ``grids/``, or a file) is refused,
  never followed, so a pack cannot make the app read ``/proc/self/environ`` or a local secret;
- **JSON** (``results.json``, ``training.json``, ``science.json``, ``defense.json``): at most
  :data:`MAX_JSON_BYTES`, UTF-8, nested at most :data:`MAX_JSON_DEPTH` deep (checked on the bytes
  before parsing), then checked against the results schema (:func:`check_results`: types, ranges,
  integer levels and seeds, concept ids within K, equal lengths);
- **arrays** (``embeddings.npz``, ``generations.npz``): the zip directory and every member's
  ``.npy`` header are read first; object dtypes, declared sizes that disagree with the zip entry
  or exceed :data:`MAX_ARRAY_BYTES`, and shapes that disagree with the schema are refused before
  any array is allocated; arrays are then read without pickle;
- **PNG grids**: decoded (at most :data:`MAX_PNG_PIXELS`) before they are copied anywhere.

Anything that fails raises :class:`BrokenPack`, a ``ValueError`` whose ``reason`` names the file
and what is wrong in one line, so a command prints it as one line and a page shows it.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import math
import os
import re
import stat
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from core.results.schema import EMBEDDINGS, GENERATIONS, METRICS, RESULTS, TRAINING

MAX_JSON_BYTES = 64 * 2**20  # results.json of the 5-seed demo: 64 KB
MAX_JSON_DEPTH = 32  # results.json nests 5 deep (config → plans → seed → targets → id)
MAX_NPZ_MEMBERS = 4096
MAX_ARRAY_BYTES = 4 * 2**30  # one array; the demo's largest is 0.8 MB
MAX_NPZ_BYTES = 16 * 2**30  # all arrays of one file, uncompressed
MAX_DEFLATE_RATIO = 1100  # deflate cannot expand more than ~1032:1
MAX_CONCEPTS = 100_000
MAX_PNG_PIXELS = 64 * 2**20
MAX_PNG_BYTES = 256 * 2**20
_NPY_HEADER_MAX = 10_000
# dtype kinds a pack array may have: bool, signed/unsigned int, float, unicode/bytes strings
_ARRAY_KINDS = frozenset("biufUS")


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
            if i >= MAX_NPZ_MEMBERS:
                raise BrokenPack(f"{rel}/ holds more than {MAX_NPZ_MEMBERS} entries", root)
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


# ---------------------------------------------------------------- schema
class _Check:
    """Type and range checks that raise BrokenPack naming the JSON path (``records[3].c_p``)."""

    def __init__(self, rel: str, root: Path | None) -> None:
        self.rel, self.root = rel, root

    def fail(self, where: str, what: str) -> BrokenPack:
        return BrokenPack(f"{self.rel}: {where} {what}", self.root)

    def obj(self, v: Any, where: str) -> dict[str, Any]:
        if not isinstance(v, dict):
            raise self.fail(where, f"is {_kind(v)}, expected an object")
        return v

    def lst(self, v: Any, where: str, max_len: int | None = None) -> list[Any]:
        if not isinstance(v, list):
            raise self.fail(where, f"is {_kind(v)}, expected a list")
        if max_len is not None and len(v) > max_len:
            raise self.fail(where, f"has {len(v)} entries, at most {max_len}")
        return v

    def int_(self, v: Any, where: str, lo: int = 0, hi: int | None = None) -> int:
        if not isinstance(v, int) or isinstance(v, bool):
            raise self.fail(where, f"is {_kind(v)}, expected an integer")
        if v < lo or (hi is not None and v > hi):
            want = f"≥ {lo}" if hi is None or hi >= 2**31 else f"in [{lo}, {hi}]"
            raise self.fail(where, f"= {v}, expected an integer {want}")
        return v

    def num(self, v: Any, where: str, none: bool = True) -> float | None:
        if v is None and none:
            return None
        if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v):
            raise self.fail(where, f"is {_kind(v)}, expected a finite number")
        return float(v)

    def str_(self, v: Any, where: str, none: bool = False) -> str | None:
        if v is None and none:
            return None
        if not isinstance(v, str):
            raise self.fail(where, f"is {_kind(v)}, expected a string")
        return v


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    names: dict[type, str] = {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
    }
    if type(v) in names:
        return f"{names[type(v)]} ({json.dumps(v)[:40]})"
    containers: dict[type, str] = {dict: "an object", list: "a list"}
    return containers.get(type(v), type(v).__name__)


# Record fields that are counts (ints) and that are numbers; metrics may be null (empty group).
_RECORD_INTS = ("n_pairs", "n_poison")
_RECORD_NUMBERS = (
    *METRICS,
    "ad_generated",
    "incoherence_unpoisoned",
    "undefined_rate",
    "finetune_seconds",
    "wall_seconds",
    "final_loss",
)


def check_results(results: Any, root: Path | None = None) -> dict[str, Any]:
    """``results.json`` against the results schema (:class:`core.results.schema.ResultsFile`).

    Checks what readers rely on: config.concepts (K names), levels (distinct integers in [0, K]),
    seeds (integers ≥ 0), poison_order and targets (concept ids in [0, K)), relation (K × K),
    plans, ad_scale; records a list of objects with integer c_p in [0, K] and seed ≥ 0 and finite
    (or null) metrics; summary rows of equal-length lists. Unknown keys are kept unchecked.
    Returns ``results``; BrokenPack names the first field that is wrong.
    """
    c = _Check(RESULTS, root)
    res = c.obj(results, "the file")
    cfg = c.obj(res.get("config"), "config") if "config" in res else None
    if cfg is None:
        raise c.fail("config", "is missing; is this a sweep result?")
    if "concepts" not in cfg:
        raise c.fail("config.concepts", "is missing; is this a sweep result?")
    concepts = c.lst(cfg["concepts"], "config.concepts", MAX_CONCEPTS)
    for i, name in enumerate(concepts):
        c.str_(name, f"config.concepts[{i}]")
    k = len(concepts)
    if k == 0:
        raise c.fail("config.concepts", "is empty")
    levels = [
        c.int_(v, f"config.levels[{i}]", 0, k)
        for i, v in enumerate(c.lst(cfg.get("levels", []), "config.levels", k + 1))
    ]
    if len(set(levels)) != len(levels):
        raise c.fail("config.levels", "repeats a level")
    for i, v in enumerate(c.lst(cfg.get("seeds", []), "config.seeds", 100_000)):
        c.int_(v, f"config.seeds[{i}]", 0, 2**63 - 1)
    _check_order(c, cfg.get("poison_order", []), "config.poison_order", k)
    _check_targets(c, cfg.get("targets", {}), "config.targets", k)
    if "plans" in cfg and cfg["plans"] is not None:
        for s, plan in c.obj(cfg["plans"], "config.plans").items():
            plan = c.obj(plan, f"config.plans.{s}")
            _check_order(c, plan.get("order", []), f"config.plans.{s}.order", k)
            _check_targets(c, plan.get("targets", {}), f"config.plans.{s}.targets", k)
    if cfg.get("relation") is not None:
        rows = c.lst(cfg["relation"], "config.relation", k)
        if len(rows) != k:
            raise c.fail("config.relation", f"has {len(rows)} rows, expected K = {k}")
        for i, row in enumerate(rows):
            if len(c.lst(row, f"config.relation[{i}]")) != k:
                raise c.fail(f"config.relation[{i}]", f"has {len(row)} entries, expected {k}")
            for j, v in enumerate(row):
                if not isinstance(v, bool | int) or v not in (0, 1):
                    raise c.fail(f"config.relation[{i}][{j}]", f"is {_kind(v)}, expected 0/1")
    if cfg.get("ad_scale") is not None:
        for i, v in enumerate(c.lst(cfg["ad_scale"], "config.ad_scale", 2)):
            c.num(v, f"config.ad_scale[{i}]", none=False)
    for key in ("preset", "model"):
        c.str_(cfg.get(key), f"config.{key}", none=True)
    for i, r in enumerate(c.lst(res.get("records", []), "records")):
        r = c.obj(r, f"records[{i}]")
        for key in ("c_p", "seed"):
            if key not in r:
                raise c.fail(f"records[{i}].{key}", "is missing")
        c.int_(r["c_p"], f"records[{i}].c_p", 0, k)
        c.int_(r["seed"], f"records[{i}].seed", 0, 2**63 - 1)
        for key in _RECORD_NUMBERS:
            if key in r:
                c.num(r[key], f"records[{i}].{key}")
        for key in _RECORD_INTS:
            if key in r and r[key] is not None:
                c.int_(r[key], f"records[{i}].{key}")
        if r.get("per_concept_acc") is not None:
            for j, v in enumerate(c.lst(r["per_concept_acc"], f"records[{i}].per_concept_acc")):
                c.num(v, f"records[{i}].per_concept_acc[{j}]")
    for metric, row in c.obj(res.get("summary", {}), "summary").items():
        row = c.obj(row, f"summary.{metric}")
        n = len(c.lst(row.get("c_p", []), f"summary.{metric}.c_p"))
        for i, v in enumerate(row.get("c_p", [])):
            c.int_(v, f"summary.{metric}.c_p[{i}]", 0, k)
        for key in ("mean", "ci_low", "ci_high", "n"):
            if key in row:
                vals = c.lst(row[key], f"summary.{metric}.{key}")
                if len(vals) != n:
                    raise c.fail(f"summary.{metric}.{key}", f"has {len(vals)} entries, not {n}")
                for i, v in enumerate(vals):
                    c.num(v, f"summary.{metric}.{key}[{i}]")
    if "complete" in res and not isinstance(res["complete"], bool):
        raise c.fail("complete", f"is {_kind(res['complete'])}, expected true or false")
    return res


def _check_order(c: _Check, v: Any, where: str, k: int) -> None:
    ids = [c.int_(x, f"{where}[{i}]", 0, k - 1) for i, x in enumerate(c.lst(v, where, k))]
    if len(set(ids)) != len(ids):
        raise c.fail(where, "repeats a concept id")


def _check_targets(c: _Check, v: Any, where: str, k: int) -> None:
    for src, tgt in c.obj(v, where).items():
        if not re.fullmatch(r"\d{1,9}", src) or int(src) >= k:
            raise c.fail(f"{where} key {src[:20]!r}", f"is not a concept id in [0, {k - 1}]")
        c.int_(tgt, f"{where}.{src}", 0, k - 1)


def check_training(training: Any, root: Path | None = None) -> dict[str, Any]:
    """``training.json``: {"<c_p>": {"step": [int], "loss": [number], "probe": {...}}}."""
    c = _Check(TRAINING, root)
    for level, curve in c.obj(training, "the file").items():
        if not re.fullmatch(r"\d{1,9}", level):
            raise c.fail(f"key {level[:20]!r}", "is not a C_P level")
        curve = c.obj(curve, level)
        for key in ("step", "loss"):
            for i, v in enumerate(c.lst(curve.get(key, []), f"{level}.{key}")):
                c.num(v, f"{level}.{key}[{i}]")
        if curve.get("probe") is not None:
            for key, vals in c.obj(curve["probe"], f"{level}.probe").items():
                for i, v in enumerate(c.lst(vals, f"{level}.probe.{key}")):
                    c.num(v, f"{level}.probe.{key}[{i}]")
    return training


def check_science(science: Any, root: Path | None = None, rel: str = "science.json") -> dict:
    """``science.json`` (the pack's extra measurements, core/analysis/claims.py): ``notes`` a
    list of strings; ``longer_training`` {ratio, ci_low, ci_high, n_seeds, c_p, steps,
    preset_steps} and ``nightshade`` {attack_success, n_poison, epsilon255, ssim,
    dirty_label_n80} objects of numbers (null where not measured)."""
    c = _Check(rel, root)
    d = c.obj(science, "the file")
    for i, note in enumerate(c.lst(d.get("notes", []), "notes")):
        c.str_(note, f"notes[{i}]")
    fields = {
        "longer_training": (("ratio", "steps", "c_p"), ("ci_low", "ci_high"), "n_seeds"),
        "nightshade": (("attack_success", "n_poison", "epsilon255"), ("ssim",), "dirty_label_n80"),
    }
    for name, (required, optional, count) in fields.items():
        if not d.get(name):
            continue
        part = c.obj(d[name], name)
        for key in required:
            if key not in part:
                raise c.fail(f"{name}.{key}", "is missing")
            c.num(part[key], f"{name}.{key}", none=False)
        for key in optional:
            c.num(part.get(key), f"{name}.{key}")
        if part.get(count) is not None:
            c.int_(part[count], f"{name}.{count}")
        if name == "longer_training" and part.get("preset_steps") is not None:
            c.int_(part["preset_steps"], f"{name}.preset_steps")
    return d


def check_defense(report: Any, root: Path | None = None, rel: str = "defense.json") -> dict:
    """``defense.json`` (core/defend/report.py): an object with ``settings`` (object), ``rows``
    (a list of objects) and ``metadata`` (object, optional)."""
    c = _Check(rel, root)
    d = c.obj(report, "the file")
    c.obj(d.get("settings"), "settings")
    for i, row in enumerate(c.lst(d.get("rows", []), "rows")):
        c.obj(row, f"rows[{i}]")
    c.obj(d.get("metadata", {}), "metadata")
    return d


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


def is_index_array(key: str) -> bool:
    """The small integer arrays of a pack that readers index with (``levels``, concept ids)."""
    return key == "levels" or re.fullmatch(r"(caption|image)_concept_\d{1,9}", key) is not None


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

    want("concepts", 1, "US", k)
    want("levels", 1, "iu")
    d = want("text_concept", 2, "f", k).shape[1]
    for c, _ in _level_keys(h, "image"):
        n = want(f"image_{c}", 2, "f").shape[0]
        for name, ndim, kinds, rows in (
            ("text", 2, "f", n),
            ("caption_concept", 1, "iu", n),
            ("image_concept", 1, "iu", n),
            ("poisoned", 1, "b", n),
            ("generated", 2, "f", k),
        ):
            a = want(f"{name}_{c}", ndim, kinds, rows)
            if ndim == 2 and a.shape[1] != d:
                raise BrokenPack(f"{rel}: array '{name}_{c}' has width {a.shape[1]}, not {d}", root)
        if h[f"image_{c}"].shape[1] != d:
            raise BrokenPack(f"{rel}: array 'image_{c}' has width {h[f'image_{c}'].shape[1]}", root)


def check_embeddings(arrays: dict[str, np.ndarray], k: int, root: Path) -> None:
    """Values readers index with: levels in [0, K], concept ids in [0, K)."""
    levels = arrays["levels"]
    if levels.size and (levels.min() < 0 or levels.max() > k):
        raise BrokenPack(f"{EMBEDDINGS}: 'levels' holds a C_P outside [0, {k}]", root)
    for key, a in arrays.items():
        name = key.rsplit("_", 1)[0]
        if name in ("caption_concept", "image_concept") and a.size:
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
    if "levels" not in h or len(h["levels"].shape) != 1 or h["levels"].dtype.kind not in "iu":
        raise BrokenPack(f"{rel}: array 'levels' is missing or not a 1-d integer array", root)
    for _, key in _level_keys(h, "images"):
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
        if not isinstance(c, int) or not 0 <= c <= k or f"images_{c}" not in have:
            raise BrokenPack(f"{GENERATIONS}: level {c} is listed but has no 'images_{c}'", root)


def check_generations(arrays: dict[str, np.ndarray], k: int, root: Path) -> dict[int, np.ndarray]:
    """Level → images of a read ``generations.npz`` (:func:`check_generation_levels` first)."""
    check_generation_levels(arrays["levels"], arrays, k, root)
    return {int(c): arrays[f"images_{int(c)}"] for c in arrays["levels"].tolist()}


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


__all__ = [
    "MAX_ARRAY_BYTES",
    "MAX_JSON_BYTES",
    "MAX_JSON_DEPTH",
    "ArrayHeader",
    "BrokenPack",
    "check_embedding_headers",
    "check_embeddings",
    "check_folder",
    "check_generation_headers",
    "check_generation_levels",
    "check_generations",
    "check_png",
    "check_results",
    "check_science",
    "check_defense",
    "check_training",
    "exists",
    "is_index_array",
    "json_depth",
    "npz_headers",
    "open_file",
    "parse_json",
    "read_file",
    "read_json",
    "read_npz",
]
