"""Helpers shared by the training loops: batching, EMA, schedules, NaN guard."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
from diffusers.optimization import get_cosine_schedule_with_warmup


def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """θ_ema ← decay · θ_ema + (1 − decay) · θ (in place, fused over all tensors)."""
    e: list[torch.Tensor] = list(ema.parameters())
    m: list[torch.Tensor] = [p.detach() for p in model.parameters()]
    torch._foreach_lerp_(e, m, 1 - decay)


def warmup_cosine(
    optimizer: torch.optim.Optimizer, total: int
) -> torch.optim.lr_scheduler.LambdaLR:
    return get_cosine_schedule_with_warmup(optimizer, min(200, max(1, total // 10)), max(1, total))


def clone_for_ema(model: torch.nn.Module) -> torch.nn.Module:
    ema = copy.deepcopy(model)
    ema.requires_grad_(False)
    return ema


def batches(n: int, batch: int, g: torch.Generator) -> Callable[[], torch.Tensor]:
    """Endless shuffled index batches over n items."""
    perm = torch.randperm(n, generator=g)
    pos = [0]

    def nxt() -> torch.Tensor:
        nonlocal perm
        if pos[0] + batch > n:
            perm = torch.randperm(n, generator=g)
            pos[0] = 0
        idx = perm[pos[0] : pos[0] + batch]
        pos[0] += batch
        return idx

    return nxt


def lr_ok(x: float) -> float:
    if not math.isfinite(x):
        raise FloatingPointError("loss became NaN/inf; lower the learning rate (--lr)")
    return x
