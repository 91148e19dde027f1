"""CUDA backend of the AD engine: the same blocked kernel as :class:`._engine.HostPrepared`, in torch.

Imported only when a CUDA device is used. Rows travel to the device in their stored dtype and are
normalised there in float64; the GEMMs run in the compute dtype with TF32 disabled
(:func:`._engine.compute_context` sets ``float32_matmul_precision("highest")``), so float32 is true
IEEE fp32 and the error analysis of the CPU path holds (every reduction accumulates in float64).
"""

from __future__ import annotations

import numpy as np
import torch

from core.metrics._engine import (
    Precision,
    ProgressFn,
    Source,
    block_ranges,
    checked_norms,
)

_FLOATS = (np.float16, np.float32, np.float64)


class TorchPrepared:
    """First pass on the device: validates rows, keeps ``s`` (n,) float64 on the host and the
    inverse norms on the device; unless streaming, keeps ``Z = [X | Y]`` normalised on the device."""

    def __init__(
        self, source: Source, device: str, precision: Precision, block: int, keep: bool
    ) -> None:
        self.source, self.block = source, block
        self.device = torch.device(device)
        self.dtype = torch.float64 if precision == "float64" else torch.float32
        self.n = n = source.n
        dev = self.device
        s = torch.empty(n, dtype=torch.float64, device=dev)
        self.rx = torch.empty(n, dtype=torch.float64, device=dev)  # 1/|x_i|
        self.ry = torch.empty(n, dtype=torch.float64, device=dev)  # 1/|y_i|
        parts = [self._first_pass(s, a, b, keep) for a, b in block_ranges(n, block)]
        self.s = np.clip(s.cpu().numpy(), -1.0, 1.0)
        self.z: torch.Tensor | None = (
            torch.cat([p for p in parts if p is not None]) if keep else None
        )
        d = source.d
        self.sign = torch.ones(2 * d, dtype=self.dtype, device=dev)
        self.sign[d:] = -1.0

    def _first_pass(self, s: torch.Tensor, a: int, b: int, keep: bool) -> torch.Tensor | None:
        sel = slice(a, b)
        x, y = self.raw(sel)
        nx = torch.linalg.vector_norm(x, dim=1).cpu().numpy() ** 2
        ny = torch.linalg.vector_norm(y, dim=1).cpu().numpy() ** 2
        rx = 1.0 / checked_norms(nx, lambda k: x[k].cpu().numpy(), "image_emb", sel)
        ry = 1.0 / checked_norms(ny, lambda k: y[k].cpu().numpy(), "text_emb", sel)
        self.rx[a:b] = torch.from_numpy(rx).to(self.device)
        self.ry[a:b] = torch.from_numpy(ry).to(self.device)
        s[a:b] = (x * y).sum(dim=1) * self.rx[a:b] * self.ry[a:b]
        return self._z(x, y, a, b) if keep else None

    def raw(self, sel: slice | np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows ``(x, y)`` of the selection as float64 on the device, not normalised."""
        return self._raw(self.source.image, sel), self._raw(self.source.text, sel)

    def _raw(self, a: object, sel: slice | np.ndarray) -> torch.Tensor:
        if isinstance(a, torch.Tensor):
            idx = sel if isinstance(sel, slice) else torch.as_tensor(sel, device=a.device)
            return a.detach()[idx].to(device=self.device, dtype=torch.float64)
        block = np.asarray(a)[sel]
        if block.dtype not in _FLOATS:  # e.g. longdouble
            block = block.astype(np.float64)
        elif isinstance(block, np.memmap) or not (
            block.flags.writeable and block.flags.c_contiguous
        ):
            block = np.array(block)  # a plain, writable copy of just these rows
        return torch.from_numpy(block).to(device=self.device, dtype=torch.float64)

    def _z(self, x: torch.Tensor, y: torch.Tensor, a: int, b: int) -> torch.Tensor:
        z = torch.cat([x * self.rx[a:b, None], y * self.ry[a:b, None]], dim=1)
        return z.to(self.dtype)

    def z_rows(self, a: int, b: int) -> torch.Tensor:
        if self.z is not None:
            return self.z[a:b]
        x, y = self.raw(slice(a, b))
        return self._z(x, y, a, b)

    def structure_sum(
        self, row_sums: bool = False, on_step: ProgressFn | None = None
    ) -> tuple[float, np.ndarray | None]:
        """As :meth:`._engine.HostPrepared.structure_sum`, on the device."""
        f64, dev = torch.float64, self.device
        ranges = block_ranges(self.n, self.block)
        total = torch.zeros((), dtype=f64, device=dev)
        r = torch.zeros(self.n, dtype=f64, device=dev) if row_sums else None
        steps, done = len(ranges) * (len(ranges) + 1) // 2, 0
        for bi, (a, b) in enumerate(ranges):
            z_i = self.z_rows(a, b)
            for c, e in ranges[bi:]:
                w_j = (z_i if c == a else self.z_rows(c, e)) * self.sign
                g = torch.mm(z_i, w_j.T).abs_()  # |Gx − Gy| for block (I, J)
                if c == a:
                    g.diagonal().zero_()
                rows = g.sum(dim=1, dtype=f64)
                total += rows.sum() if c == a else 2.0 * rows.sum()
                if r is not None:
                    r[a:b] += rows
                    if c != a:
                        r[c:e] += g.sum(dim=0, dtype=f64)
                done += 1
                if on_step is not None:
                    on_step(done, steps)
        return float(total), (r.cpu().numpy() if r is not None else None)

    def pair_values(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """v_k = |cos(x_i,x_j) − cos(y_i,y_j)| (float64, host) for index arrays i, j (m,)."""
        ti = torch.as_tensor(i, device=self.device)
        tj = torch.as_tensor(j, device=self.device)
        if self.z is not None:
            v = (self.z[ti] * (self.z[tj] * self.sign)).sum(dim=1, dtype=torch.float64).abs()
            return v.cpu().numpy()
        xi, yi = self._take(i)
        xj, yj = self._take(j)
        cx = (xi * xj).sum(dim=1) * self.rx[ti] * self.rx[tj]
        cy = (yi * yj).sum(dim=1) * self.ry[ti] * self.ry[tj]
        return (cx - cy).abs().cpu().numpy()

    def _take(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.source.streaming:
            return self.raw(idx)
        uniq, inv = np.unique(idx, return_inverse=True)  # sorted reads are memmap-friendly
        x, y = self.raw(uniq)
        t = torch.as_tensor(inv, device=self.device)
        return x[t], y[t]
