"""Tiny random Stable Diffusion / SDXL folders, built offline from config (tests, benchmarks).

Mirrors diffusers' fast tests: a 2-block UNet (32, 64), a 2-block VAE, a 2-layer CLIP text
encoder and a byte-level CLIP BPE tokenizer with no merges (vocab.json + merges.txt, exactly the
files a real SD ``tokenizer/`` holds), saved in the standard layout so loading goes through
:func:`core.models.sd.load_sd` like a downloaded model. :func:`build_tiny_sdxl` adds the SDXL
parts (second tokenizer and projected text encoder, a ``text_time`` UNet).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
TOKENIZERS = ("tokenizer", "tokenizer_2")
BETAS: dict[str, Any] = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"}


def _bytes_to_unicode() -> list[str]:
    """The 256 printable stand-ins GPT-2/CLIP byte-level BPE uses for bytes."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def write_tiny_tokenizer(path: Path, max_length: int = 77, pad: str = EOS) -> int:
    """Write a character-level CLIP tokenizer (vocab.json, merges.txt, configs); returns its
    vocabulary size (514: 256 symbols, 256 end-of-word symbols, BOS, EOS). ``pad``: the padding
    token (SDXL's second tokenizer pads with "!")."""
    path.mkdir(parents=True, exist_ok=True)
    chars = _bytes_to_unicode()
    tokens = chars + [c + "</w>" for c in chars] + [BOS, EOS]
    (path / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (path / "merges.txt").write_text("#version: 0.2\n")
    cfg = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": max_length,
        "bos_token": BOS,
        "eos_token": EOS,
        "pad_token": pad,
        "unk_token": EOS,
        "do_lower_case": True,
    }
    (path / "tokenizer_config.json").write_text(json.dumps(cfg))
    special = {"bos_token": BOS, "eos_token": EOS, "pad_token": pad, "unk_token": EOS}
    (path / "special_tokens_map.json").write_text(json.dumps(special))
    return len(tokens)


def _tiny_text_encoder(vocab: int, hidden: int, projection_dim: int | None = None) -> Any:
    """A 2-layer CLIP text encoder; with ``projection_dim`` a ``CLIPTextModelWithProjection``
    (SDXL's second encoder: pooled ``text_embeds``)."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    cfg = CLIPTextConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        max_position_embeddings=77,
        projection_dim=projection_dim or hidden,
        bos_token_id=vocab - 2,
        eos_token_id=vocab - 1,
        pad_token_id=vocab - 1,
    )
    return CLIPTextModelWithProjection(cfg) if projection_dim else CLIPTextModel(cfg)


def _tiny_vae(resolution: int) -> Any:
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(32, 64),
        layers_per_block=1,
        latent_channels=4,
        sample_size=resolution,
    )


def tiny_unet(resolution: int, cross_attention_dim: int, **extra: Any) -> Any:
    """A random SD-shaped ``UNet2DConditionModel`` for latents of ``resolution // 2`` (tests)."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=resolution // 2,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=cross_attention_dim,
        attention_head_dim=8,
        norm_num_groups=32,
        **extra,
    )


def _save(path: Path, parts: dict[str, Any], sdxl: bool) -> Path:
    """Save each part in its sub-folder, then model_index.json (written last, as a download
    would complete)."""
    from core.models.sd import model_index

    for name, part in parts.items():
        part.save_pretrained(str(path / name))
    classes = {t: "CLIPTokenizer" for t in TOKENIZERS if (path / t).is_dir()}
    classes |= {k: type(v).__name__ for k, v in parts.items()}
    (path / "model_index.json").write_text(json.dumps(model_index(classes, sdxl), indent=2))
    return path


def build_tiny_sd(
    path: Path,
    resolution: int = 32,
    hidden: int = 32,
    seed: int = 0,
    scheduler: str = "pndm",
    prediction_type: str = "epsilon",
) -> Path:
    """Write a tiny random SD folder at ``path`` (about 2 M parameters; seconds on a CPU).

    resolution: image size in pixels (latents are resolution/2: the VAE has two blocks).
    hidden: text width = UNet cross_attention_dim. scheduler: "pndm" (as SD ships) or "ddim".
    """
    from diffusers import DDIMScheduler, PNDMScheduler

    path = Path(path)
    torch.manual_seed(seed)
    vocab = write_tiny_tokenizer(path / "tokenizer")
    text_encoder = _tiny_text_encoder(vocab, hidden)
    vae = _tiny_vae(resolution)
    unet = tiny_unet(resolution, hidden)
    sched = (
        PNDMScheduler(**BETAS, skip_prk_steps=True, steps_offset=1, prediction_type=prediction_type)
        if scheduler == "pndm"
        else DDIMScheduler(**BETAS, clip_sample=False, prediction_type=prediction_type)
    )
    parts = {"text_encoder": text_encoder, "vae": vae, "unet": unet, "scheduler": sched}
    return _save(path, parts, sdxl=False)


def build_tiny_sdxl(
    path: Path,
    resolution: int = 32,
    hidden: tuple[int, int] = (32, 48),
    projection_dim: int = 24,
    time_embed_dim: int = 8,
    seed: int = 0,
) -> Path:
    """Write a tiny random SDXL base folder at ``path`` (StableDiffusionXLPipeline layout).

    Two text encoders of widths ``hidden`` (the second a CLIPTextModelWithProjection with
    ``projection_dim``), a UNet with ``addition_embed_type="text_time"``, cross_attention_dim =
    hidden₁ + hidden₂ and projection_class_embeddings_input_dim = projection_dim + 6 ×
    ``time_embed_dim``; Euler scheduler config and ``force_zeros_for_empty_prompt`` as SDXL ships.
    """
    from diffusers import EulerDiscreteScheduler

    path = Path(path)
    torch.manual_seed(seed)
    vocab = write_tiny_tokenizer(path / "tokenizer")
    write_tiny_tokenizer(path / "tokenizer_2", pad="!")
    unet = tiny_unet(
        resolution,
        sum(hidden),
        addition_embed_type="text_time",
        addition_time_embed_dim=time_embed_dim,
        projection_class_embeddings_input_dim=projection_dim + 6 * time_embed_dim,
        use_linear_projection=True,
    )
    parts = {
        "text_encoder": _tiny_text_encoder(vocab, hidden[0]),
        "text_encoder_2": _tiny_text_encoder(vocab, hidden[1], projection_dim),
        "vae": _tiny_vae(resolution),
        "unet": unet,
        "scheduler": EulerDiscreteScheduler(**BETAS, steps_offset=1, timestep_spacing="leading"),
    }
    return _save(path, parts, sdxl=True)


def build_tiny_clip(path: Path, image_size: int = 32, seed: int = 0) -> Path:
    """A tiny random transformers CLIPModel + CLIPProcessor folder (for the CLIP metrics)."""
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPProcessor,
        CLIPTokenizer,
    )

    path = Path(path)
    torch.manual_seed(seed)
    vocab = write_tiny_tokenizer(path / "_tok")
    tok = CLIPTokenizer.from_pretrained(str(path / "_tok"))
    text = {
        "vocab_size": vocab,
        "hidden_size": 32,
        "intermediate_size": 37,
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "bos_token_id": vocab - 2,
        "eos_token_id": vocab - 1,
        "pad_token_id": vocab - 1,
    }
    vision = {
        "hidden_size": 32,
        "intermediate_size": 37,
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "image_size": image_size,
        "patch_size": 8,
    }
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16))
    proc = CLIPProcessor(
        image_processor=CLIPImageProcessor(
            size={"shortest_edge": image_size},
            crop_size={"height": image_size, "width": image_size},
        ),
        tokenizer=tok,
    )
    model.save_pretrained(str(path))
    proc.save_pretrained(str(path))
    return path
