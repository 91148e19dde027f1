"""Loading, saving and sampling a tiny SD folder; component checks and their errors."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from core.models.sd import load_sd


def test_load_sample_save_roundtrip(tiny_sd_dir, tmp_path):
    sd = load_sd(tiny_sd_dir)
    assert sd.resolution == 32 and sd.latent_shape == (4, 16, 16)
    assert sd.prediction_type == "epsilon"
    ids = sd.tokenize(["a photo of a dog"])
    assert ids.shape == (1, 77) and ids[0, 0] == sd.tokenizer.bos_token_id
    ctx = sd.encode_prompts(["a dog", "a cat"], check=False)
    assert ctx.shape == (2, 77, 32)
    x = sd.sample(["a dog", "a cat"], seed=3, steps=2, guidance=3.0)
    assert x.shape == (2, 3, 32, 32) and x.abs().max() <= 1
    z = sd.encode_images(x)
    assert z.shape == (2, 4, 16, 16) and sd.decode_latents(z).shape == x.shape
    sd.save_pretrained(tmp_path / "copy")
    index = json.loads((tmp_path / "copy" / "model_index.json").read_text())
    assert index["unet"] == ["diffusers", "UNet2DConditionModel"]
    again = load_sd(tmp_path / "copy")
    torch.testing.assert_close(again.sample(["a dog", "a cat"], seed=3, steps=2, guidance=3.0), x)


def test_mini_code_paths_work_with_adapter(tiny_sd_dir):
    """core.training.finetune.make_pairs / finetune_unet and core.poison.builders.nightshade_perturb unchanged."""
    import numpy as np

    from core.poison.builders import nightshade_perturb
    from core.training.finetune import FinetuneConfig, encode_images, finetune_unet, make_pairs

    sd = load_sd(tiny_sd_dir)
    imgs = np.random.default_rng(0).uniform(-1, 1, (2, 3, 32, 32)).astype(np.float32)
    mean, std = encode_images(sd, imgs)  # type: ignore[arg-type]
    pairs = make_pairs(sd, mean, std, np.array([0, 1]), ["a dog", "a cat"])  # type: ignore[arg-type]
    before = sd.unet.conv_in.weight.clone()
    r = finetune_unet(sd, pairs, FinetuneConfig(steps=1, batch=2, params="cross-attention"))  # type: ignore[arg-type]
    assert r["steps"] == 1 and torch.equal(before, sd.unet.conv_in.weight)
    out, rep = nightshade_perturb(sd.vae, imgs, imgs[::-1].copy(), 4 / 255, 2)
    assert out.shape == imgs.shape and rep["linf"] <= 4 / 255 + 1e-6


def test_missing_folder_and_component(tmp_path, tiny_sd_dir):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        load_sd(tmp_path / "nope")
    broken = tmp_path / "broken"
    shutil.copytree(tiny_sd_dir, broken)
    shutil.rmtree(broken / "unet")
    with pytest.raises(FileNotFoundError, match=r"missing unet/.*download"):
        load_sd(broken)


def test_mismatched_components(tmp_path, tiny_sd_dir):
    from core.models.tiny import build_tiny_sd

    other = build_tiny_sd(tmp_path / "wide", hidden=48)
    mixed = tmp_path / "mixed"
    shutil.copytree(tiny_sd_dir, mixed)
    shutil.rmtree(mixed / "text_encoder")
    shutil.copytree(other / "text_encoder", mixed / "text_encoder")
    with pytest.raises(ValueError, match="cross_attention_dim 32 ≠ text_encoder hidden_size 48"):
        load_sd(mixed)


def test_sdxl_refiner_and_offline_hub_refused(tmp_path, monkeypatch):
    refiner = {
        "_class_name": "StableDiffusionXLImg2ImgPipeline",
        "requires_aesthetics_score": True,
        "text_encoder": [None, None],
        "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
    }
    xl = tmp_path / "xl"
    xl.mkdir()
    (xl / "model_index.json").write_text(json.dumps(refiner))
    with pytest.raises(ValueError, match="SDXL refiner .* not supported; use the SDXL base"):
        load_sd(xl)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ValueError, match="HF_HUB_OFFLINE=1"):
        load_sd("some-org/some-model-that-is-not-cached")


def test_cli_tiny_sdxl_and_check_names_the_family(tmp_path, capsys):
    import json

    from core.cli import main

    assert main(["real", "tiny", "--sdxl", "--out", str(tmp_path / "xl")]) == 0
    capsys.readouterr()
    assert main(["real", "check", "--model", str(tmp_path / "xl"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert info["family"] == "SDXL" and "text_encoder_2" in info["parameters"]
