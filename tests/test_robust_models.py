"""Nothing is ever unpickled: model folders load from safetensors only (issue 13)."""

from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import load_file

from core.cli import main
from core.models.sd import check_sd_folder, load_sd


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory):
    from core.models.tiny import build_tiny_sd

    return build_tiny_sd(tmp_path_factory.mktemp("sd") / "tiny-sd", resolution=32)


def test_pickle_weights_are_refused_never_loaded(tiny_sd, tmp_path, capsys, monkeypatch):
    model = tmp_path / "pickled"
    shutil.copytree(tiny_sd, model)
    st = model / "unet" / "diffusion_pytorch_model.safetensors"
    torch.save(load_file(str(st)), model / "unet" / "diffusion_pytorch_model.bin")
    st.unlink()

    def no_unpickling(*a, **k):
        raise AssertionError("torch.load was called on a model folder")

    monkeypatch.setattr(torch, "load", no_unpickling)
    with pytest.raises(ValueError, match=r"unet/ has only pickle weights .*diffusion_pytorch_"):
        load_sd(model)
    assert main(["real", "check", "--model", str(model)]) == 2
    err = capsys.readouterr().err
    assert "only .safetensors weights are loaded" in err and err.count("\n") == 1
    check_sd_folder(tiny_sd)  # the safetensors original passes


def test_resume_after_the_last_checkpoint_keeps_the_result(tiny_sd, tmp_path):
    """A fine-tune resumed when its last step is already saved reports what it reached."""
    import math

    from PIL import Image

    from core.training.real import RealFinetuneConfig, run_finetune

    data = tmp_path / "data"
    data.mkdir()
    for i, colour in enumerate(["red", "blue"]):
        Image.new("RGB", (32, 32), colour).save(data / f"{colour}.png")
        (data / f"{colour}.txt").write_text(f"a {colour} square {i}")
    cfg = RealFinetuneConfig(model=str(tiny_sd), data=(str(data),), out=str(tmp_path / "o"),
                             steps=1, batch=2, lr=1e-4)  # fmt: skip
    first = run_finetune(cfg, quiet=True)
    again = run_finetune(cfg, quiet=True)  # nothing left to train
    assert again["steps"] == first["steps"] == 1 and again["completed"]
    assert math.isfinite(again["loss"]) and again["loss"] == first["loss"]
