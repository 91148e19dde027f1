"""The SDXL family: a second text encoder, pooled text embeddings and size conditioning.

An SDXL base folder (``StableDiffusionXLPipeline``) holds, besides the SD layout,
``tokenizer_2/`` and ``text_encoder_2/`` (a ``CLIPTextModelWithProjection``, OpenCLIP
ViT-bigG in SDXL 1.0), and its UNet has ``addition_embed_type="text_time"``. The UNet is
conditioned as diffusers' ``StableDiffusionXLPipeline.encode_prompt`` / ``_get_add_time_ids`` do
(Podell et al. 2023, §2.2):

* context c = [h₁⁽ᴸ⁻¹⁾ ; h₂⁽ᴸ⁻¹⁾]: the penultimate hidden states of both encoders, concatenated
  on the feature axis (N, 77, D₁ + D₂) — 768 + 1280 = 2048 for SDXL 1.0;
* ``text_embeds`` (N, P): encoder 2's projected pooled output (P = 1280);
* ``time_ids`` (N, 6) = (original h, w, crop top, crop left, target h, target w), here always
  (s, s, 0, 0, s, s) at the training / sampling resolution s (images are resized and
  centre-cropped to s before encoding, so "original" = target and the crop is unseen).

With ``force_zeros_for_empty_prompt`` (model_index.json; true for SDXL base) the empty prompt
is all zeros — the unconditional branch SDXL was trained with — in sampling *and* in the caption
dropout of fine-tuning, so both sides of classifier-free guidance stay consistent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from core.models.sampling import Conditioning

SDXL_PARTS = ("tokenizer_2", "text_encoder_2")
N_TIME_IDS = 6  # original size (2) + crop top-left (2) + target size (2)
HOW_TO_GET_SDXL = (
    "download the SDXL base in diffusers format on a machine with network (e.g. "
    "`huggingface-cli download stabilityai/stable-diffusion-xl-base-1.0 --local-dir DIR "
    '--include "model_index.json" "tokenizer*/*" "text_encoder*/*" "vae/*" "unet/*" '
    '"scheduler/*" --exclude "*.bin" "*fp16*"`), copy it here and pass --model DIR'
)


def is_sdxl_folder(path: Path, index: dict[str, Any]) -> bool:
    """True if model_index.json, the sub-folders or the UNet config say SDXL."""
    if any(k in index for k in SDXL_PARTS) or "XL" in str(index.get("_class_name", "")):
        return True
    if any((path / k).is_dir() for k in SDXL_PARTS):
        return True
    try:
        unet = json.loads((path / "unet" / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return unet.get("addition_embed_type") == "text_time"


def check_sdxl_folder(path: Path, index: dict[str, Any]) -> None:
    """ValueError for an SDXL folder that cannot work here (a refiner; a missing second text
    encoder or tokenizer), naming the part and what to put there."""
    listed_none = [k for k in ("text_encoder", "tokenizer") if index.get(k, [1])[0] is None]
    if index.get("requires_aesthetics_score") or listed_none:
        raise ValueError(
            f"model {path}: an SDXL refiner (img2img only: no first text encoder, "
            f"aesthetic-score conditioning) is not supported; use the SDXL base. "
            f"{HOW_TO_GET_SDXL}"
        )
    for part, what in (
        ("text_encoder_2", "the CLIPTextModelWithProjection (config.json + model.safetensors)"),
        ("tokenizer_2", "the second CLIPTokenizer (vocab.json, merges.txt, configs)"),
    ):
        if not (path / part).is_dir() or (
            part == "text_encoder_2" and not (path / part / "config.json").is_file()
        ):
            raise FileNotFoundError(
                f"model {path}: SDXL folder without {part}/ — put {what} of the same SDXL "
                f"checkpoint there (SDXL needs both text encoders); {HOW_TO_GET_SDXL}"
            )


def load_sdxl_text(root: str, dtype: torch.dtype) -> tuple[Any, Any]:
    """(tokenizer_2, text_encoder_2) of an SDXL folder or hub id."""
    from transformers import CLIPTextModelWithProjection, CLIPTokenizer

    tokenizer_2 = CLIPTokenizer.from_pretrained(root, subfolder="tokenizer_2")
    text_encoder_2 = CLIPTextModelWithProjection.from_pretrained(
        root, subfolder="text_encoder_2", dtype=dtype
    )
    return tokenizer_2, text_encoder_2


def check_sdxl_components(
    text_encoder: Any, text_encoder_2: Any, tokenizers: tuple[Any, Any], unet: Any, src: str
) -> None:
    """ValueError if the SDXL parts do not fit: context width D₁ + D₂, the added-embedding
    input P + 6·addition_time_embed_dim (5 ids = a refiner), equal token lengths."""
    d1, d2 = int(text_encoder.config.hidden_size), int(text_encoder_2.config.hidden_size)
    if int(unet.config.cross_attention_dim) != d1 + d2:
        raise ValueError(
            f"model {src}: unet cross_attention_dim {unet.config.cross_attention_dim} ≠ "
            f"text_encoder + text_encoder_2 hidden sizes {d1} + {d2}; take unet/, text_encoder/ "
            f"and text_encoder_2/ from the same SDXL checkpoint (SDXL 1.0: 768 + 1280 = 2048)"
        )
    if unet.config.addition_embed_type != "text_time":
        raise ValueError(
            f"model {src}: has text_encoder_2/ but the unet has addition_embed_type "
            f"{unet.config.addition_embed_type!r}, not 'text_time'; use an SDXL base unet/"
        )
    proj = int(text_encoder_2.config.projection_dim)
    per_id = int(unet.config.addition_time_embed_dim)
    got = int(unet.config.projection_class_embeddings_input_dim)
    if got != proj + N_TIME_IDS * per_id:
        raise ValueError(
            f"model {src}: unet projection_class_embeddings_input_dim {got} ≠ text_encoder_2 "
            f"projection_dim {proj} + 6 size ids × {per_id} (a refiner unet uses 5 ids with "
            f"an aesthetic score, which is not supported); use the SDXL base unet/"
        )
    lengths = {int(t.model_max_length) for t in tokenizers}
    if len(lengths) != 1:
        raise ValueError(
            f"model {src}: tokenizer/ and tokenizer_2/ pad to different lengths {sorted(lengths)}"
            f"; set the same model_max_length (77 for SDXL) in both tokenizer_config.json"
        )


def add_time_ids(size: int, n: int, device: torch.device) -> torch.Tensor:
    """(n, 6) float32 ``time_ids`` = (size, size, 0, 0, size, size): a size × size image,
    uncropped, generated at size × size (``StableDiffusionXLPipeline._get_add_time_ids``)."""
    ids = torch.tensor([[size, size, 0, 0, size, size]], dtype=torch.float32, device=device)
    return ids.expand(n, N_TIME_IDS)


@torch.no_grad()
def sdxl_conditioning(sd: Any, prompts: list[str], size: int) -> Conditioning:
    """Context (N, 77, D₁ + D₂), ``text_embeds`` (N, P) and ``time_ids`` (N, 6) of ``prompts``
    for images of ``size`` pixels; empty prompts are zeros if ``sd.force_zeros_for_empty_prompt``.
    """
    states = []
    for tokenizer, encoder in (
        (sd.tokenizer, sd.text_encoder),
        (sd.tokenizer_2, sd.text_encoder_2),
    ):
        out = encoder(input_ids=sd.tokenize(prompts, tokenizer), output_hidden_states=True)
        states.append(out.hidden_states[-2])
    context, pooled = torch.cat(states, dim=-1), out.text_embeds
    if sd.force_zeros_for_empty_prompt:
        keep = torch.tensor([p != "" for p in prompts], device=context.device)
        context = context * keep[:, None, None].to(context.dtype)
        pooled = pooled * keep[:, None].to(pooled.dtype)
    time_ids = add_time_ids(size, len(prompts), context.device)
    return Conditioning(context, {"text_embeds": pooled, "time_ids": time_ids})
