"""``implosion ad`` end to end through core.cli.main: JSON contract, table, errors (exit 2)."""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest
from ad_helpers import pairs, worked_example
from fake_embedder import FakeEmbedder, write_dataset

from core.cli import main


@pytest.fixture
def npz(tmp_path):
    x, y = pairs(60, d=8, seed=0, dtype=np.float32)
    path = tmp_path / "emb.npz"
    np.savez(path, image=x, text=y, concept=np.arange(60) % 3)
    return path


def run(capsys, *argv):
    code = main(["ad", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_contract_worked_example(tmp_path, capsys):
    x, y = worked_example()
    path = tmp_path / "w.npz"
    np.savez(path, image=x, text=y)
    code, out, _ = run(capsys, "--embeddings", path, "--json")
    assert code == 0 and len(out.strip().splitlines()) == 1
    d = json.loads(out)
    assert set(d) == {"ad", "feature", "structure", "n", "alpha", "scale"}
    assert d["ad"] == pytest.approx(0.44) and d["feature"] == pytest.approx(0.5)
    assert d["structure"] == pytest.approx(0.2) and d["n"] == 2
    assert d["alpha"] == 0.8 and d["scale"] == [0.2, 0.45]


def test_options_scale_alpha_sample_labels(npz, capsys):
    code, out, _ = run(capsys, "--embeddings", npz, "--no-scale", "--alpha", "0.5", "--json")
    d = json.loads(out)
    assert code == 0 and d["scale"] is None and d["alpha"] == 0.5
    code, out, _ = run(capsys, "--embeddings", npz, "--scale", "0.1", "0.9", "--json")
    assert json.loads(out)["scale"] == [0.1, 0.9]
    code, out, _ = run(capsys, "--embeddings", npz, "--sample", "3000", "--json")
    d = json.loads(out)
    assert set(d["ci"]) == {"level", "ad", "structure", "samples"} and d["ci"]["samples"] == 3000
    code, out, _ = run(capsys, "--embeddings", npz, "--labels", "concept", "--json")
    d = json.loads(out)
    assert set(d["per_concept"]) == {"0", "1", "2"}
    assert sum(c["ad"] for c in d["per_concept"].values()) == pytest.approx(d["ad"])
    assert sum(c["n"] for c in d["per_concept"].values()) == 60


def test_human_table(npz, capsys):
    code, out, _ = run(capsys, "--embeddings", npz, "--labels", "concept", "--sample", "500")
    assert code == 0
    assert "Alignment Difficulty  n=60  alpha=0.8  scale=[0.2, 0.45] (clip-vit-b32-laion)" in out
    for word in ("D_fea", "D_stru", "AD", "95% CI from 500 sampled pairs", "concept"):
        assert word in out


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--alpha", "1.5"], "alpha: must be in [0, 1]"),
        (["--scale", "0.5", "0.2"], "scale: lo must be below hi"),
        (["--labels", "missing"], "--labels: emb.npz has no array 'missing'; arrays present: "),
        (["--sample", "1"], "sample: number of random pairs"),
        (["--clip", "x"], "--clip: only used with --dataset"),
    ],
)
def test_user_errors_exit_2(npz, capsys, extra, message):
    code, out, err = run(capsys, "--embeddings", npz, *extra)
    assert code == 2 and out == ""
    assert err.startswith("implosion ad: error: ") and message in err
    assert len(err.strip().splitlines()) == 1


def test_file_errors(tmp_path, capsys):
    x, y = pairs(5, d=3)
    np.savez(tmp_path / "keys.npz", img=x, txt=y)
    code, _, err = run(capsys, "--embeddings", tmp_path / "keys.npz")
    assert code == 2 and "no array(s) image, text; arrays present: img, txt" in err
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04garbage")
    code, _, err = run(capsys, "--embeddings", tmp_path / "bad.npz")
    assert code == 2 and "is not a readable .npz file" in err
    (tmp_path / "text.npz").write_text("hello")
    code, _, err = run(capsys, "--embeddings", tmp_path / "text.npz")
    assert code == 2 and "is not an .npz archive (not a NumPy file)" in err  # no library text
    np.save(tmp_path / "one.npy", x)
    code, _, err = run(capsys, "--embeddings", tmp_path / "one.npy")
    assert code == 2 and "not an .npz archive" in err
    np.savez(tmp_path / "obj.npz", image=np.array([x, "a"], dtype=object), text=y)
    code, _, err = run(capsys, "--embeddings", tmp_path / "obj.npz")
    assert code == 2 and "array 'image' in obj.npz cannot be read" in err
    code, _, err = run(capsys, "--embeddings", tmp_path / "nope.npz")
    assert code == 2 and "does not exist" in err


def test_value_errors_from_data(tmp_path, capsys):
    x, y = pairs(6, d=3)
    y[2] = np.nan
    np.savez(tmp_path / "nan.npz", image=x, text=y, lab=np.arange(5))
    code, _, err = run(capsys, "--embeddings", tmp_path / "nan.npz")
    assert code == 2 and "text_emb: row 2 contains NaN or inf" in err
    code, _, err = run(capsys, "--embeddings", tmp_path / "nan.npz", "--labels", "lab")
    assert code == 2 and "--labels: expected one label per pair, shape (6,)" in err
    np.savez(tmp_path / "mis.npz", image=x, text=y[:, :2])
    code, _, err = run(capsys, "--embeddings", tmp_path / "mis.npz")
    assert code == 2 and "shapes differ" in err


def test_argparse_rejects_missing_source_and_both_scales(npz, capsys):
    with pytest.raises(SystemExit) as e:
        main(["ad"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main(["ad", "--embeddings", str(npz), "--scale", "0", "1", "--no-scale"])
    assert e.value.code == 2


def test_dataset_with_fake_embedder(tmp_path, capsys, monkeypatch):
    root = write_dataset(tmp_path / "ds")
    (root / "orphan.png").write_bytes(b"x")
    seen = {}

    def load_embedder(path):
        seen["path"] = path
        return FakeEmbedder()

    fake = types.ModuleType("core.models.dual")
    fake.load_embedder = load_embedder  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "core.models.dual", fake)
    code, out, err = run(
        capsys, "--dataset", root, "--clip", "w.safetensors", "--no-scale", "--json"
    )
    assert code == 0 and seen["path"] == "w.safetensors"
    d = json.loads(out)
    assert d["n"] == 9 and d["scale"] is None
    assert "1 image(s) without a .txt caption" in err


def test_dataset_without_dual_encoder_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "core.models.dual", None)  # import fails
    code, _, err = run(capsys, "--dataset", tmp_path)
    assert code == 2 and "--dataset: the dual encoder is not available" in err
    assert "--embeddings FILE.npz" in err
