"""Blocked, streaming kernels behind :mod:`core.metrics.ad` (private; use the public API).

Notation (SCIENCE.md): n pairs, embedding width d, image embeddings X (n×d), text embeddings Y (n×d),
rows L2-normalised inside. For a row block I and a column block J we never form the two n×n Gram
matrices; one matmul gives their difference directly::

    Z = [X | Y]  (n×2d),  W = [X | −Y]  (n×2d),  Z_I W_J^T = X_I X_J^T − Y_I Y_J^T

so ``|Z_I W_J^T|`` summed over the upper-triangular blocks (off-diagonal blocks counted twice, the
i = j diagonal zeroed) is Σ_{i≠j} |cos(x_i,x_j) − cos(y_i,y_j)|. Memory is O(block² + n·d) for
in-memory input (the normalised Z is kept) and O(block² + block·d + n) when streaming from a memmap
(rows are re-read block by block; only the n inverse norms and matched cosines are kept).

Precision: inputs of any float dtype are normalised in float64. The matmuls run in ``dtype``
(float64 by default on CPU; float32 by default on CUDA, with TF32 disabled so they are true fp32),
and every reduction accumulates in float64.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

Precision = Literal["float64", "float32"]
PRECISIONS: tuple[str, ...] = ("float64", "float32")
DEFAULT_BLOCK_CPU = 2048
DEFAULT_BLOCK_CUDA = 8192
ProgressFn = Callable[[int, int], None]


def _as_array(a: object, field: str) -> np.ndarray | torch.Tensor:
    if isinstance(a, np.ndarray | torch.Tensor):
        return a
    try:
        return np.asarray(a)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{field}: cannot read as an n×d array ({e}); pass a numpy array") from e


def _is_float(a: np.ndarray | torch.Tensor) -> bool:
    if isinstance(a, torch.Tensor):
        return a.is_floating_point()
    return np.issubdtype(a.dtype, np.floating)


@dataclass(frozen=True)
class Source:
    """Validated shapes of a pair of embedding matrices; rows are read (and checked) lazily."""

    image: np.ndarray | torch.Tensor
    text: np.ndarray | torch.Tensor
    n: int
    d: int

    @property
    def streaming(self) -> bool:
        """True for memory-mapped input: read block by block, never materialised."""
        return isinstance(self.image, np.memmap) or isinstance(self.text, np.memmap)

    def raw(
        self, sel: slice | np.ndarray, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows ``(x, y)`` of the selection as float64 on ``device``, not normalised."""
        return _raw(self.image, sel, device), _raw(self.text, sel, device)


_TORCH_NUMPY_FLOATS = (np.float16, np.float32, np.float64)


def _raw(
    a: np.ndarray | torch.Tensor, sel: slice | np.ndarray, device: torch.device
) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        idx = sel if isinstance(sel, slice) else torch.as_tensor(sel, device=a.device)
        return a.detach()[idx].to(device=device, dtype=torch.float64)
    # Only the selected rows are read (a memmap stays on disk otherwise); they travel to the
    # device in their own dtype and are widened to float64 there.
    block = a[sel]
    if block.dtype not in _TORCH_NUMPY_FLOATS:  # e.g. longdouble
        block = block.astype(np.float64)
    elif isinstance(block, np.memmap) or not (block.flags.writeable and block.flags.c_contiguous):
        block = np.array(block)  # a plain, writable copy of just these rows
    return torch.from_numpy(block).to(device=device, dtype=torch.float64)


def checked_norms(v: torch.Tensor, field: str, sel: slice | np.ndarray) -> torch.Tensor:
    """L2 norms (rows,) of float64 rows ``v``; ValueError naming the row for NaN/inf/zero."""

    def first(bad: torch.Tensor) -> tuple[int, int]:  # (row in block, row in the dataset)
        k = int(torch.nonzero(bad)[0, 0])
        return k, int(sel[k]) if isinstance(sel, np.ndarray) else (sel.start or 0) + k

    norm = torch.linalg.vector_norm(v, dim=1)  # NaN/inf anywhere in a row → non-finite norm
    bad = ~torch.isfinite(norm)
    if bool(bad.any()):
        k, row = first(bad)
        if not bool(torch.isfinite(v[k]).all()):
            raise ValueError(f"{field}: row {row} contains NaN or inf; fix or drop that pair")
        raise ValueError(f"{field}: row {row} is too large to normalise (overflow); rescale it")
    if not bool((norm > 0).all()):
        _, row = first(norm <= 0)
        raise ValueError(
            f"{field}: row {row} is a zero vector, so its cosine is undefined; drop that pair"
        )
    return norm


def check_pairs(image_emb: object, text_emb: object) -> Source:
    """Check shapes and dtypes (not values: those are checked block by block as rows are read)."""
    image = _as_array(image_emb, "image_emb")
    text = _as_array(text_emb, "text_emb")
    for field, a in (("image_emb", image), ("text_emb", text)):
        if a.ndim != 2:
            raise ValueError(
                f"{field}: expected a 2-D array of shape (n, d), got shape {tuple(a.shape)}"
            )
        if not _is_float(a):
            raise ValueError(
                f"{field}: dtype {a.dtype} is not floating point; pass float embeddings "
                "(e.g. .astype(np.float32))"
            )
    if tuple(image.shape) != tuple(text.shape):
        raise ValueError(
            f"image_emb/text_emb: shapes differ ({tuple(image.shape)} vs {tuple(text.shape)}); "
            "pass one image and one text embedding per pair, in the same embedding space"
        )
    n, d = (int(s) for s in image.shape)
    if n < 2:
        raise ValueError(f"image_emb/text_emb: need at least 2 pairs, got n={n}")
    if d < 1:
        raise ValueError("image_emb/text_emb: embedding width d is 0; pass non-empty embeddings")
    return Source(image=image, text=text, n=n, d=d)


def resolve_device(device: str | torch.device | None, source: Source) -> torch.device:
    """``None``: CUDA when available (or when the input already lives there), else CPU."""
    if device is None:
        for a in (source.image, source.text):
            if isinstance(a, torch.Tensor) and a.device.type == "cuda":
                return a.device
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ValueError(f"device: {e}; use 'cpu' or 'cuda'") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: 'cuda' requested but no CUDA device is available; use 'cpu'")
    return dev


def resolve_dtype(precision: str | None, device: torch.device) -> torch.dtype:
    """Matmul dtype: float64 on CPU (exact), float32 on CUDA unless float64 is asked for."""
    if precision is None:
        precision = "float32" if device.type == "cuda" else "float64"
    if precision not in PRECISIONS:
        raise ValueError(f"precision: {precision!r} is not one of {PRECISIONS}")
    return torch.float64 if precision == "float64" else torch.float32


def default_block(device: torch.device) -> int:
    return DEFAULT_BLOCK_CUDA if device.type == "cuda" else DEFAULT_BLOCK_CPU


def check_block(block: int | None, device: torch.device) -> int:
    if block is None:
        return default_block(device)
    if isinstance(block, bool) or not isinstance(block, int) or block < 1:
        raise ValueError(f"block: must be a positive integer (rows per block), got {block!r}")
    return block


@contextlib.contextmanager
def compute_context(threads: int | None = None) -> Iterator[None]:
    """All CPU threads for torch, and true fp32 matmuls on CUDA (TF32 off); restored on exit."""
    old_threads = torch.get_num_threads()
    old_precision = torch.get_float32_matmul_precision()
    try:
        torch.set_num_threads(max(1, threads or os.cpu_count() or 1))
        torch.set_float32_matmul_precision("highest")  # disables TF32 (10-bit mantissa)
        yield
    finally:
        torch.set_num_threads(old_threads)
        torch.set_float32_matmul_precision(old_precision)


def block_ranges(n: int, block: int) -> list[tuple[int, int]]:
    return [(a, min(a + block, n)) for a in range(0, n, block)]


class Prepared:
    """First pass over the data: validates every row and computes the matched cosines ``s`` (n,)
    float64 and inverse norms; unless streaming, keeps ``Z = [X | Y]`` normalised (n×2d,
    ``dtype``) on ``device``. Later passes re-read rows and reuse the norms (no re-validation)."""

    def __init__(
        self,
        source: Source,
        device: torch.device,
        dtype: torch.dtype,
        block: int,
        keep: bool,
    ) -> None:
        self.source, self.device, self.dtype, self.block = source, device, dtype, block
        self.n = n = source.n
        s = torch.empty(n, dtype=torch.float64, device=device)
        self.rx = torch.empty(n, dtype=torch.float64, device=device)  # 1/|x_i|
        self.ry = torch.empty(n, dtype=torch.float64, device=device)  # 1/|y_i|
        parts: list[torch.Tensor] = []
        for a, b in block_ranges(n, block):
            sel = slice(a, b)
            x, y = source.raw(sel, device)
            self.rx[a:b] = 1.0 / checked_norms(x, "image_emb", sel)
            self.ry[a:b] = 1.0 / checked_norms(y, "text_emb", sel)
            s[a:b] = (x * y).sum(dim=1) * self.rx[a:b] * self.ry[a:b]
            if keep:
                parts.append(self._z(x, y, a, b))
        self.s = np.clip(s.cpu().numpy(), -1.0, 1.0)
        self.z: torch.Tensor | None = torch.cat(parts) if keep else None
        d = source.d
        self.sign = torch.ones(2 * d, dtype=dtype, device=device)
        self.sign[d:] = -1.0

    def _z(self, x: torch.Tensor, y: torch.Tensor, a: int, b: int) -> torch.Tensor:
        z = torch.cat([x * self.rx[a:b, None], y * self.ry[a:b, None]], dim=1)
        return z.to(self.dtype)

    def z_rows(self, a: int, b: int) -> torch.Tensor:
        """Z rows a..b (normalised [x | y]) in the compute dtype."""
        if self.z is not None:
            return self.z[a:b]
        x, y = self.source.raw(slice(a, b), self.device)
        return self._z(x, y, a, b)

    def pair_values(self, i: np.ndarray, j: np.ndarray) -> torch.Tensor:
        """v_k = |cos(x_i,x_j) − cos(y_i,y_j)| (float64) for index arrays i, j (m,)."""
        ti = torch.as_tensor(i, device=self.device)
        tj = torch.as_tensor(j, device=self.device)
        if self.z is not None:
            return (self.z[ti] * (self.z[tj] * self.sign)).sum(dim=1, dtype=torch.float64).abs()
        xi, yi = self._take(i)
        xj, yj = self._take(j)
        cx = (xi * xj).sum(dim=1) * self.rx[ti] * self.rx[tj]
        cy = (yi * yj).sum(dim=1) * self.ry[ti] * self.ry[tj]
        return (cx - cy).abs()

    def _take(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.source.streaming:
            return self.source.raw(idx, self.device)
        uniq, inv = np.unique(idx, return_inverse=True)  # sorted reads are memmap-friendly
        x, y = self.source.raw(uniq, self.device)
        t = torch.as_tensor(inv, device=self.device)
        return x[t], y[t]


def structure_sum(
    prep: Prepared, row_sums: bool = False, on_step: ProgressFn | None = None
) -> tuple[float, np.ndarray | None]:
    """``Σ_{i≠j} |cos(x_i,x_j) − cos(y_i,y_j)|`` over upper-triangular blocks (symmetry).

    Returns the float64 total and, if ``row_sums``, r (n,) with ``r_i = Σ_{j≠i} |…|`` (Σ r = total).
    """
    n, dev = prep.n, prep.device
    f64 = torch.float64
    ranges = block_ranges(n, prep.block)
    total = torch.zeros((), dtype=f64, device=dev)
    r = torch.zeros(n, dtype=f64, device=dev) if row_sums else None
    steps, done = len(ranges) * (len(ranges) + 1) // 2, 0
    for bi, (a, b) in enumerate(ranges):
        z_i = prep.z_rows(a, b)
        for c, e in ranges[bi:]:
            w_j = (z_i if c == a else prep.z_rows(c, e)) * prep.sign
            g = torch.mm(z_i, w_j.T).abs_()  # |Gx − Gy| for block (I, J)
            if c == a:
                g.diagonal().zero_()  # i = j is excluded (and is 0 up to rounding)
            if r is None:
                part = g.sum(dtype=f64)
                total += part if c == a else 2.0 * part  # block (J, I) is the transpose
            else:
                rows = g.sum(dim=1, dtype=f64)
                r[a:b] += rows
                if c != a:
                    r[c:e] += g.sum(dim=0, dtype=f64)
                total += rows.sum() if c == a else 2.0 * rows.sum()
            done += 1
            if on_step is not None:
                on_step(done, steps)
    return float(total), (r.cpu().numpy() if r is not None else None)
