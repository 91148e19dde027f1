"""Blocked, streaming kernels behind :mod:`core.metrics.ad` (private; use the public API).

Notation (docs/science.md): n pairs, embedding width d, image embeddings X (n×d), text embeddings Y (n×d),
rows L2-normalised inside. For a row block I and a column block J we never form the two n×n Gram
matrices; one GEMM gives their difference directly::

    Z = [X | Y]  (n×2d),  W = [X | −Y]  (n×2d),  Z_I W_J^T = X_I X_J^T − Y_I Y_J^T

so ``|Z_I W_J^T|`` summed over the upper-triangular blocks (off-diagonal blocks counted twice, the
i = j diagonal zeroed) is Σ_{i≠j} |cos(x_i,x_j) − cos(y_i,y_j)|. Memory is O(block² + n·d) for
in-memory input (the normalised Z is kept) and O(block² + block·d + n) when streaming from a memmap
(rows are re-read block by block; only the n inverse norms and matched cosines are kept).

Precision. The GEMMs run in ``float32`` or ``float64``. Each |ΔG| entry carries a float32 rounding
error of ~1e-7 whose sign is random, so once the block sums are accumulated in float64 (rows summed
pairwise in float32 over ≤ block columns, then in float64) the total's relative error is ~1e-10 at
n = 20,000 (measured in bench/results/ad.md; the contract is 1e-6). ``precision=None`` ("auto")
picks float64 when the work n²·d is small (≤ ``AUTO_FLOAT64_WORK``, a few tens of ms: results are
then exact to float64 rounding and bit-stable across block sizes) and float32 above it, where it is
twice as fast. Rows whose squared norm leaves the float32 range are normalised in float64.

Backends. The CPU path is numpy only (OpenBLAS GEMMs on all cores; torch is not imported unless
the caller passed torch tensors). CUDA runs the same kernel in torch (:mod:`._torch`), TF32 off.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np

Precision = Literal["float64", "float32"]
PRECISIONS: tuple[str, ...] = ("float64", "float32")
# Measured on a 2-core AVX-512 EPYC (bench/results/ad.md): 2048 rows fill L3 with the block and
# its operands and keep OpenBLAS at its GEMM peak; 1024 loses ~30 %, 4096 gains nothing.
DEFAULT_BLOCK_CPU = 2048
DEFAULT_BLOCK_CUDA = 8192
AUTO_FLOAT64_WORK = 2**30  # n²·d at or below which precision "auto" picks float64
ProgressFn = Callable[[int, int], None]


def torch_module() -> Any:
    """The torch module if the process already imported it, else None (never imports it)."""
    return sys.modules.get("torch")


def is_tensor(a: object) -> bool:
    torch = torch_module()
    return torch is not None and isinstance(a, torch.Tensor)


def _as_array(a: object, field: str) -> Any:
    if isinstance(a, np.ndarray) or is_tensor(a):
        return a
    try:
        return np.asarray(a)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{field}: cannot read as an n×d array ({e}); pass a numpy array") from e


def _is_float(a: Any) -> bool:
    if is_tensor(a):
        return bool(a.is_floating_point())
    return bool(np.issubdtype(a.dtype, np.floating))


_HOST_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


@dataclass(frozen=True)
class Source:
    """Validated shapes of a pair of embedding matrices; rows are read (and checked) lazily."""

    image: Any  # np.ndarray (incl. np.memmap) or torch.Tensor
    text: Any
    n: int
    d: int

    @property
    def streaming(self) -> bool:
        """True for memory-mapped input: read block by block, never materialised."""
        return isinstance(self.image, np.memmap) or isinstance(self.text, np.memmap)

    def rows(self, sel: slice | np.ndarray, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
        """Rows ``(x, y)`` of the selection as host arrays in ``dtype``, not normalised."""
        return host_rows(self.image, sel, dtype), host_rows(self.text, sel, dtype)


def host_rows(a: Any, sel: slice | np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Only the selected rows are read (a memmap stays on disk otherwise), as a C-contiguous
    ``dtype`` array (float32 → float64 widening is exact)."""
    if is_tensor(a):
        t = a.detach()[sel if isinstance(sel, slice) else np.asarray(sel)]
        torch = torch_module()
        t = t.to(device="cpu", dtype=torch.float64 if dtype == np.float64 else torch.float32)
        return np.ascontiguousarray(t.numpy())
    block = a[sel]
    return np.ascontiguousarray(block, dtype=dtype)


def first_bad_row(bad: np.ndarray, sel: slice | np.ndarray) -> tuple[int, int]:
    """(row in block, row in the dataset) of the first True in ``bad``."""
    k = int(np.flatnonzero(bad)[0])
    return k, int(sel[k]) if isinstance(sel, np.ndarray) else (sel.start or 0) + k


def checked_norms(
    sq: np.ndarray, raw: Callable[[int], np.ndarray], field: str, sel: slice | np.ndarray
) -> np.ndarray:
    """L2 norms (rows,) float64 from squared norms ``sq``; ValueError naming the row for NaN/inf,
    overflow or a zero vector. ``raw(k)`` returns row k of the block (to tell NaN from overflow)."""
    norm = np.sqrt(np.asarray(sq, dtype=np.float64))
    bad = ~np.isfinite(norm)  # NaN/inf anywhere in a row → non-finite norm
    if bad.any():
        k, row = first_bad_row(bad, sel)
        if not np.isfinite(raw(k)).all():
            raise ValueError(f"{field}: row {row} contains NaN or inf; fix or drop that pair")
        raise ValueError(f"{field}: row {row} is too large to normalise (overflow); rescale it")
    if not (norm > 0).all():
        _, row = first_bad_row(~(norm > 0), sel)
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


def _nvidia_driver() -> bool:
    return os.path.exists("/proc/driver/nvidia/version")


def resolve_device(device: Any, source: Source) -> str:
    """``"cpu"`` or ``"cuda[:k]"``. ``None``: the CUDA device of tensor inputs, else CUDA when
    available, else CPU. torch is imported only to answer that question on a machine with an
    NVIDIA driver, or when it is already loaded."""
    if device is None:
        for a in (source.image, source.text):
            if is_tensor(a) and a.device.type == "cuda":
                return str(a.device)
        if torch_module() is None and not _nvidia_driver():
            return "cpu"
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    name = str(device)
    if name == "cpu":
        return "cpu"
    if not name.startswith("cuda"):
        raise ValueError(f"device: {device!r} is not supported; use 'cpu' or 'cuda'")
    import torch

    try:
        dev = torch.device(name)
    except RuntimeError as e:
        raise ValueError(f"device: {e}; use 'cpu' or 'cuda'") from e
    if not torch.cuda.is_available():
        raise ValueError("device: 'cuda' requested but no CUDA device is available; use 'cpu'")
    return str(dev)


def resolve_precision(precision: str | None, device: str, n: int, d: int) -> Precision:
    """GEMM dtype. None ("auto"): float32 on CUDA (TF32 off); on CPU float64 while n²·d ≤
    ``AUTO_FLOAT64_WORK``, float32 above (see the module docstring for the error bound)."""
    if precision is None:
        if device.startswith("cuda"):
            return "float32"
        return "float64" if n * n * d <= AUTO_FLOAT64_WORK else "float32"
    if precision not in PRECISIONS:
        raise ValueError(f"precision: {precision!r} is not one of {PRECISIONS}")
    return "float64" if precision == "float64" else "float32"


def default_block(device: str) -> int:
    return DEFAULT_BLOCK_CUDA if device.startswith("cuda") else DEFAULT_BLOCK_CPU


def check_block(block: int | None, device: str) -> int:
    if block is None:
        return default_block(device)
    if isinstance(block, bool) or not isinstance(block, int) or block < 1:
        raise ValueError(f"block: must be a positive integer (rows per block), got {block!r}")
    return block


@contextlib.contextmanager
def compute_context(threads: int | None = None) -> Iterator[None]:
    """BLAS (and torch, if loaded) on ``threads`` threads (default all cores); true fp32 matmuls
    in torch (TF32 off). Everything is restored on exit."""
    count = max(1, threads or os.cpu_count() or 1)
    with contextlib.ExitStack() as stack:
        try:
            from threadpoolctl import threadpool_limits

            stack.enter_context(threadpool_limits(count, user_api="blas"))
        except ImportError:  # optional: without it OpenBLAS uses its own default (all cores)
            pass
        torch = torch_module()
        if torch is not None:
            old_threads = torch.get_num_threads()
            old_precision = torch.get_float32_matmul_precision()
            torch.set_num_threads(count)
            torch.set_float32_matmul_precision("highest")  # disables TF32 (10-bit mantissa)

            def restore() -> None:
                torch.set_num_threads(old_threads)
                torch.set_float32_matmul_precision(old_precision)

            stack.callback(restore)
        yield


def block_ranges(n: int, block: int) -> list[tuple[int, int]]:
    return [(a, min(a + block, n)) for a in range(0, n, block)]


class Prepared(Protocol):
    """What the exact and sampled paths need from a first pass over the data."""

    n: int
    s: np.ndarray  # (n,) float64 matched cosines, clipped to [-1, 1]

    def structure_sum(
        self, row_sums: bool = False, on_step: ProgressFn | None = None
    ) -> tuple[float, np.ndarray | None]: ...

    def pair_values(self, i: np.ndarray, j: np.ndarray) -> np.ndarray: ...


class HostPrepared:
    """numpy backend. Validates every row and computes ``s`` (n,) float64 and the inverse norms;
    unless streaming, keeps ``Z = [X | Y]`` normalised (n×2d, compute dtype). Later passes
    re-read rows and reuse the norms (no re-validation).

    ``collect`` (sorted unique row indices) keeps those rows, normalised, while the one
    sequential pass has their block in cache: the sampled estimator then needs no random reads
    of a memmap. The pass runs on ``workers`` threads over contiguous row ranges (numpy releases
    the GIL in einsum), so a streamed file is still read front to back in each range.
    """

    def __init__(
        self,
        source: Source,
        precision: Precision,
        block: int,
        keep: bool,
        collect: np.ndarray | None = None,
        workers: int = 1,
    ) -> None:
        self.source, self.block = source, block
        self.dtype = np.dtype(np.float64 if precision == "float64" else np.float32)
        self.n = n = source.n
        d = source.d
        self.s = np.empty(n, dtype=np.float64)
        self.rx = np.empty(n, dtype=np.float64)  # 1/|x_i|
        self.ry = np.empty(n, dtype=np.float64)  # 1/|y_i|
        self.z: np.ndarray | None = np.empty((n, 2 * d), self.dtype) if keep else None
        self.kept = collect
        self.kept_z = np.empty((len(collect), 2 * d), self.dtype) if collect is not None else None
        ranges = block_ranges(n, block)
        if workers > 1 and len(ranges) >= 4 * workers:
            from concurrent.futures import ThreadPoolExecutor

            def run(ks: np.ndarray) -> None:
                for k in ks:
                    self._first_pass(*ranges[k])

            parts = np.array_split(np.arange(len(ranges)), workers)
            with ThreadPoolExecutor(workers) as ex:  # results in order: the first bad row wins
                list(ex.map(run, parts))
        else:
            for a, b in ranges:
                self._first_pass(a, b)
        np.clip(self.s, -1.0, 1.0, out=self.s)
        self.sign = np.ones(2 * d, dtype=self.dtype)
        self.sign[d:] = -1.0

    def _first_pass(self, a: int, b: int) -> None:
        sel = slice(a, b)
        x, y = self.source.rows(sel, self.dtype)
        sx, sy = _row_dots(x, x), _row_dots(y, y)
        if self.dtype != np.float64 and not (_in_range(sx) and _in_range(sy)):
            x, y = self.source.rows(sel, np.dtype(np.float64))  # extreme magnitudes: float64
            sx, sy = _row_dots(x, x), _row_dots(y, y)
        rx = 1.0 / checked_norms(sx, lambda k: x[k], "image_emb", sel)
        ry = 1.0 / checked_norms(sy, lambda k: y[k], "text_emb", sel)
        self.rx[a:b], self.ry[a:b] = rx, ry
        self.s[a:b] = _row_dots(x, y) * rx * ry
        if self.z is not None:
            self._normalise(x, y, a, b, out=self.z[a:b])
        if self.kept is not None and self.kept_z is not None:
            lo, hi = np.searchsorted(self.kept, [a, b])
            if hi > lo:
                rows = self.kept[lo:hi] - a
                self._normalise(x[rows], y[rows], a, b, out=self.kept_z[lo:hi], sel=rows)

    def _normalise(
        self,
        x: np.ndarray,
        y: np.ndarray,
        a: int,
        b: int,
        out: np.ndarray | None = None,
        sel: np.ndarray | None = None,
    ) -> np.ndarray:
        """[x·rx | y·ry] for rows a..b (or rows ``a + sel`` of them) in the compute dtype."""
        d = self.source.d
        rx, ry = self.rx[a:b], self.ry[a:b]
        if sel is not None:
            rx, ry = rx[sel], ry[sel]
        if out is None:
            out = np.empty((len(x), 2 * d), self.dtype)
        if x.dtype == self.dtype:  # same-dtype multiply: numpy's casting path is ~20× slower
            np.multiply(x, rx.astype(self.dtype)[:, None], out=out[:, :d])
            np.multiply(y, ry.astype(self.dtype)[:, None], out=out[:, d:])
        else:  # float64 rows of extreme magnitude: scale in float64, then round
            np.multiply(x, rx[:, None], out=out[:, :d], casting="unsafe")
            np.multiply(y, ry[:, None], out=out[:, d:], casting="unsafe")
        return out

    def z_rows(self, a: int, b: int) -> np.ndarray:
        """Z rows a..b (normalised [x | y]) in the compute dtype."""
        if self.z is not None:
            return self.z[a:b]
        x, y = self.source.rows(slice(a, b), self.dtype)
        return self._normalise(x, y, a, b)

    def structure_sum(
        self, row_sums: bool = False, on_step: ProgressFn | None = None
    ) -> tuple[float, np.ndarray | None]:
        """``Σ_{i≠j} |cos(x_i,x_j) − cos(y_i,y_j)|`` over upper-triangular blocks (symmetry).

        Returns the float64 total and, if ``row_sums``, r (n,) with ``r_i = Σ_{j≠i} |…|``.
        """
        ranges = block_ranges(self.n, self.block)
        side = min(self.block, self.n)
        buf = np.empty((side, side), dtype=self.dtype)  # reused: no fresh pages per block
        w_buf = np.empty((side, 2 * self.source.d), dtype=self.dtype)
        total = 0.0
        r = np.zeros(self.n, dtype=np.float64) if row_sums else None
        steps, done = len(ranges) * (len(ranges) + 1) // 2, 0
        for bi, (a, b) in enumerate(ranges):
            z_i = self.z_rows(a, b)
            for c, e in ranges[bi:]:
                w_j = np.multiply(
                    z_i if c == a else self.z_rows(c, e), self.sign, out=w_buf[: e - c]
                )
                g = buf[: b - a, : e - c]
                np.matmul(z_i, w_j.T, out=g)  # G_x − G_y for block (I, J): the O(n²·d) work
                np.abs(g, out=g)
                if c == a:
                    np.fill_diagonal(g, 0.0)  # i = j is excluded (and is 0 up to rounding)
                rows = g.sum(axis=1).astype(np.float64)  # pairwise over ≤ block columns
                part = float(rows.sum())
                total += part if c == a else 2.0 * part  # block (J, I) is the transpose
                if r is not None:
                    r[a:b] += rows
                    if c != a:
                        r[c:e] += np.add.reduce(g, axis=0, dtype=np.float64)
                done += 1
                if on_step is not None:
                    on_step(done, steps)
        if r is not None:  # the total is the sum of the per-pair sums (they add up exactly)
            total = float(r.sum())
        return total, r

    def pair_values(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """v_k = |cos(x_i,x_j) − cos(y_i,y_j)| (float64) for index arrays i, j (m,)."""
        if self.kept is not None and self.kept_z is not None:
            d = self.source.d
            zi = self.kept_z[np.searchsorted(self.kept, i)]
            zj = self.kept_z[np.searchsorted(self.kept, j)]
            return np.abs(_row_dots(zi[:, :d], zj[:, :d]) - _row_dots(zi[:, d:], zj[:, d:]))
        if self.z is not None:
            return np.abs(_row_dots(self.z[i], self.z[j] * self.sign))
        xi, yi = self._take(i)
        xj, yj = self._take(j)
        cx = _row_dots(xi, xj) * self.rx[i] * self.rx[j]
        cy = _row_dots(yi, yj) * self.ry[i] * self.ry[j]
        return np.abs(cx - cy)

    def _take(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not self.source.streaming:
            return self.source.rows(idx, self.dtype)
        uniq, inv = np.unique(idx, return_inverse=True)  # sorted reads are memmap-friendly
        x, y = self.source.rows(uniq, self.dtype)
        return x[inv], y[inv]


def _row_dots(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Row-wise dot products (rows,) as float64, accumulated in the inputs' dtype."""
    return np.einsum("ij,ij->i", u, v).astype(np.float64, copy=False)


def _in_range(sq: np.ndarray) -> bool:
    """Squared norms computed in float32 are usable (no overflow to inf, no underflow to 0)."""
    return bool(np.all((sq > 1e-30) & (sq < 1e30)))
