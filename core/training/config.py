"""Configs of the training stage that the CLI and the pages read without importing torch:
``TrainConfig`` (train-base), ``FinetuneConfig`` (the mini fine-tune, run by
:mod:`core.training.finetune`) and the precision choices (the rule itself is in
:mod:`core.training.precision`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

from core.models.config import ModelConfig
from core.world import WorldConfig

Precision = Literal["auto", "fp32", "bf16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)


def check_precision(value: str, field: str = "precision") -> Precision:
    """``value`` as a :data:`Precision`, or ``ValueError`` naming ``field`` and the choices."""
    if value not in PRECISIONS:
        raise ValueError(f"{field} must be one of {', '.join(PRECISIONS)}; got {value!r}")
    return value  # type: ignore[return-value]


@dataclass(frozen=True)
class TrainConfig:
    """Training schedule of ``train-base``. Steps are optimizer steps of ``batch`` images.

    vae_batch: images per VAE step (0 = ``min(batch, 128)``, as the 32-px base was trained).
    vae_freeze_encoder_at: from this VAE step on only the decoder trains (0 = never). A small
    encoder trained to convergence becomes smooth (a bounded pixel change barely moves its
    latent); stopping it early keeps the sensitivity of Stable Diffusion's encoder that
    Nightshade-style poisons rely on (bench/results/science.md, the encoder gate).
    """

    n_per_concept: int = 1000
    batch: int = 256
    dual_steps: int = 600
    vae_steps: int = 800
    vae_batch: int = 0
    vae_freeze_encoder_at: int = 0
    judge_steps: int = 1200
    unet_steps: int = 3000
    lr: float = 1e-3
    unet_lr: float = 5e-4
    ema_decay: float = 0.999
    cfg_dropout: float = 0.1
    checkpoint_every: int = 250
    seed: int = 0
    device: str = "cpu"
    precision: str = "auto"  # fp32 | bf16 | auto (core.training.precision)
    world: WorldConfig = field(default_factory=WorldConfig)
    model: ModelConfig = field(default_factory=ModelConfig)

    def __post_init__(self) -> None:
        for name in ("n_per_concept", "batch", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        for name in ("dual_steps", "vae_steps", "judge_steps", "unet_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be ≥ 0, got {getattr(self, name)}")
        if self.vae_batch < 0:
            raise ValueError(
                f"vae_batch must be ≥ 1, or 0 for min(batch, 128); got {self.vae_batch}"
            )
        if not 0 <= self.vae_freeze_encoder_at <= self.vae_steps:
            raise ValueError(
                f"vae_freeze_encoder_at must be in [0, vae_steps={self.vae_steps}] "
                f"(0 = the encoder trains throughout), got {self.vae_freeze_encoder_at}"
            )
        if not 0 <= self.cfg_dropout < 1:
            raise ValueError(f"cfg_dropout must be in [0, 1), got {self.cfg_dropout}")
        if not 0 < self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in (0, 1), got {self.ema_decay}")
        check_precision(self.precision)
        if not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {self.device!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


Params = Literal["all", "cross-attention", "lora"]
PARAMS: tuple[str, ...] = ("all", "cross-attention", "lora")


@dataclass(frozen=True)
class FinetuneConfig:
    """steps × batch images; lr for AdamW; ema_decay 0 disables EMA (sampling uses raw weights).

    params: ``all`` UNet weights, ``cross-attention`` (every ``attn2`` projection) or ``lora``
    (rank-``lora_rank`` adapters on those projections, merged into the weights afterwards: a
    text→image path with little room to fit conflicting captions one by one).
    """

    steps: int = 200
    batch: int = 64
    lr: float = 2e-4
    params: Params = "all"
    cfg_dropout: float = 0.1
    ema_decay: float = 0.0
    seed: int = 0
    precision: str = "auto"  # fp32 | bf16 | auto: bf16 only where native (core.training.precision)
    lora_rank: int = 4  # used when params == "lora"

    def __post_init__(self) -> None:
        check_precision(self.precision)
        if self.steps < 1:
            raise ValueError(f"steps must be ≥ 1, got {self.steps}")
        if self.batch < 1:
            raise ValueError(f"batch must be ≥ 1, got {self.batch}")
        if not 0 < self.lr < 1:
            raise ValueError(f"lr must be in (0, 1), got {self.lr}")
        if self.params not in PARAMS:
            raise ValueError(f"params must be one of {list(PARAMS)}, got {self.params!r}")
        if not 1 <= self.lora_rank <= 64:
            raise ValueError(f"lora_rank must be in [1, 64], got {self.lora_rank}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
