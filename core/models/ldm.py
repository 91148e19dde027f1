"""The mini latent diffusion model: tokenizer, CLIP (text + image towers), VAE, UNet, judge.

Assembled like Stable Diffusion — frozen CLIP text encoder, VAE latents, cross-attention UNet,
DDPM training and DDIM sampling with classifier-free guidance — from real diffusers/transformers
classes, saved with ``save_pretrained`` in safetensors. Layout of a saved model folder::

    model.json        world + model config, latent scale, metadata
    tokenizer/        PreTrainedTokenizerFast (tokenizer.json)
    clip/             transformers CLIPModel (text tower = frozen text encoder; joint space = AD)
    vae/  unet/       diffusers AutoencoderKL / UNet2DConditionModel (unet stored as fp16)
    scheduler/        diffusers DDPMScheduler config
    judge/            attribute classifier (safetensors + config.json)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from transformers import CLIPModel, PreTrainedTokenizerFast

from core.io import atomic_write_json, run_metadata
from core.models.config import ModelConfig, build_clip, build_unet, build_vae
from core.models.judge import Judge
from core.models.sampling import LatentDiffusion
from core.models.tokenizer import build_tokenizer, check_prompts, load_tokenizer
from core.world import World, WorldConfig

COMPONENTS = ("model.json", "tokenizer", "clip", "vae", "unet", "scheduler", "judge")


@dataclass
class MiniLDM(LatentDiffusion):
    """All components of the mini model. Tensors live on ``device``; weights in float32."""

    world: World
    config: ModelConfig
    tokenizer: PreTrainedTokenizerFast
    clip: CLIPModel
    vae: AutoencoderKL
    unet: UNet2DConditionModel
    judge: Judge
    scheduler: DDPMScheduler
    device: torch.device = torch.device("cpu")

    # ------------------------------------------------------------------ construction
    @staticmethod
    def build(world_config: WorldConfig, config: ModelConfig, seed: int = 0) -> MiniLDM:
        """Random-init every component from config (deterministic for ``seed``)."""
        torch.manual_seed(seed)
        world = World(world_config)
        tok = build_tokenizer(world.vocabulary)
        ids = {"bos": tok.bos_token_id, "eos": tok.eos_token_id, "pad": tok.pad_token_id}
        size = world_config.image_size
        clip = build_clip(config.dual, len(tok.get_vocab()), size, ids)  # type: ignore[arg-type]
        vae = build_vae(config.vae, size)
        latent = size // 2 ** (len(config.vae.channels) - 1)
        unet = build_unet(config.unet, latent, config.vae.latent_channels, config.dual.hidden)
        judge = Judge(len(world.sizes), len(world.colours), len(world.shapes), config.judge.width)
        scheduler = DDPMScheduler(
            num_train_timesteps=1000,
            beta_schedule="squaredcos_cap_v2",
            prediction_type="epsilon",
            clip_sample=False,  # latents are unit-variance, not in [-1, 1]: never clip x̂_0
        )
        return MiniLDM(world, config, tok, clip, vae, unet, judge, scheduler)

    def to(self, device: str | torch.device) -> MiniLDM:
        self.device = torch.device(device)
        for m in (self.clip, self.vae, self.unet, self.judge):
            m.to(self.device)
        return self

    def eval(self) -> MiniLDM:
        for m in (self.clip, self.vae, self.unet, self.judge):
            m.eval()
        return self

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        c = self.config.vae.latent_channels
        s = self.world.config.image_size // 2 ** (len(self.config.vae.channels) - 1)
        return (c, s, s)

    def n_parameters(self) -> dict[str, int]:
        mods = {"clip": self.clip, "vae": self.vae, "unet": self.unet, "judge": self.judge}
        return {k: sum(p.numel() for p in m.parameters()) for k, m in mods.items()}

    # ------------------------------------------------------------------ save / load
    def save_pretrained(self, path: Path, extra: dict[str, Any] | None = None) -> None:
        """Write every component under ``path`` (safetensors; UNet as fp16 to halve its size)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save_pretrained(str(path / "tokenizer"))
        self.clip.save_pretrained(str(path / "clip"))
        self.vae.save_pretrained(str(path / "vae"))
        unet16 = UNet2DConditionModel.from_config(self.unet.config).to(torch.float16)
        unet16.load_state_dict({k: v.half() for k, v in self.unet.state_dict().items()})
        unet16.save_pretrained(str(path / "unet"))
        self.scheduler.save_pretrained(str(path / "scheduler"))
        self.judge.save(path / "judge")
        meta = {
            "world": asdict(self.world.config),
            "model": self.config.to_dict(),
            "concepts": self.world.names,
            **run_metadata(),
            **(extra or {}),
        }
        atomic_write_json(path / "model.json", meta)  # written last: marks a complete folder

    @staticmethod
    def from_pretrained(path: Path, device: str | torch.device = "cpu") -> MiniLDM:
        """Load a folder written by :meth:`save_pretrained`; errors name the missing file."""
        from diffusers.utils import logging as dlog
        from transformers.utils import logging as tlog

        tlog.disable_progress_bar()
        dlog.disable_progress_bar()
        path = Path(path)
        missing = [c for c in COMPONENTS if not (path / c).exists()]
        if missing:
            raise FileNotFoundError(
                f"model folder {path} is missing {missing}; rebuild it with "
                f"`implosion train-base --out {path}` (or restore assets/ from git)"
            )
        try:
            meta = json.loads((path / "model.json").read_text())
            world = World(WorldConfig(**meta["world"]))
            config = ModelConfig.from_dict(meta["model"])
            tok = load_tokenizer(path / "tokenizer")
            clip = CLIPModel.from_pretrained(str(path / "clip"), use_safetensors=True)
            vae = AutoencoderKL.from_pretrained(str(path / "vae"), use_safetensors=True)
            unet = UNet2DConditionModel.from_pretrained(
                str(path / "unet"), torch_dtype=torch.float32, use_safetensors=True
            )
            scheduler = DDPMScheduler.from_pretrained(str(path / "scheduler"))
            judge = Judge.load(path / "judge")
        except (OSError, ValueError, KeyError, json.JSONDecodeError, RuntimeError) as e:
            raise ValueError(
                f"model folder {path} is corrupt ({type(e).__name__}: {str(e)[:200]}); rebuild it "
                f"with `implosion train-base --out {path}` (or `git checkout assets/` for the "
                f"shipped base)"
            ) from e
        ldm = MiniLDM(world, config, tok, clip, vae, unet.float(), judge, scheduler)  # type: ignore[arg-type]
        return ldm.to(device).eval()

    # ------------------------------------------------------------------ encoders
    @torch.no_grad()
    def encode_prompts(self, prompts: list[str], check: bool = True) -> torch.Tensor:
        """Cross-attention context: CLIP text hidden states (N, 16, hidden) float32."""
        if check:
            prompts = check_prompts(self.tokenizer, prompts)
        return self.clip.text_model(input_ids=self.tokenize(prompts)).last_hidden_state

    @torch.no_grad()
    def text_embeds(self, prompts: list[str]) -> torch.Tensor:
        """Joint-space text embeddings (N, projection_dim), L2-normalised."""
        out = self.clip.text_model(input_ids=self.tokenize(prompts))
        z = self.clip.text_projection(out.pooler_output)
        return torch.nn.functional.normalize(z, dim=-1)

    @torch.no_grad()
    def image_embeds(self, images: torch.Tensor, batch: int = 512) -> torch.Tensor:
        """Joint-space image embeddings (N, projection_dim), L2-normalised; images in [-1, 1]."""
        outs = []
        for i in range(0, images.shape[0], batch):
            x = images[i : i + batch].to(self.device, torch.float32)
            z = self.clip.visual_projection(self.clip.vision_model(pixel_values=x).pooler_output)
            outs.append(torch.nn.functional.normalize(z, dim=-1))
        return torch.cat(outs)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 3, S, S) in [-1, 1] → (N, S, S, 3) uint8."""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()
