"""Which UNet weights a fine-tune updates: ``full``, ``xattn`` (cross-attention) or ``lora``.

* full — every UNet parameter.
* xattn — the Q/K/V/out projections of every cross-attention block (``attn2``): the text→image
  mapping that the implosion paper models as graph alignment.
* lora — low-rank adapters (peft ``LoraConfig``) on those same ``attn2`` projections; the base
  weights stay frozen. :func:`merge_lora_state_dict` folds them back into plain UNet weights.
"""

from __future__ import annotations

from typing import Any, Literal

import torch

Mode = Literal["full", "xattn", "lora"]
MODES: tuple[str, ...] = ("full", "xattn", "lora")
XATTN_TARGETS = ("attn2.to_q", "attn2.to_k", "attn2.to_v", "attn2.to_out.0")


def check_mode(mode: str) -> str:
    """ValueError listing the allowed modes if ``mode`` is unknown."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
    return mode


def setup_trainable(
    unet: torch.nn.Module, mode: str, rank: int = 4, alpha: int | None = None
) -> list[torch.nn.Parameter]:
    """Freeze the UNet, then unfreeze (or, for LoRA, inject and unfreeze) the ``mode`` weights.

    Returns the trainable parameters (float32, as the optimizer needs). Names of LoRA weights
    contain ``lora_A`` / ``lora_B``; only those require grad in ``lora`` mode.
    """
    check_mode(mode)
    if mode == "full":
        unet.requires_grad_(True)
        return [p for p in unet.parameters()]
    unet.requires_grad_(False)
    if mode == "xattn":
        chosen = [p for n, p in unet.named_parameters() if ".attn2." in n]
        if not chosen:
            raise ValueError("mode 'xattn': this UNet has no cross-attention (attn2) layers")
        for p in chosen:
            p.requires_grad_(True)
        return chosen
    from peft import LoraConfig

    if rank < 1:
        raise ValueError(f"lora rank must be ≥ 1, got {rank}")
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha or rank,
        init_lora_weights="gaussian",
        target_modules=list(XATTN_TARGETS),
    )
    unet.add_adapter(config)  # type: ignore[operator]  # diffusers PeftAdapterMixin
    chosen = [p for n, p in unet.named_parameters() if "lora_" in n]
    for p in chosen:
        p.data = p.data.float()
        p.requires_grad_(True)
    return chosen


def trainable_state_dict(unet: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The parameters that require grad (a checkpoint only needs these), on CPU."""
    return {n: p.detach().cpu().clone() for n, p in unet.named_parameters() if p.requires_grad}


def load_trainable_state_dict(unet: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy a :func:`trainable_state_dict` back; KeyError naming the first unknown weight."""
    params = dict(unet.named_parameters())
    with torch.no_grad():
        for n, v in state.items():
            if n not in params:
                raise KeyError(f"checkpoint weight {n!r} not in this UNet (different mode?)")
            params[n].copy_(v.to(params[n].device, params[n].dtype))


def merge_lora_state_dict(unet: torch.nn.Module) -> dict[str, Any]:
    """Plain UNet state dict with every LoRA adapter merged: W ← W + (α/r)·B·A.

    Works on a copy of the weights, so ``unet`` keeps its adapters (training can go on).
    """
    from peft.tuners.lora import LoraLayer

    out: dict[str, torch.Tensor] = {}
    merged: dict[str, torch.Tensor] = {}
    for name, module in unet.named_modules():
        if isinstance(module, LoraLayer):
            base = module.get_base_layer()
            w = base.weight.detach().clone()
            for adapter in module.active_adapters:
                if adapter in module.lora_A:
                    w += module.get_delta_weight(adapter).detach().to(w.dtype)
            merged[f"{name}.base_layer.weight"] = w
    for k, v in unet.state_dict().items():
        if "lora_" in k:
            continue
        v = merged.get(k, v)
        out[k.replace(".base_layer.", ".")] = v.detach().clone()
    return out
