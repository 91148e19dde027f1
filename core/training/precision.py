"""The training compute dtype for this machine: bf16 only where the hardware runs it natively.

bf16 autocast is fast on CUDA (Ampere and later) and on CPUs with native bf16 instructions
(AVX512-BF16 or AMX); elsewhere PyTorch emulates it and a UNet training step runs ~13× slower
than float32 (measured on an AVX2-only EPYC: 6 vs 85 img/s, shipped UNet, batch 64). So the
rule, used by train-base, the mini and real fine-tunes and the run-time estimates:

* ``"fp32"`` / ``"bf16"``: what the user asked for (``--precision``);
* ``"auto"`` (default): bf16 on CUDA devices that support it and on CPUs with native bf16,
  float32 everywhere else. Small convolutional nets (VAE, judge, dual encoder) stay float32 on CPU
  whatever the rule says: they measured slower in bf16 even with native support.

Master weights are always float32; autocast does the low-precision math.
"""

from __future__ import annotations

import contextlib
from typing import Literal, get_args

import torch

Precision = Literal["auto", "fp32", "bf16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)


def check_precision(value: str, field: str = "precision") -> Precision:
    """``value`` as a :data:`Precision`, or ``ValueError`` naming ``field`` and the choices."""
    if value not in PRECISIONS:
        raise ValueError(f"{field} must be one of {', '.join(PRECISIONS)}; got {value!r}")
    return value  # type: ignore[return-value]


def native_bf16(device: torch.device | str) -> bool:
    """Whether ``device`` runs bf16 math natively (not emulated)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if dev.type == "cpu":
        cpu = getattr(torch, "cpu", None)
        checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)
    return False


def compute_dtype(device: torch.device | str, precision: str = "auto") -> torch.dtype:
    """The autocast dtype for training on ``device`` under ``precision`` (see module docstring)."""
    p = check_precision(precision)
    if p == "fp32":
        return torch.float32
    if p == "bf16":
        return torch.bfloat16
    return torch.bfloat16 if native_bf16(device) else torch.float32


def autocast(
    device: torch.device | str, dtype: torch.dtype
) -> contextlib.AbstractContextManager[None]:
    """``torch.autocast`` to ``dtype`` on ``device``, or a no-op for float32."""
    dev = torch.device(device)
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(dev.type, dtype=dtype, enabled=True)


def dtype_name(dtype: torch.dtype) -> str:
    """``"fp32"`` / ``"bf16"`` / ``"fp16"`` for records and logs."""
    return {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}.get(
        dtype, str(dtype)
    )
