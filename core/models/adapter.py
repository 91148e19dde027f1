"""A fine-tune's own weights, apart from the base: what a sweep level saves and how it is re-applied.

A level's fine-tune changes few weights of the shared base (core/training/finetune.py): with
``params="lora"`` only rank-r adapters (A: (r, in), B: (out, r)) on the cross-attention
projections (core.models.lora.XATTN_TARGETS), with ``"cross-attention"`` those projections
themselves. Saving just these (kilobytes for rank 1) plus a fingerprint of the base they were
trained on is enough to rebuild the fine-tuned UNet later:

    W_level = W_base + (α / r) · B · A        (LoRA, as peft merges it)
    W_level = W_saved                         (cross-attention)

With ``params="all"`` every UNet weight moved, but only the cross-attention ones are saved (a full
UNet per level would cost megabytes): re-applied, they give the base UNet with the level's
cross-attention, which :data:`COVERS` names so a reader can say so.

Key scheme (the same in every file, independent of peft's adapter name):
``<module>.lora_A.weight`` / ``<module>.lora_B.weight`` for LoRA, ``<module>.weight`` /
``<module>.bias`` otherwise; ``<module>`` is the UNet module path, e.g.
``mid_block.attentions.0.transformer_blocks.0.attn2.to_q``.
"""

from __future__ import annotations

import copy
import hashlib
import re
from typing import Literal

import numpy as np
import torch

from core.models.lora import XATTN_TARGETS

# The fine-tune's ``params`` values (core.training.config.PARAMS) and what a saved file holds.
WeightsKind = Literal["lora", "cross-attention", "all"]
WEIGHTS_KINDS: tuple[str, ...] = ("lora", "cross-attention", "all")
COVERS: dict[str, str] = {
    "lora": "the whole fine-tune (rank-r adapters on the cross-attention projections)",
    "cross-attention": "the whole fine-tune (the cross-attention projections)",
    "all": "the cross-attention projections only (the rest of the fine-tuned UNet is not saved)",
}
_PEFT_NAME = re.compile(r"^(?P<module>.+)\.(?P<ab>lora_[AB])\.[^.]+\.weight$")
_LORA_KEY = re.compile(r"^(?P<module>.+)\.(?P<ab>lora_[AB])\.weight$")


def _is_xattn(module: str) -> bool:
    return any(module.endswith(t) for t in XATTN_TARGETS)


def trained_weights(unet: torch.nn.Module, params: str) -> dict[str, torch.Tensor]:
    """The weights a fine-tune of kind ``params`` trained, before any merge, on CPU (float32).

    lora: every adapter pair, keyed ``<module>.lora_A.weight`` (r, in) / ``.lora_B.weight``
    (out, r); otherwise the cross-attention projections' ``weight`` / ``bias``. ValueError for
    an unknown kind or a UNet that has none of these weights.
    """
    if params not in WEIGHTS_KINDS:
        raise ValueError(f"params must be one of {list(WEIGHTS_KINDS)}, got {params!r}")
    out: dict[str, torch.Tensor] = {}
    for name, p in unet.named_parameters():
        if params == "lora":
            m = _PEFT_NAME.match(name)
            if m is None or not _is_xattn(m["module"]):
                continue
            key = f"{m['module']}.{m['ab']}.weight"
        else:
            module, _, leaf = name.rpartition(".")
            if "lora_" in name or not _is_xattn(module) or leaf not in ("weight", "bias"):
                continue
            key = name.replace(".base_layer.", ".")
        out[key] = p.detach().to("cpu", torch.float32).clone().contiguous()
    if not out:
        raise ValueError(f"params {params!r}: this UNet holds no such trained weights")
    return out


def unet_fingerprint(state: dict[str, torch.Tensor] | torch.nn.Module) -> str:
    """SHA-256 (hex) of a UNet's weights as float32, names and shapes in sorted order.

    Identifies the base a level's weights apply to, whatever file or device it was loaded from
    (the shipped base is stored as fp16 and loaded as float32: the same values either way).
    """
    if isinstance(state, torch.nn.Module):
        state = state.state_dict()
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().to("cpu", torch.float32).contiguous()
        h.update(f"{name}:{tuple(t.shape)};".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def apply_weights(
    unet: torch.nn.Module,
    tensors: dict[str, np.ndarray | torch.Tensor],
    params: str,
    scale: float = 1.0,
) -> None:
    """Put a level's saved weights (:func:`trained_weights` keys) into ``unet`` in place.

    lora: W ← W + scale · B · A for every module (scale = α / r); otherwise the saved tensors
    replace the UNet's. ValueError naming the first key that does not fit this UNet (unknown
    module, wrong shape, an adapter without its pair) before any weight is changed.
    """
    if params not in WEIGHTS_KINDS:
        raise ValueError(f"params must be one of {list(WEIGHTS_KINDS)}, got {params!r}")
    own = dict(unet.named_parameters())
    new: dict[str, torch.Tensor] = {}
    if params == "lora":
        pairs: dict[str, dict[str, torch.Tensor]] = {}
        for key, v in tensors.items():
            m = _LORA_KEY.match(key)
            if m is None or not _is_xattn(m["module"]):
                raise ValueError(f"weights: {key!r} is not a cross-attention LoRA adapter")
            pairs.setdefault(m["module"], {})[m["ab"]] = torch.as_tensor(v, dtype=torch.float32)
        for module, ab in pairs.items():
            target = f"{module}.weight"
            if set(ab) != {"lora_A", "lora_B"}:
                raise ValueError(f"weights: {module} has {sorted(ab)}, needs lora_A and lora_B")
            if target not in own:
                raise ValueError(f"weights: {module} is not a module of this UNet")
            a, b = ab["lora_A"], ab["lora_B"]
            w = own[target]
            if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[1]:
                raise ValueError(
                    f"weights: {module} adapter shapes {tuple(a.shape)}, {tuple(b.shape)}"
                )
            if (b.shape[0], a.shape[1]) != tuple(w.shape):
                raise ValueError(
                    f"weights: {module} adapter gives {(b.shape[0], a.shape[1])}, "
                    f"the UNet's weight is {tuple(w.shape)}"
                )
            delta = (b.to(w.device) @ a.to(w.device)) * float(scale)
            new[target] = w.detach() + delta.to(w.dtype)
    else:
        for key, v in tensors.items():
            if key not in own:
                raise ValueError(f"weights: {key!r} is not a weight of this UNet")
            t = torch.as_tensor(v)
            if tuple(t.shape) != tuple(own[key].shape):
                raise ValueError(
                    f"weights: {key} is {tuple(t.shape)}, the UNet's is {tuple(own[key].shape)}"
                )
            new[key] = t.to(own[key].device, own[key].dtype)
    with torch.no_grad():
        for key, v in new.items():
            own[key].copy_(v)


def with_weights(
    unet: torch.nn.Module,
    tensors: dict[str, np.ndarray | torch.Tensor],
    params: str,
    scale: float = 1.0,
) -> torch.nn.Module:
    """A copy of ``unet`` with a level's weights applied (:func:`apply_weights`); ``unet`` is
    left as it was, so one cached base serves every level."""
    out = copy.deepcopy(unet)
    apply_weights(out, tensors, params, scale)
    return out.eval().requires_grad_(False)


__all__ = [
    "COVERS",
    "WEIGHTS_KINDS",
    "WeightsKind",
    "apply_weights",
    "trained_weights",
    "unet_fingerprint",
    "with_weights",
]
