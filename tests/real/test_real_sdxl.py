"""SDXL base on the real-model path: loading, prompt conditioning and sampling checked against
diffusers' StableDiffusionXLPipeline, folder errors, the accelerate script (fine-tune modes and
the sweep on SDXL: test_real_train.py, test_real_sweep.py)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from core.models.sd import load_sd

PROMPTS = ["a dog", "a red car"]


def test_load_condition_sample_like_the_diffusers_pipeline(tiny_sdxl_dir, tmp_path):
    from diffusers import DDIMScheduler, StableDiffusionXLPipeline

    sd = load_sd(tiny_sdxl_dir)
    assert sd.is_sdxl and sd.resolution == 32 and sd.latent_shape == (4, 16, 16)
    assert sd.force_zeros_for_empty_prompt and sd.default_guidance == 5.0
    c = sd.conditioning(PROMPTS, size=48)
    assert c.context.shape == (2, 77, 32 + 48) and c.added["text_embeds"].shape == (2, 24)
    assert c.added["time_ids"].tolist() == [[48, 48, 0, 0, 48, 48]] * 2
    empty = sd.conditioning([""])  # force_zeros_for_empty_prompt: CFG's ∅ is all zeros
    assert not empty.context.any() and not empty.added["text_embeds"].any()

    pipe = StableDiffusionXLPipeline.from_pretrained(str(tiny_sdxl_dir))
    pe, _, pooled, _ = pipe.encode_prompt(PROMPTS, device="cpu", do_classifier_free_guidance=False)
    torch.testing.assert_close(sd.encode_prompts(PROMPTS), pe)
    torch.testing.assert_close(sd.conditioning(PROMPTS).added["text_embeds"], pooled)
    z = sd.sample(PROMPTS, seed=1, steps=2, return_latents=True)
    pipe.scheduler = DDIMScheduler.from_config(sd.scheduler.config, clip_sample=False)
    noise = torch.randn((2, *sd.latent_shape), generator=torch.Generator().manual_seed(1))
    ref = pipe(PROMPTS, num_inference_steps=2, guidance_scale=5.0, latents=noise,
               output_type="latent").images  # fmt: skip
    torch.testing.assert_close(z, ref)

    x = sd.decode_latents(z)
    assert x.shape == (2, 3, 32, 32) and x.abs().max() <= 1
    sd.save_pretrained(tmp_path / "copy")
    index = json.loads((tmp_path / "copy" / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionXLPipeline"
    assert index["text_encoder_2"] == ["transformers", "CLIPTextModelWithProjection"]
    again = load_sd(tmp_path / "copy")
    torch.testing.assert_close(again.sample(PROMPTS, seed=1, steps=2, return_latents=True), z)


def test_sdxl_folder_errors_name_the_part(tiny_sdxl_dir, tmp_path):
    from core.models.tiny import build_tiny_sdxl

    no_te2 = tmp_path / "no-te2"
    shutil.copytree(tiny_sdxl_dir, no_te2)
    shutil.rmtree(no_te2 / "text_encoder_2")
    with pytest.raises(FileNotFoundError, match=r"SDXL folder without text_encoder_2/ — put the "
                       r"CLIPTextModelWithProjection .*stable-diffusion-xl-base"):  # fmt: skip
        load_sd(no_te2)
    (no_te2 / "model_index.json").unlink()  # still SDXL by its text_time UNet
    with pytest.raises(FileNotFoundError, match="without text_encoder_2/"):
        load_sd(no_te2)

    other = build_tiny_sdxl(tmp_path / "other", projection_dim=16)
    mixed = tmp_path / "mixed"
    shutil.copytree(tiny_sdxl_dir, mixed)
    shutil.rmtree(mixed / "text_encoder_2")
    shutil.copytree(other / "text_encoder_2", mixed / "text_encoder_2")
    with pytest.raises(ValueError, match=r"projection_class_embeddings_input_dim 72 ≠ "
                       r"text_encoder_2 projection_dim 16 \+ 6 size ids × 8"):  # fmt: skip
        load_sd(mixed)


def test_accelerate_script_on_sdxl(tiny_sdxl_dir, messy_data, tmp_path, capsys):
    """core.training.accelerate_train (one process, in-process) passes the SDXL conditions too."""
    from core.training.accelerate_train import main

    out = tmp_path / "acc"
    args = ["--model", str(tiny_sdxl_dir), "--data", str(messy_data), "--out", str(out)]
    assert main([*args, "--batch", "2", "--mode", "xattn", "--cpu", "--steps", "1"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["steps"] == 1
    assert load_sd(out).is_sdxl
