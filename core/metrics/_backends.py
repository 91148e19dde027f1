"""Pick the engine backend for a device: numpy on the CPU, torch on CUDA (imported only then)."""

from __future__ import annotations

from core.metrics._engine import HostPrepared, Precision, Prepared, Source


def prepare(source: Source, device: str, precision: Precision, block: int, keep: bool) -> Prepared:
    """First pass (validation, norms, matched cosines) on the backend for ``device``."""
    if device.startswith("cuda"):
        from core.metrics._torch import TorchPrepared

        return TorchPrepared(source, device, precision, block, keep)
    return HostPrepared(source, precision, block, keep)
