"""The training compute dtype for this machine: bf16 only where the hardware runs it natively.

bf16 autocast is fast on CUDA (Ampere and later) and on CPUs with native bf16 instructions
(AVX512-BF16 or AMX); elsewhere PyTorch emulates it and a UNet training step runs ~13× slower
than float32 (measured on an AVX2-only EPYC: 6 vs 85 img/s, shipped UNet, batch 64). So the
rule, used by train-base, the mini and real fine-tunes and the run-time estimates:

* ``"fp32"`` / ``"bf16"``: what the user asked for (``--precision``); ``bf16`` on a CPU that
  emulates it is honoured with a warning (:func:`emulated_bf16_warning`), and every sweep record
  says which dtype ran (``finetune_dtype``);
* ``"auto"`` (default): bf16 on CUDA devices that support it; float32 on CPUs without native bf16;
  on CPUs with native bf16, whichever a short measurement (:func:`measure_bf16_speedup`: one
  training step of the model about to train, fp32 vs bf16 autocast, interleaved, best of three)
  finds faster — bf16 only if ≥ 1.15× faster, so ``auto`` is never slower than float32. (A
  conv + attention micro-step measured bf16 2.5× faster on an AVX512-BF16 EPYC where the whole
  mini UNet step was not faster: only the real model tells.) It runs once per machine, torch
  version, thread count and model (a few seconds) and is cached
  in ``$XDG_CACHE_HOME/implosion-lab/precision.json`` (``IMPLOSION_CACHE`` overrides the folder).
  Small convolutional nets (VAE, judge, dual encoder) stay float32 on CPU whatever the rule says:
  they measured slower in bf16 even with native support.

Master weights are always float32; autocast does the low-precision math.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

# the choices live with the light configs; re-exported here beside the rule
from core.training.config import PRECISIONS, Precision, check_precision  # noqa: F401


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


Probe = Callable[[torch.dtype], None]  # one training step of the real model in that dtype


def compute_dtype(
    device: torch.device | str,
    precision: str = "auto",
    probe: Probe | None = None,
    probe_key: str = "",
) -> torch.dtype:
    """The autocast dtype for training on ``device`` under ``precision`` (see module docstring).

    ``probe`` runs one training step of the model about to train in the given dtype; on a CPU with
    native bf16 ``auto`` times it (cached under ``probe_key``) and picks bf16 only if it is at least
    :data:`BF16_MIN_SPEEDUP` × faster. Without a probe such a CPU gets float32 (never slower than
    float32 by construction)."""
    p = check_precision(precision)
    if p == "fp32":
        return torch.float32
    if p == "bf16":
        note = emulated_bf16_warning(device, p)
        if note is not None:  # honoured, but said where the run's log shows it
            warnings.warn(note, RuntimeWarning, stacklevel=2)
        return torch.bfloat16
    if not native_bf16(device):
        return torch.float32
    if torch.device(device).type == "cuda":
        return torch.bfloat16
    if probe is None:
        return torch.float32
    return (
        torch.bfloat16 if cpu_bf16_speedup(probe, probe_key) >= BF16_MIN_SPEEDUP else torch.float32
    )


BF16_MIN_SPEEDUP = 1.15  # bf16 must beat float32 clearly, not within measurement noise


def emulated_bf16_warning(device: torch.device | str, precision: str) -> str | None:
    """The one-line warning for an explicit ``bf16`` request on a CPU that emulates bf16 (None
    otherwise): the run is honoured but several times slower than float32."""
    if check_precision(precision) != "bf16" or torch.device(device).type != "cpu":
        return None
    if native_bf16(device):
        return None
    return (
        "precision bf16: this CPU has no native bf16 (AVX512-BF16 or AMX), so PyTorch emulates "
        "it and training runs several times slower than float32 (~13× measured on AVX2); "
        "use --precision auto or fp32 unless you need bf16 numerics"
    )


def _cache_file() -> Path:
    base = os.environ.get("IMPLOSION_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "implosion-lab"
    )
    return Path(base) / "precision.json"


def _machine_key() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.partition(":")[2].strip()
                    break
    except OSError:
        pass
    return f"{cpu}|torch {torch.__version__}|threads {torch.get_num_threads()}"


def cpu_bf16_speedup(probe: Probe, probe_key: str = "") -> float:
    """float32 time / bf16 time of ``probe`` on this CPU, measured once and cached per machine,
    torch version, thread count and ``probe_key`` (the model). Concurrent processes (sweep level
    workers) wait on a lock file, so they all read the one measurement and train alike."""
    path, key = _cache_file(), f"{_machine_key()}|{probe_key}"

    def read() -> dict[str, Any]:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    cached = read()
    if isinstance(cached.get(key), int | float):
        return float(cached[key])
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = open(path.with_name(path.name + ".lock"), "a")  # noqa: SIM115 (held below)
    except OSError:
        return measure_bf16_speedup(probe)  # read-only cache: measure, do not cache
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        cached = read()
        if isinstance(cached.get(key), int | float):
            return float(cached[key])
        speedup = measure_bf16_speedup(probe)
        cached[key] = round(speedup, 3)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(cached, indent=1))
            os.replace(tmp, path)
        except OSError:
            pass
        return speedup


def unet_step_probe(unet: torch.nn.Module, sample: torch.Tensor, context: torch.Tensor) -> Probe:
    """A :data:`Probe` running one forward + backward of a conditional UNet on ``sample``
    (B, C, H, W) with text states ``context`` (B, L, D); gradients are cleared afterwards."""

    def run(dtype: torch.dtype) -> None:
        t = torch.zeros(sample.shape[0], dtype=torch.long, device=sample.device)
        with autocast(sample.device, dtype):
            out = unet(sample, t, encoder_hidden_states=context).sample.float()
        out.square().mean().backward()
        unet.zero_grad(set_to_none=True)

    return run


def probe_key(module: torch.nn.Module, batch: int) -> str:
    """Cache key of a model's probe: its class, parameter count and batch."""
    n = sum(p.numel() for p in module.parameters())
    return f"{type(module).__name__} {n} params batch {batch}"


def measure_bf16_speedup(probe: Probe, rounds: int = 3) -> float:
    """float32 / bf16 wall time of ``probe``: one warm-up each, then ``rounds`` interleaved timings,
    best of each (interleaving and best-of keep a busy machine's noise out of the ratio)."""
    probe(torch.float32)
    probe(torch.bfloat16)
    best = {torch.float32: float("inf"), torch.bfloat16: float("inf")}
    for _ in range(rounds):
        for dt in best:
            t0 = time.perf_counter()
            probe(dt)
            best[dt] = min(best[dt], time.perf_counter() - t0)
    return best[torch.float32] / best[torch.bfloat16]


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
