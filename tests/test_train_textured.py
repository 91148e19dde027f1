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


def test_vae_freeze_encoder_at_trains_only_the_decoder_after_it(tmp_path):
    """From step ``vae_freeze_encoder_at`` on no gradient reaches the encoder, the decoder still
    learns; the CLI passes the option and the world's noise into the saved config."""
    import torch

    from core.training.base import _Stage
    from core.training.config import TrainConfig
    from core.training.stages import train_vae
    from core.world import WorldConfig

    world = WorldConfig(n_concepts=8, image_size=64, style="textured", noise=0.0)
    cfg = TrainConfig(batch=8, vae_steps=3, vae_freeze_encoder_at=1, world=world)
    ldm = MiniLDM.build(world, ModelConfig.tiny().for_image_size(64), seed=0)
    images = torch.from_numpy(ldm.world.sample(2, seed=0).images)
    dec0 = [p.detach().clone() for p in ldm.vae.decoder.parameters()]
    (tmp_path / "ck").mkdir()
    train_vae(
        ldm,
        cfg,
        images,
        torch.Generator().manual_seed(0),
        _Stage(tmp_path / "ck", None),
        lambda: False,
    )
    assert all(p.grad is None for p in ldm.vae.encoder.parameters())  # the last step: frozen
    assert any(p.grad is not None for p in ldm.vae.decoder.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(dec0, ldm.vae.decoder.parameters()))
    with pytest.raises(ValueError, match="vae_freeze_encoder_at"):
        TrainConfig(vae_steps=10, vae_freeze_encoder_at=11)
    with pytest.raises(ValueError, match="vae_batch"):
        TrainConfig(vae_batch=-1)

    out = tmp_path / "m"
    argv = ["train-base", "--out", str(out), *TINY, *STEPS, "--image-size", "64"]
    assert (
        main(
            [
                *argv,
                "--style",
                "textured",
                "--noise",
                "0",
                "--vae-freeze-encoder-at",
                "1",
                "--vae-batch",
                "4",
            ]
        )
        == 0
    )
    meta = json.loads((out / "model.json").read_text())
    assert meta["world"]["noise"] == 0.0
