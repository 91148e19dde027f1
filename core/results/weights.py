"""A level's fine-tuned weights in a pack: ``weights/cp{C}_seed{S}.safetensors``, written and read.

Each file is a safetensors file (no pickle) holding what the level's fine-tune trained
(core.models.adapter: rank-r LoRA adapters, or the cross-attention projections) and, in its
``__metadata__`` (strings only, as safetensors requires), what is needed to rebuild the level:

    format   :data:`FORMAT`             params     "lora" | "cross-attention" | "all"
    c_p, seed the level (must match the file name)
    lora_rank, lora_alpha  W = W_base + (alpha / rank) · B · A   (lora only; "0" otherwise)
    base_sha256  core.models.adapter.unet_fingerprint of the base UNet it was trained on
    base     where that base was loaded from, for people ("shipped base" or a folder name)

Read like every pack file (core.results.safe_files): no links, at most :data:`MAX_WEIGHTS_BYTES`;
the safetensors header is parsed here, bounded, and checked (dtypes, shapes, offsets that tile the
buffer, key names, metadata) before any tensor is decoded, then every value must be finite. A file
that fails is :class:`BrokenPack` with its reason: that level's weights are unavailable, the rest
of the pack still reads.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.io import atomic_write_bytes
from core.results.safe_files import BrokenPack, check_folder, exists, parse_json, read_file
from core.results.schema import WEIGHTS_DIR, level_key, parse_level_key, weights_file

FORMAT = "implosion-level-weights/1"
MAX_WEIGHTS_BYTES = 16 * 2**20  # a rank-1 LoRA of the shipped base: 28 KB
MAX_HEADER_BYTES = 1 * 2**20
MAX_TENSORS = 4096
PARAMS: tuple[str, ...] = ("lora", "cross-attention", "all")
_DTYPES: dict[str, np.dtype[Any]] = {"F32": np.dtype("<f4"), "F16": np.dtype("<f2")}
_KEY = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")
_SHA = re.compile(r"^[0-9a-f]{64}$")
_META_KEYS = ("format", "params", "c_p", "seed", "lora_rank", "lora_alpha", "base_sha256", "base")


@dataclass(frozen=True)
class LevelWeights:
    """One level's validated weights. tensors: key → float32 array (core.models.adapter keys)."""

    c_p: int
    seed: int
    params: str
    lora_rank: int
    lora_alpha: float
    base_sha256: str
    base: str
    tensors: dict[str, np.ndarray]

    @property
    def scale(self) -> float:
        """LoRA's α / r (1.0 for the other kinds, whose tensors replace the base's)."""
        return self.lora_alpha / self.lora_rank if self.params == "lora" else 1.0

    @property
    def nbytes(self) -> int:
        return int(sum(a.nbytes for a in self.tensors.values()))


# ---------------------------------------------------------------- writing
def weights_bytes(
    tensors: dict[str, Any],
    *,
    c_p: int,
    seed: int,
    params: str,
    base_sha256: str,
    base: str,
    lora_rank: int = 0,
    lora_alpha: float = 0.0,
) -> bytes:
    """The safetensors bytes of one level (tensors as float32 arrays, metadata above); checked
    by :func:`parse_weights` before they are returned, so a writer never saves what the reader
    would refuse."""
    from safetensors.numpy import save

    arrays = {k: np.ascontiguousarray(np.asarray(v, dtype=np.float32)) for k, v in tensors.items()}
    meta = {
        "format": FORMAT,
        "params": str(params),
        "c_p": str(int(c_p)),
        "seed": str(int(seed)),
        "lora_rank": str(int(lora_rank)),
        "lora_alpha": repr(float(lora_alpha)),
        "base_sha256": str(base_sha256),
        "base": str(base)[:200],
    }
    data = save(arrays, metadata=meta)
    parse_weights(data, f"{WEIGHTS_DIR}/{level_key(c_p, seed)}.safetensors", None, (c_p, seed))
    return data


def write_level_weights(out: Path, data: bytes, c_p: int, seed: int) -> Path:
    """Write :func:`weights_bytes` atomically to ``out/weights/cp{c_p}_seed{seed}.safetensors``."""
    path = weights_file(out, c_p, seed)
    atomic_write_bytes(path, data)
    return path


# ---------------------------------------------------------------- reading
def _fail(rel: str, what: str, root: Path | None) -> BrokenPack:
    return BrokenPack(f"{rel}: {what}", root)


def _header(data: bytes, rel: str, root: Path | None) -> tuple[dict[str, Any], int]:
    """The safetensors JSON header (bounded) and where the tensor buffer starts."""
    if len(data) < 8:
        raise _fail(rel, "is not a safetensors file (shorter than its 8-byte header length)", root)
    n = int.from_bytes(data[:8], "little")
    if n < 2 or n > MAX_HEADER_BYTES or 8 + n > len(data):
        raise _fail(rel, f"declares a {n:,}-byte header in a {len(data):,}-byte file", root)
    head = parse_json(data[8 : 8 + n].rstrip(b" "), rel, root)
    if not isinstance(head, dict):
        raise _fail(rel, "header is not a JSON object", root)
    return head, 8 + n


def _metadata(head: dict[str, Any], rel: str, root: Path | None) -> dict[str, str]:
    meta = head.pop("__metadata__", None)
    if not isinstance(meta, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in meta.items()
    ):
        raise _fail(rel, "has no string __metadata__ (format, params, base_sha256, ...)", root)
    missing = [k for k in _META_KEYS if k not in meta]
    if missing:
        raise _fail(rel, f"metadata lacks {missing}", root)
    if meta["format"] != FORMAT:
        raise _fail(rel, f"format {meta['format'][:40]!r}, expected {FORMAT!r}", root)
    if meta["params"] not in PARAMS:
        raise _fail(rel, f"params {meta['params'][:40]!r}, expected one of {list(PARAMS)}", root)
    if not _SHA.match(meta["base_sha256"]):
        raise _fail(rel, "base_sha256 is not a 64-digit hex SHA-256", root)
    return meta


def _int(meta: dict[str, str], key: str, rel: str, root: Path | None, hi: int) -> int:
    v = meta[key]
    if not v.isdigit() or len(v) > 9 or int(v) > hi:
        raise _fail(rel, f"metadata {key}={v[:20]!r} is not an integer in [0, {hi}]", root)
    return int(v)


def _entries(head: dict[str, Any], start: int, size: int, rel: str, root: Path | None) -> None:
    """Every tensor entry: a plain key, F32/F16, a small shape, offsets that tile the buffer."""
    if not head:
        raise _fail(rel, "holds no tensors", root)
    if len(head) > MAX_TENSORS:
        raise _fail(rel, f"holds {len(head)} tensors (at most {MAX_TENSORS})", root)
    spans = []
    for key, e in head.items():
        if not isinstance(key, str) or len(key) > 300 or not _KEY.match(key):
            raise _fail(rel, f"tensor name {str(key)[:60]!r} is not a dotted module path", root)
        if not isinstance(e, dict) or set(e) != {"dtype", "shape", "data_offsets"}:
            raise _fail(rel, f"{key}: entry needs exactly dtype, shape and data_offsets", root)
        if e["dtype"] not in _DTYPES:
            raise _fail(rel, f"{key}: dtype {str(e['dtype'])[:10]!r}, expected F32 or F16", root)
        shape, off = e["shape"], e["data_offsets"]
        if (
            not isinstance(shape, list)
            or len(shape) > 4
            or not all(
                isinstance(d, int) and not isinstance(d, bool) and 0 < d <= 2**20 for d in shape
            )
        ):
            raise _fail(rel, f"{key}: shape {str(shape)[:40]} is not 1–4 positive sizes", root)
        if not (
            isinstance(off, list)
            and len(off) == 2
            and all(isinstance(o, int) and not isinstance(o, bool) for o in off)
            and 0 <= off[0] <= off[1] <= size - start
        ):
            raise _fail(rel, f"{key}: data_offsets {str(off)[:40]} lie outside the file", root)
        if off[1] - off[0] != math.prod(shape) * _DTYPES[e["dtype"]].itemsize:
            raise _fail(rel, f"{key}: {off[1] - off[0]} bytes for shape {shape}", root)
        spans.append((off[0], off[1]))
    spans.sort()
    if (
        spans[0][0] != 0
        or spans[-1][1] != size - start
        or any(a[1] != b[0] for a, b in zip(spans, spans[1:]))
    ):
        raise _fail(rel, "tensor data do not tile the buffer (gaps or overlaps)", root)


def _check_kind(
    meta: dict[str, str], rank: int, tensors: dict[str, np.ndarray], rel: str, root: Path | None
) -> None:
    """LoRA files: adapter pairs ``<m>.lora_A.weight`` (r, in) / ``<m>.lora_B.weight`` (out, r);
    others: ``weight`` / ``bias`` tensors, no adapters."""
    if meta["params"] != "lora":
        bad = [k for k in tensors if "lora_" in k or not k.endswith((".weight", ".bias"))]
        if bad:
            raise _fail(rel, f"{bad[0]!r} is not a weight or bias of a {meta['params']} file", root)
        return
    if rank < 1:
        raise _fail(rel, "a lora file needs lora_rank ≥ 1", root)
    for key, a in tensors.items():
        if key.endswith(".lora_A.weight"):
            other = key[: -len(".lora_A.weight")] + ".lora_B.weight"
            b = tensors.get(other)
            if b is None:
                raise _fail(rel, f"{key} has no {other}", root)
            if a.ndim != 2 or b.ndim != 2 or a.shape[0] != rank or b.shape[1] != rank:
                raise _fail(rel, f"{key}: shapes {a.shape}, {b.shape} are not rank {rank}", root)
        elif key.endswith(".lora_B.weight"):
            if key[: -len(".lora_B.weight")] + ".lora_A.weight" not in tensors:
                raise _fail(rel, f"{key} has no lora_A", root)
        else:
            raise _fail(rel, f"{key!r} is not a LoRA adapter weight", root)


def parse_weights(
    data: bytes, rel: str, root: Path | None = None, level: tuple[int, int] | None = None
) -> LevelWeights:
    """Validate the bytes of a level's weights file and decode it; BrokenPack naming the reason.
    ``level``: the (c_p, seed) its file name says, which the metadata must repeat."""
    head, start = _header(data, rel, root)
    meta = _metadata(head, rel, root)
    _entries(head, start, len(data), rel, root)
    c_p, seed = _int(meta, "c_p", rel, root, 10**6), _int(meta, "seed", rel, root, 10**9)
    if level is not None and (c_p, seed) != tuple(level):
        raise _fail(
            rel, f"metadata says C_P {c_p}, seed {seed}; the file name says otherwise", root
        )
    rank = _int(meta, "lora_rank", rel, root, 4096)
    try:
        alpha = float(meta["lora_alpha"])
    except ValueError:
        raise _fail(rel, f"lora_alpha {meta['lora_alpha'][:20]!r} is not a number", root) from None
    if meta["params"] == "lora" and not (math.isfinite(alpha) and alpha > 0):
        raise _fail(rel, f"lora_alpha {alpha} must be a finite number > 0", root)
    from safetensors.numpy import load

    try:
        raw = load(data)
    except Exception as e:  # noqa: BLE001 — safetensors raises its own error types
        raise _fail(rel, f"is not a readable safetensors file ({type(e).__name__})", root) from None
    tensors = {k: np.asarray(v, dtype=np.float32) for k, v in raw.items()}
    bad = next((k for k, v in tensors.items() if not np.isfinite(v).all()), None)
    if bad is not None:
        raise _fail(rel, f"{bad} holds NaN or infinite values", root)
    _check_kind(meta, rank, tensors, rel, root)
    return LevelWeights(
        c_p, seed, meta["params"], rank, alpha, meta["base_sha256"], meta["base"], tensors
    )


def weights_levels(root: Path) -> list[tuple[int, int]]:
    """(c_p, seed) of every ``weights/cp{C}_seed{S}.safetensors`` in a pack, sorted; [] when it
    has none. Other names are ignored; a link (folder or file) is BrokenPack."""
    out = []
    for name in check_folder(Path(root), WEIGHTS_DIR):
        if not name.endswith(".safetensors"):
            continue
        try:
            out.append(parse_level_key(name[: -len(".safetensors")]))
        except ValueError:
            continue
    return sorted(out)


def weights_rel(c_p: int, seed: int) -> str:
    """``weights/cp{c_p}_seed{seed}.safetensors`` (relative to a pack)."""
    return weights_file(Path(), c_p, seed).as_posix()


def read_level_weights(root: Path, c_p: int, seed: int) -> LevelWeights:
    """The validated weights of level (c_p, seed) of the pack at ``root``. FileNotFoundError
    when the pack has none for it; BrokenPack with the reason when the file is broken."""
    rel = weights_rel(c_p, seed)
    if not exists(Path(root), rel):
        raise FileNotFoundError(f"{rel} is not in {root}")
    return parse_weights(
        read_file(Path(root), rel, MAX_WEIGHTS_BYTES), rel, Path(root), (c_p, seed)
    )


__all__ = [
    "FORMAT",
    "MAX_WEIGHTS_BYTES",
    "LevelWeights",
    "parse_weights",
    "read_level_weights",
    "weights_bytes",
    "weights_levels",
    "weights_rel",
    "write_level_weights",
]
