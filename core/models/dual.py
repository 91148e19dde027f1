"""Embedders for AD and alignment scores: the built-in dual encoder or a local CLIP.

Both expose ``encode_images(list[PIL.Image]) -> (n, d) float32`` and
``encode_texts(list[str]) -> (n, d) float32``, L2-normalised (the interface core.metrics.folder
expects).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch


class MiniEmbedder:
    """The mini model's CLIP (joint space of the shipped base). Unknown words raise ValueError."""

    def __init__(self, model_dir: Path | None = None) -> None:
        from core.io import default_base
        from core.models.ldm import MiniLDM

        self.ldm = MiniLDM.from_pretrained(model_dir or default_base())
        self.size = self.ldm.world.config.image_size

    @torch.no_grad()
    def encode_images(self, images: list[Any]) -> np.ndarray:
        arr = np.stack(
            [np.asarray(im.convert("RGB").resize((self.size, self.size))) for im in images]
        )
        x = torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 127.5 - 1
        return self.ldm.image_embeds(x).cpu().numpy()

    @torch.no_grad()
    def encode_texts(self, texts: list[str]) -> np.ndarray:
        from core.models.tokenizer import check_prompts

        return self.ldm.text_embeds(check_prompts(self.ldm.tokenizer, texts)).cpu().numpy()


class ClipEmbedder:
    """A transformers ``CLIPModel`` + ``CLIPProcessor`` from a local folder (e.g. ViT-B/32)."""

    def __init__(self, path: Path, device: str = "cpu") -> None:
        from transformers import CLIPModel, CLIPProcessor

        path = Path(path)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"--clip {path}: no config.json; download a CLIP in transformers format (e.g. "
                f"openai/clip-vit-base-patch32) on a machine with network and copy the folder here"
            )
        from core.io import check_safetensors

        check_safetensors(path, f"--clip {path}")  # weights load as safetensors only
        try:
            self.model = CLIPModel.from_pretrained(str(path), use_safetensors=True)
            self.processor = CLIPProcessor.from_pretrained(str(path))
        except Exception as e:  # noqa: BLE001 — corrupt weights raise SafetensorError, OSError…
            raise ValueError(
                f"--clip {path}: cannot load this CLIP folder ({type(e).__name__}: "
                f"{str(e)[:160]}); re-download it (transformers format, model.safetensors)"
            ) from e
        self.model = self.model.to(device).eval()
        self.device = device

    @torch.no_grad()
    def encode_images(self, images: list[Any]) -> np.ndarray:
        px = self.processor(
            images=[im.convert("RGB") for im in images], return_tensors="pt"
        ).pixel_values
        z = self.model.visual_projection(
            self.model.vision_model(pixel_values=px.to(self.device)).pooler_output
        )
        return torch.nn.functional.normalize(z, dim=-1).cpu().numpy()

    @torch.no_grad()
    def encode_texts(self, texts: list[str]) -> np.ndarray:
        enc = self.processor(text=texts, return_tensors="pt", padding=True, truncation=True)
        out = self.model.text_model(
            input_ids=enc.input_ids.to(self.device),
            attention_mask=enc.attention_mask.to(self.device),
        )
        z = self.model.text_projection(out.pooler_output)
        return torch.nn.functional.normalize(z, dim=-1).cpu().numpy()


def load_embedder(clip_path: str | Path | None = None) -> MiniEmbedder | ClipEmbedder:
    """Built-in dual encoder (None) or a local CLIP folder."""
    return MiniEmbedder() if clip_path is None else ClipEmbedder(Path(clip_path))
