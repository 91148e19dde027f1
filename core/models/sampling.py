"""What every latent diffusion model here shares: tokenising, VAE latents, DDIM + CFG sampling,
and the one DDPM training loss (:func:`training_loss`) that base training, the mini fine-tune and
the real fine-tune all minimise.

Mixed into :class:`core.models.ldm.MiniLDM` and :class:`core.models.sd.RealSD`; a subclass provides
``tokenizer, vae, unet, scheduler, device, latent_shape`` and ``encode_prompts``, and may change
the class defaults below (a real SD wants guidance 7.5 and small batches). A model family whose
UNet needs more than the text states (SDXL: pooled text embeddings and size ids) overrides
:meth:`LatentDiffusion.conditioning`.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler


@dataclass
class Conditioning:
    """What the UNet is conditioned on, one row per prompt.

    ``context`` (N, L, D): cross-attention states (``encoder_hidden_states``). ``added``: extra
    UNet inputs passed as ``added_cond_kwargs`` (SDXL: ``text_embeds`` (N, P) pooled text,
    ``time_ids`` (N, 6) size conditioning); empty for SD 1.x/2.x and the mini model.
    """

    context: torch.Tensor
    added: dict[str, torch.Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.context.shape[0])

    def _map(self, fn: Any) -> Conditioning:
        return Conditioning(fn(self.context), {k: fn(v) for k, v in self.added.items()})

    def __getitem__(self, rows: slice) -> Conditioning:
        return self._map(lambda x: x[rows])

    def to(self, dtype: torch.dtype) -> Conditioning:
        """A copy in ``dtype`` (the UNet's, or float32 for training under autocast)."""
        return self._map(lambda x: x.to(dtype))

    def expand(self, n: int) -> Conditioning:
        """A one-row conditioning repeated to ``n`` rows (the unconditional branch of CFG)."""
        return self._map(lambda x: x.expand(n, *x.shape[1:]))

    @staticmethod
    def cat(parts: list[Conditioning]) -> Conditioning:
        """Rows of ``parts`` stacked in order."""
        keys = parts[0].added.keys()
        return Conditioning(
            torch.cat([p.context for p in parts]),
            {k: torch.cat([p.added[k] for p in parts]) for k in keys},
        )

    def unet_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``UNet2DConditionModel.forward`` for this conditioning."""
        kw: dict[str, Any] = {"encoder_hidden_states": self.context}
        if self.added:
            kw["added_cond_kwargs"] = self.added
        return kw


def training_loss(
    unet: Any,
    scheduler: Any,
    z0: torch.Tensor,
    t: torch.Tensor,
    noise: torch.Tensor,
    unet_kwargs: dict[str, Any],
    autocast: AbstractContextManager[Any] | None = None,
) -> torch.Tensor:
    """The DDPM training loss of one batch (Ho et al. 2020, eq. 14; improved-diffusion's
    ``training_losses``): ``L = mean ‖y − f_θ(z_t, t, c)‖²`` with
    ``z_t = √ᾱ_t z_0 + √(1−ᾱ_t) ε`` (``scheduler.add_noise``) and target ``y = ε`` for
    ε-prediction or ``v = √ᾱ_t ε − √(1−ᾱ_t) z_0`` for v-prediction (SD 2.x 768; Salimans & Ho
    2022), as ``scheduler.config.prediction_type`` says.

    z0: (N, C, s, s) float32 scaled latents; t: (N,) int64 timesteps in [0, T); noise: ε, shaped
    like z0 (callers draw t and ε from their own generators, so the draw order stays theirs);
    unet_kwargs: the conditioning (``encoder_hidden_states``, SDXL ``added_cond_kwargs``);
    autocast: the mixed-precision context of the UNet call (default none). Returns the scalar
    float32 loss; ``unet`` may be a wrapped module (accelerate)."""
    zt = scheduler.add_noise(z0, noise, t)
    if scheduler.config.prediction_type == "epsilon":
        target = noise
    else:
        target = scheduler.get_velocity(z0, noise, t)
    with autocast if autocast is not None else nullcontext():
        pred = unet(zt, t, **unet_kwargs).sample
    return F.mse_loss(pred.float(), target.float())


class LatentDiffusion:
    """Shared encoders and sampler. Works in the VAE's / UNet's own dtype, returns float32."""

    default_guidance: float = 3.0
    sample_batch: int = 256
    decode_batch: int = 512

    tokenizer: Any
    vae: Any
    unet: Any
    scheduler: Any
    device: torch.device

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        raise NotImplementedError

    def encode_prompts(self, prompts: list[str], check: bool = True) -> torch.Tensor:
        raise NotImplementedError

    def conditioning(self, prompts: list[str], check: bool = True) -> Conditioning:
        """The UNet conditioning of ``prompts``: by default the text states alone."""
        return Conditioning(self.encode_prompts(prompts, check=check))

    def tokenize(self, prompts: list[str], tokenizer: Any = None) -> torch.Tensor:
        """(N, L) int64 token ids padded to ``model_max_length`` (the SD convention), with
        ``tokenizer`` (default: the model's first one)."""
        tokenizer = tokenizer or self.tokenizer
        enc = tokenizer(
            list(prompts),
            padding="max_length",
            max_length=tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        )
        return enc.input_ids.to(self.device)

    @torch.no_grad()
    def encode_images(self, images: torch.Tensor, sample: bool = False) -> torch.Tensor:
        """Scaled VAE latents (N, C, s, s) float32 of images (N, 3, S, S) in [-1, 1]."""
        dist = self.vae.encode(images.to(self.device, self.vae.dtype)).latent_dist
        z = dist.sample() if sample else dist.mean
        return z.float() * self.vae.config.scaling_factor

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor, batch: int | None = None) -> torch.Tensor:
        """Images (N, 3, S, S) float32 in [-1, 1] from scaled latents."""
        batch = batch or self.decode_batch
        outs = []
        for i in range(0, latents.shape[0], batch):
            z = latents[i : i + batch].to(self.device, self.vae.dtype)
            outs.append(
                self.vae.decode(z / self.vae.config.scaling_factor).sample.float().clamp(-1, 1)
            )
        return torch.cat(outs)

    @torch.no_grad()
    def sample(
        self,
        prompts: list[str],
        seed: int = 0,
        steps: int = 20,
        guidance: float | None = None,
        batch: int | None = None,
        return_latents: bool = False,
    ) -> torch.Tensor:
        """Generate one image per prompt with DDIM + classifier-free guidance.

        ε̂ = ε(z_t, ∅) + g · (ε(z_t, c) − ε(z_t, ∅)) (v-prediction is handled by the scheduler).
        Image i's initial noise depends only on (seed, i), so the same seed gives the same noise
        for the same position across models: side-by-side grids are comparable.
        Returns (N, 3, S, S) float32 in [-1, 1] (or the latents).
        """
        if steps < 1:
            raise ValueError(f"steps must be ≥ 1, got {steps}")
        g = self.default_guidance if guidance is None else guidance
        batch = batch or self.sample_batch
        dtype = self.unet.dtype
        context = self.conditioning(prompts).to(dtype)
        uncond = self.conditioning([""], check=False).to(dtype)
        gen = torch.Generator("cpu").manual_seed(seed)
        noise = torch.randn((len(prompts), *self.latent_shape), generator=gen)
        # clip_sample=False: clipping x̂_0 to [-1, 1] (the pixel-space default) wrecks latents.
        ddim = DDIMScheduler.from_config(self.scheduler.config, clip_sample=False)
        ddim.set_timesteps(steps)
        outs = []
        for i in range(0, len(prompts), batch):
            z = noise[i : i + batch].to(self.device) * ddim.init_noise_sigma
            c = context[i : i + batch]
            kw = Conditioning.cat([uncond.expand(len(c)), c]).unet_kwargs()
            for t in ddim.timesteps:
                eps = self.unet(torch.cat([z, z]).to(dtype), t, **kw).sample
                e_u, e_c = eps.float().chunk(2)
                z = ddim.step(e_u + g * (e_c - e_u), t, z).prev_sample
            outs.append(z)
        latents = torch.cat(outs)
        return latents if return_latents else self.decode_latents(latents)
