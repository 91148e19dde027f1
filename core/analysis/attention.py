"""Cross-attention maps: which image regions each prompt token attends to.

A :class:`RecordingAttnProcessor` (a diffusers ``AttnProcessor`` subclass, installed with
``unet.set_attn_processor``; nothing is monkey-patched) stores the softmax probabilities
``softmax(QKᵀ/√d)`` of every cross-attention layer (``attn2``) at every denoising step. Maps are
averaged over heads, layers and steps for the conditional half of the classifier-free-guidance
batch, upsampled to image resolution and returned per token.

A pack's levels keep their fine-tuned weights (core.results.weights); :func:`level_model` puts one
level's weights on the base they were trained on, so a clean and a poisoned level can be compared
map by map, and :func:`default_comparison` picks the level worth looking at first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention, AttnProcessor


class RecordingAttnProcessor(AttnProcessor):
    """Plain attention (same maths as ``AttnProcessor``) that also accumulates cross-attention
    probabilities of batch element ``record_index`` into ``self.store``.

    store: {"sum": (T, S, S) float64 tensor, "count": int}; S is the output size.
    """

    def __init__(self, store: dict[str, Any], size: int, record_index: int = 1) -> None:
        super().__init__()
        self.store = store
        self.size = size
        self.record_index = record_index

    def __call__(  # type: ignore[override]
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> torch.Tensor:
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch_size, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch_size, channel, height * width).transpose(1, 2)
        is_cross = encoder_hidden_states is not None
        batch_size, sequence_length, _ = (
            hidden_states.shape if encoder_hidden_states is None else encoder_hidden_states.shape
        )
        if attention_mask is not None:  # (the cross-attention of a MiniLDM is unmasked)
            attention_mask = attn.prepare_attention_mask(
                attention_mask, sequence_length, batch_size
            )
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query = attn.to_q(hidden_states)
        if encoder_hidden_states is None:
            encoder_hidden_states = hidden_states
        elif attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key = attn.to_k(encoder_hidden_states)
        value = attn.to_v(encoder_hidden_states)
        query = attn.head_to_batch_dim(query)
        key = attn.head_to_batch_dim(key)
        value = attn.head_to_batch_dim(value)
        probs = attn.get_attention_scores(query, key, attention_mask)
        if is_cross:
            self._record(probs, attn.heads, batch_size)
        hidden_states = torch.bmm(probs, value)
        hidden_states = attn.batch_to_head_dim(hidden_states)
        hidden_states = attn.to_out[0](hidden_states)
        hidden_states = attn.to_out[1](hidden_states)
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(
                batch_size, channel, height, width
            )
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor

    def _record(self, probs: torch.Tensor, heads: int, batch: int) -> None:
        """probs: (batch·heads, h·w, T) → mean over heads of one batch element, (T, S, S)."""
        if self.record_index >= batch:
            return
        hw, t = probs.shape[1], probs.shape[2]
        side = int(round(hw**0.5))
        p = probs.detach().float().view(batch, heads, hw, t)[self.record_index].mean(0)
        grid = p.transpose(0, 1).reshape(1, t, side, side)
        up = F.interpolate(grid, size=(self.size, self.size), mode="bilinear", align_corners=False)
        acc = up[0].double().cpu()
        self.store["sum"] = acc if self.store.get("sum") is None else self.store["sum"] + acc
        self.store["count"] = int(self.store.get("count", 0)) + 1


def prompt_tokens(ldm: Any, prompt: str) -> tuple[list[str], list[int]]:
    """Word tokens of ``prompt`` and their positions in the padded sequence (specials dropped)."""
    ids = ldm.tokenize([prompt])[0].tolist()
    special = set(ldm.tokenizer.all_special_ids)
    toks = ldm.tokenizer.convert_ids_to_tokens(ids)
    keep = [i for i, tid in enumerate(ids) if tid not in special]
    return [str(toks[i]) for i in keep], keep


def cross_attention_maps(
    ldm: Any, prompt: str, seed: int = 0, steps: int = 20, guidance: float = 3.0
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Generate one image for ``prompt`` and its per-token cross-attention maps.

    Returns (image (S, S, 3) uint8, tokens list[str], maps (n_tokens, S, S) float32), maps
    averaged over heads, attn2 layers and denoising steps of the conditional branch; each map is
    the share of attention the token received at that pixel (values in [0, 1]).
    """
    from core.models.ldm import to_uint8

    size = int(ldm.world.config.image_size)
    tokens, positions = prompt_tokens(ldm, prompt)
    unet = ldm.unet
    original = dict(unet.attn_processors)
    store: dict[str, Any] = {"sum": None, "count": 0}
    procs: dict[str, Any] = {
        name: RecordingAttnProcessor(store, size) if name.endswith("attn2.processor") else proc
        for name, proc in original.items()
    }
    if not any(isinstance(p, RecordingAttnProcessor) for p in procs.values()):
        raise ValueError("this UNet has no cross-attention layers (attn2); nothing to record")
    unet.set_attn_processor(procs)
    try:
        # sample() runs the UNet on [uncond, cond]: batch element 1 is the prompt's branch.
        images = ldm.sample([prompt], seed=seed, steps=steps, guidance=guidance)
    finally:
        unet.set_attn_processor(original)
    if store["sum"] is None:
        raise RuntimeError("no cross-attention was recorded; is the UNet conditioned on text?")
    mean = (store["sum"] / store["count"]).numpy().astype(np.float32)
    return to_uint8(images)[0], tokens, mean[positions]


def level_model(ldm: Any, weights: Any, base_sha256: str | None = None) -> Any:
    """``ldm`` with one level's weights (a validated core.results.weights.LevelWeights) applied
    to a copy of its UNet; ``ldm`` itself is unchanged.

    ``base_sha256``: the base's core.models.adapter.unet_fingerprint if already known (it costs
    one pass over the UNet's weights). ValueError when the weights were trained on another base
    or do not fit this UNet, with the reason.
    """
    from core.models.adapter import unet_fingerprint, with_weights

    sha = base_sha256 or unet_fingerprint(ldm.unet)
    if sha != weights.base_sha256:
        raise ValueError(
            f"C_P {weights.c_p}, seed {weights.seed}: these weights were fine-tuned from another "
            f"base ({weights.base!r}, fingerprint {weights.base_sha256[:12]}…), not this one "
            f"({sha[:12]}…)"
        )
    unet = with_weights(ldm.unet, weights.tensors, weights.params, weights.scale)
    return replace(ldm, unet=unet)


def default_comparison(
    saved: Sequence[tuple[int, int]], n_concepts: int, shown_seed: int
) -> tuple[int, int] | None:
    """The poisoned level to show first among ``saved`` (c_p, seed) pairs: the highest C_P that
    still leaves unpoisoned concepts (where implosion, not only the attack, is visible), in the
    pack's shown seed when it has one; None when no poisoned level (C_P > 0) was saved."""
    poisoned = [(c, s) for c, s in saved if c > 0]
    if not poisoned:
        return None
    open_ = [(c, s) for c, s in poisoned if c < n_concepts] or poisoned
    seeds = sorted({s for _, s in open_})
    seed = shown_seed if shown_seed in seeds else seeds[0]
    return max(c for c, s in open_ if s == seed), seed
