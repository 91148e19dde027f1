"""train-base / eval-base / generate end to end on a tiny config (seconds)."""

import json

import pytest
from PIL import Image

from core.cli import main

TINY = ["--tiny", "--concepts", "8", "--n-per-concept", "4", "--batch", "8"]
STEPS = ["--dual-steps", "2", "--vae-steps", "2", "--judge-steps", "2", "--unet-steps", "2"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("base") / "m"
    assert main(["train-base", "--out", str(out), *TINY, *STEPS, "--json"]) == 0
    return out


def test_train_base_writes_model_and_metadata(model_dir):
    meta = json.loads((model_dir / "model.json").read_text())
    assert set(meta["training"]["stages"]) == {"dual", "vae", "judge", "unet"}
    assert meta["seed"] == 0 and meta["versions"]["torch"]
    assert meta["training"]["train_config"]["unet_steps"] == 2
    assert (model_dir / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert not list(model_dir.rglob("*.bin"))


def test_train_base_resumes_from_checkpoints(model_dir, capsys):
    # every stage is done: a rerun loads them and only rewrites the final folder
    assert main(["train-base", "--out", str(model_dir), *TINY, *STEPS, "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["unet"]["latent_scale"] > 0


def test_eval_base_json_contract(model_dir, capsys):
    assert (
        main(["eval-base", "--model", str(model_dir), "--samples", "2", "--steps", "2", "--json"])
        == 0
    )
    r = json.loads(capsys.readouterr().out.strip())
    assert {"accuracy", "per_concept", "incoherence", "samples_per_concept"} <= set(r)
    assert r["samples_per_concept"] == 2 and len(r["per_concept"]) == 8
    assert 0 <= r["accuracy"] <= 1 and 0 <= r["incoherence"] <= 1


def test_generate_grid(model_dir, tmp_path):
    out = tmp_path / "grid.png"
    rc = main(
        [
            "generate",
            "--model",
            str(model_dir),
            "--prompt",
            "a photo of a small red circle",
            "-n",
            "3",
            "--steps",
            "2",
            "--out",
            str(out),
        ]
    )
    assert rc == 0 and Image.open(out).size[0] > 64


@pytest.mark.parametrize(
    "argv, message",
    [
        (["generate", "--prompt", "a photo of a dog", "--steps", "1"], "unknown word"),
        (["generate", "--prompt", "a red star", "-n", "0"], "-n must be"),
        (["generate", "--prompt", "a red star", "--out-suffix"], None),
        (["train-base", "--concepts", "7"], "n_concepts"),
        (["eval-base", "--samples", "0"], "samples_per_concept"),
    ],
)
def test_cli_errors(model_dir, tmp_path, capsys, argv, message):
    if message is None:
        with pytest.raises(SystemExit):
            main(argv)
        return
    if argv[0] == "generate":
        argv = [*argv, "--model", str(model_dir), "--out", str(tmp_path / "g.png")]
    elif argv[0] == "train-base":
        argv = [*argv, "--out", str(tmp_path / "t")]
    else:
        argv = [*argv, "--model", str(model_dir)]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_unwritable_output(model_dir, tmp_path, capsys):
    import os

    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    # root ignores permission bits: then use a path that cannot be created at all
    out = "/proc/nope/g.png" if os.geteuid() == 0 else str(ro / "sub" / "g.png")
    argv = ["generate", "--model", str(model_dir), "--prompt", "a red star", "--steps", "1"]
    try:
        rc = main([*argv, "--out", out])
    finally:
        ro.chmod(0o700)
    assert rc == 2 and "--out" in capsys.readouterr().err


def test_missing_model_folder(tmp_path, capsys):
    assert main(["eval-base", "--model", str(tmp_path / "none")]) == 2
    assert "train-base" in capsys.readouterr().err
