"""What every latent diffusion model here shares: tokenising, VAE latents, DDIM + CFG sampling.

Mixed into :class:`core.models.ldm.MiniLDM` and :class:`core.real.sd.RealSD`; a subclass provides
``tokenizer, vae, unet, scheduler, device, latent_shape`` and ``encode_prompts``, and may change
the class defaults below (a real SD wants guidance 7.5 and small batches).
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import DDIMScheduler


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

    def tokenize(self, prompts: list[str]) -> torch.Tensor:
        """(N, L) int64 token ids padded to ``model_max_length`` (the SD convention)."""
        enc = self.tokenizer(
            list(prompts),
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
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
        context = self.encode_prompts(prompts).to(dtype)
        uncond = self.encode_prompts([""], check=False).to(dtype)
        gen = torch.Generator("cpu").manual_seed(seed)
        noise = torch.randn((len(prompts), *self.latent_shape), generator=gen)
        # clip_sample=False: clipping x̂_0 to [-1, 1] (the pixel-space default) wrecks latents.
        ddim = DDIMScheduler.from_config(self.scheduler.config, clip_sample=False)
        ddim.set_timesteps(steps)
        outs = []
        for i in range(0, len(prompts), batch):
            z = noise[i : i + batch].to(self.device) * ddim.init_noise_sigma
            c = context[i : i + batch]
            cond = torch.cat([uncond.expand(c.shape[0], -1, -1), c])
            for t in ddim.timesteps:
                eps = self.unet(torch.cat([z, z]).to(dtype), t, encoder_hidden_states=cond).sample
                e_u, e_c = eps.float().chunk(2)
                z = ddim.step(e_u + g * (e_c - e_u), t, z).prev_sample
            outs.append(z)
        latents = torch.cat(outs)
        return latents if return_latents else self.decode_latents(latents)
