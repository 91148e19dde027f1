"""Frozen configs of the mini latent diffusion model (one per component) and their builders.

Shapes for the default 32 px world: image (3, 32, 32) → VAE latent (4, 8, 8); text (16 tokens) →
CLIP text hidden states (16, 64); the UNet denoises latents conditioned on those states through
cross-attention at 8×8 and 4×4. For the 64 px world :meth:`ModelConfig.for_image_size` adds a
VAE block (8× spatial compression: 64 px → 8×8 latent) and doubles CLIP's patch, so the UNet and
the image tower see the same sizes and cost what they cost at 32 px.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the configs are light; the builders import the model libraries when called
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPModel


@dataclass(frozen=True)
class DualConfig:
    """Tiny CLIP: transformers text tower + ViT image tower, joint space of ``projection_dim``."""

    hidden: int = 64
    layers: int = 2
    heads: int = 4
    patch: int = 4
    projection_dim: int = 64


@dataclass(frozen=True)
class VAEConfig:
    """diffusers AutoencoderKL; ``len(channels) - 1`` halvings (32 px → 8×8 with 3 blocks).

    kl_weight: weight of the KL term in train-base's VAE loss (L1 + MSE + kl_weight · KL); small
    keeps latents near-deterministic, larger smooths the encoder.
    """

    channels: tuple[int, ...] = (16, 32, 64)
    latent_channels: int = 4
    layers_per_block: int = 1
    kl_weight: float = 1e-6


@dataclass(frozen=True)
class UNetConfig:
    """diffusers UNet2DConditionModel with cross-attention in every (≤ 16×16) block."""

    channels: tuple[int, ...] = (64, 128)
    layers_per_block: int = 1
    attention_head_dim: int = 8


@dataclass(frozen=True)
class JudgeConfig:
    """Small CNN attribute classifier (size, colour, shape heads)."""

    width: int = 32


@dataclass(frozen=True)
class ModelConfig:
    """All components; ``tiny()`` is the seconds-scale variant used by tests."""

    dual: DualConfig = field(default_factory=DualConfig)
    vae: VAEConfig = field(default_factory=VAEConfig)
    unet: UNetConfig = field(default_factory=UNetConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)

    def __post_init__(self) -> None:
        for name, chans in (
            ("vae.channels", self.vae.channels),
            ("unet.channels", self.unet.channels),
        ):
            if any(c % 16 for c in chans):
                raise ValueError(f"{name}={chans}: every entry must be a multiple of 16")
        if self.dual.hidden % self.dual.heads:
            raise ValueError("dual.hidden must be divisible by dual.heads")
        if not 0 <= self.vae.kl_weight < 1:
            raise ValueError(f"vae.kl_weight must be in [0, 1), got {self.vae.kl_weight}")

    def latent_size(self, image_size: int) -> int:
        """Side of the VAE latent for ``image_size`` px images (ValueError if not whole)."""
        f = 2 ** (len(self.vae.channels) - 1)
        if image_size % f:
            raise ValueError(
                f"vae.channels={self.vae.channels} halves {len(self.vae.channels) - 1} times: "
                f"image_size {image_size} is not a multiple of {f}"
            )
        return image_size // f

    def for_image_size(self, image_size: int) -> ModelConfig:
        """This config adapted to ``image_size`` px, designed at 32 px: each doubling adds a VAE
        block (repeating the widest width) and doubles CLIP's patch, so the latent stays 8×8 and
        the image tower sees as many patches as at 32 px."""
        from dataclasses import replace

        extra = {32: 0, 64: 1}.get(image_size)
        if extra is None:
            raise ValueError(f"image_size must be 32 or 64, got {image_size}")
        vae = replace(self.vae, channels=self.vae.channels + (self.vae.channels[-1],) * extra)
        dual = replace(self.dual, patch=self.dual.patch * 2**extra)
        return replace(self, vae=vae, dual=dual)

    @staticmethod
    def tiny() -> ModelConfig:
        return ModelConfig(
            dual=DualConfig(hidden=32, layers=1, heads=2, patch=8, projection_dim=16),
            vae=VAEConfig(channels=(16, 16, 16), latent_channels=4),
            unet=UNetConfig(channels=(32, 32), attention_head_dim=8),
            judge=JudgeConfig(width=16),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> ModelConfig:
        def tup(x: dict[str, Any]) -> dict[str, Any]:
            return {k: tuple(v) if isinstance(v, list) else v for k, v in x.items()}

        return ModelConfig(
            dual=DualConfig(**tup(d["dual"])),
            vae=VAEConfig(**tup(d["vae"])),
            unet=UNetConfig(**tup(d["unet"])),
            judge=JudgeConfig(**tup(d["judge"])),
        )


def build_clip(cfg: DualConfig, vocab_size: int, image_size: int, ids: dict[str, int]) -> CLIPModel:
    """A transformers CLIPModel from config (random init). ``ids``: bos/eos/pad token ids."""
    from transformers import CLIPConfig, CLIPModel

    config = CLIPConfig(
        text_config=dict(
            vocab_size=vocab_size,
            hidden_size=cfg.hidden,
            intermediate_size=cfg.hidden * 2,
            num_hidden_layers=cfg.layers,
            num_attention_heads=cfg.heads,
            max_position_embeddings=16,
            bos_token_id=ids["bos"],
            eos_token_id=ids["eos"],
            pad_token_id=ids["pad"],
        ),
        vision_config=dict(
            image_size=image_size,
            patch_size=cfg.patch,
            hidden_size=cfg.hidden,
            intermediate_size=cfg.hidden * 2,
            num_hidden_layers=cfg.layers,
            num_attention_heads=cfg.heads,
            num_channels=3,
        ),
        projection_dim=cfg.projection_dim,
    )
    return CLIPModel(config)


def build_vae(cfg: VAEConfig, image_size: int) -> AutoencoderKL:
    from diffusers import AutoencoderKL

    n = len(cfg.channels)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=cfg.channels,
        layers_per_block=cfg.layers_per_block,
        latent_channels=cfg.latent_channels,
        norm_num_groups=16,
        sample_size=image_size,
    )


def build_unet(
    cfg: UNetConfig, latent_size: int, latent_channels: int, text_dim: int
) -> UNet2DConditionModel:
    from diffusers import UNet2DConditionModel

    n = len(cfg.channels)
    return UNet2DConditionModel(
        sample_size=latent_size,
        in_channels=latent_channels,
        out_channels=latent_channels,
        layers_per_block=cfg.layers_per_block,
        block_out_channels=cfg.channels,
        down_block_types=("CrossAttnDownBlock2D",) * n,
        up_block_types=("CrossAttnUpBlock2D",) * n,
        cross_attention_dim=text_dim,
        attention_head_dim=cfg.attention_head_dim,
        norm_num_groups=min(32, min(cfg.channels)),
    )
