"""train-base for the 64-px textured world: an 8×8 latent, the world saved with the model."""

import json

import pytest

from core.cli import main
from core.models.config import ModelConfig
from core.models.ldm import MiniLDM

TINY = ["--tiny", "--concepts", "8", "--n-per-concept", "2", "--batch", "8"]
STEPS = ["--dual-steps", "1", "--vae-steps", "1", "--judge-steps", "1", "--unet-steps", "1"]


def test_for_image_size_keeps_the_latent_and_patch_count():
    for cfg in (ModelConfig(), ModelConfig.tiny()):
        big = cfg.for_image_size(64)
        assert big.latent_size(64) == cfg.latent_size(32) == 8
        assert (64 // big.dual.patch) == (32 // cfg.dual.patch)
        assert big.vae.channels[:-1] == cfg.vae.channels
        assert cfg.for_image_size(32) == cfg
    with pytest.raises(ValueError, match="image_size"):
        ModelConfig().for_image_size(48)
    with pytest.raises(ValueError, match="kl_weight"):
        ModelConfig(vae=ModelConfig().vae.__class__(kl_weight=-1.0))


def test_train_base_textured_64px(tmp_path):
    out = tmp_path / "m"
    argv = ["train-base", "--out", str(out), *TINY, *STEPS, "--image-size", "64"]
    assert main([*argv, "--style", "textured", "--vae-kl", "1e-5", "--json"]) == 0
    meta = json.loads((out / "model.json").read_text())
    assert meta["world"]["style"] == "textured" and meta["world"]["image_size"] == 64
    assert meta["model"]["vae"]["kl_weight"] == 1e-5
    ldm = MiniLDM.from_pretrained(out)
    assert ldm.world.config.style == "textured"
    img = ldm.sample([ldm.world.concepts[0].caption(0)], steps=1, seed=0)
    assert tuple(img.shape) == (1, 3, 64, 64)
    assert ldm.unet.config.sample_size == 8
