"""Pick the engine backend for a device: numpy on the CPU, torch on CUDA (imported only then)."""

from __future__ import annotations

import os

import numpy as np

from core.metrics._engine import HostPrepared, Precision, Prepared, Source


def prepare(
    source: Source,
    device: str,
    precision: Precision,
    block: int,
    keep: bool,
    collect: np.ndarray | None = None,
    threads: int | None = None,
) -> Prepared:
    """First pass (validation, norms, matched cosines) on the backend for ``device``.

    ``collect``: sorted unique rows to keep normalised for :meth:`Prepared.pair_values` (CPU; the
    CUDA backend gathers them from the device instead). ``threads``: CPU threads for the pass
    (default all cores)."""
    if device.startswith("cuda"):
        from core.metrics._torch import TorchPrepared

        return TorchPrepared(source, device, precision, block, keep)
    workers = max(1, threads or os.cpu_count() or 1)
    return HostPrepared(source, precision, block, keep, collect=collect, workers=workers)
