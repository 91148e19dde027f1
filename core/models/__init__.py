"""Models of the mini latent diffusion world, built from diffusers/transformers classes."""
