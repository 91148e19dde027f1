"""``implosion audit`` end to end: JSON keys, outputs, and one-line errors (exit 2) before work."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.cli import main

KEYS = {"ad", "feature", "structure", "n", "concepts", "overlapping", "flagged", "prediction"}
PRED = {"acc_unpoisoned", "low", "high", "incoherence", "model", "fitted_on"}


def _npz(tmp_path, n=40):
    rng = np.random.default_rng(0)
    path = tmp_path / "emb.npz"
    np.savez(
        path,
        image=rng.normal(size=(n, 8)).astype(np.float32),
        text=rng.normal(size=(n, 8)).astype(np.float32),
        caption_concept=np.arange(n) % 4,
        concepts=np.array(["a", "b", "c", "d"]),
    )
    return path


def _err(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    return [line for line in err if "error" in line]


def test_embeddings_json_keys_and_outputs(tmp_path, capsys):
    path = _npz(tmp_path)
    rc = main(
        [
            "audit",
            "--embeddings",
            str(path),
            "--json",
            "--graphml",
            str(tmp_path / "g.graphml"),
            "--csv",
            str(tmp_path / "f.csv"),
        ]
    )
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert KEYS <= set(out)
    assert out["prediction"] is None  # an embeddings file does not say which model made it
    assert out["n"] == 40 and len(out["concepts"]) == 4
    assert (tmp_path / "g.graphml").is_file() and (tmp_path / "f.csv").is_file()


def test_embeddings_memmapped_member(tmp_path):
    from core.audit import from_embeddings

    pairs = from_embeddings(_npz(tmp_path))
    assert isinstance(pairs.image, np.memmap)  # np.savez stores uncompressed: streamed
    assert pairs.names == ("a", "b", "c", "d")


def test_pack_level_predicts_with_measured(demo_assets, capsys):
    rc = main(["audit", "--pack", str(demo_assets / "demo"), "--level", "4", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert PRED <= set(out["prediction"])
    assert out["prediction"]["measured"]["c_p"] == 4
    assert out["prediction"]["fitted_on"] == [str(demo_assets / "demo")]


def test_missing_captions(tmp_path, capsys):
    from PIL import Image

    d = tmp_path / "data"
    d.mkdir()
    for i in range(3):
        Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(d / f"im{i}.png")
    (d / "im0.txt").write_text("a red star")
    (d / "im1.txt").write_text("a red star")
    assert main(["audit", "--dataset", str(d)]) == 2
    (line,) = _err(capsys)
    assert "no same-name .txt caption" in line and "im2.png" in line


def test_manifest_outside_its_folder(tmp_path, capsys):
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "outside.png")
    d = tmp_path / "m"
    d.mkdir()
    Image.new("RGB", (8, 8)).save(d / "in.png")
    (d / "m.jsonl").write_text(
        json.dumps({"image": "in.png", "caption": "a"})
        + "\n"
        + json.dumps({"image": "../outside.png", "caption": "b"})
        + "\n"
    )
    assert main(["audit", "--manifest", str(d / "m.jsonl")]) == 2
    (line,) = _err(capsys)
    assert "points outside its folder" in line


def test_plan_c_p_above_k(capsys):
    assert main(["audit", "--plan", "--c-p", "99", "--seed", "1"]) == 2
    (line,) = _err(capsys)
    assert "exceeds K=" in line


def test_plan_model_without_calibration(tmp_path, capsys, demo_assets):
    import shutil
    from pathlib import Path

    model = tmp_path / "model"
    model.mkdir()
    shutil.copy(Path(__file__).resolve().parents[2] / "assets/base/model.json", model)
    rc = main(["audit", "--plan", "--c-p", "2", "--seed", "1", "--model", str(model)])
    assert rc == 2
    (line,) = _err(capsys)
    assert "no calibration exists" in line


@pytest.mark.parametrize(
    "argv, msg",
    [
        (["--pack", "demo"], "--level"),
        (["--plan", "--c-p", "2"], "--seed"),
        (["--embeddings", "x.npz", "--c-p", "2"], "only with --plan"),
    ],
)
def test_flag_errors(argv, msg, capsys, demo_assets):
    assert main(["audit", *argv]) == 2
    (line,) = _err(capsys)
    assert msg in line


def test_outputs_are_never_overwritten(tmp_path, capsys):
    path = _npz(tmp_path)
    (tmp_path / "f.csv").write_text("keep")
    assert main(["audit", "--embeddings", str(path), "--csv", str(tmp_path / "f.csv")]) == 2
    assert (tmp_path / "f.csv").read_text() == "keep"


@pytest.mark.slow
def test_plan_ad_equals_the_sweeps_recorded_ad(capsys):
    """The planned pairs are the sweep's: on the shipped demo pack's seed 1 at C_P 4 the audit's
    AD is the AD the sweep recorded, and the prediction is in-sample."""
    rc = main(["audit", "--plan", "--c-p", "4", "--seed", "1", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    m = out["prediction"]["measured"]
    assert out["ad"] == pytest.approx(m["ad"], abs=1e-9)
    assert (
        out["prediction"]["low"] <= out["prediction"]["acc_unpoisoned"] <= out["prediction"]["high"]
    )


@pytest.mark.slow  # loads the shipped base (84 s at load 26 on 2 cores)
def test_dataset_with_the_mini_encoder_labels_world_concepts(tmp_path, capsys):
    from core.world import World, WorldConfig

    world = World(WorldConfig(n_concepts=32))
    d = world.sample(2, seed=0, concepts=[0, 5, 9])
    folder = tmp_path / "data"
    folder.mkdir()
    from PIL import Image

    u8 = ((d.images.transpose(0, 2, 3, 1) + 1) * 127.5).round().clip(0, 255).astype("uint8")
    for i, (im, cap) in enumerate(zip(u8, d.captions, strict=True)):
        Image.fromarray(im).save(folder / f"p{i}.png")
        (folder / f"p{i}.txt").write_text(cap)
    assert main(["audit", "--dataset", str(folder), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n"] == 6
    assert {c["name"] for c in out["concepts"]} == {world.names[i] for i in (0, 5, 9)}
    assert out["prediction"] is not None  # the shipped base's calibration applies
    assert set(out["prediction"]["ad_range"]) == {"acc_unpoisoned", "incoherence"}
