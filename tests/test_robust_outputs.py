"""Nothing saved is overwritten: one output guard (core.io.check_output / replace_output).

Never the input, never a non-empty folder without --force, built in a temp sibling then renamed
(a replaced pack is never mixed with the old one).
"""

from __future__ import annotations

import shutil

import pytest

from core.cli import main
from core.io import REPO_ROOT, check_output, replace_output

DEMO = REPO_ROOT / "assets" / "demo"


def test_output_guard_rules(tmp_path):
    src = tmp_path / "model"
    (src / "unet").mkdir(parents=True)
    for bad in (src, src / "unet", tmp_path):
        with pytest.raises(ValueError, match="--out .*nested with --model"):
            check_output(bad, inputs=[("--model", src)])
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("keep")
    with pytest.raises(ValueError, match="folder is not empty; .* or pass --force"):
        check_output(full)
    with pytest.raises(ValueError, match="folder is not empty; choose a new or empty folder$"):
        check_output(full, force_option=None)
    assert check_output(full, resumable=lambda p: (p / "x").exists()) == full
    with pytest.raises(RuntimeError):  # a failure while writing leaves the old folder as it was
        with replace_output(full) as tmp:
            (tmp / "half").write_text("")
            raise RuntimeError("killed")
    assert [p.name for p in full.iterdir()] == ["x"]
    assert not list(tmp_path.glob(".*.tmp"))
    with replace_output(full) as tmp:
        (tmp / "new").write_text("")
    assert [p.name for p in full.iterdir()] == ["new"]


def test_real_finetune_never_writes_into_its_model_or_data(tmp_path, capsys):
    model, data = tmp_path / "sd", tmp_path / "data"
    (model / "unet").mkdir(parents=True)
    (model / "model_index.json").write_text("{}")
    data.mkdir()
    before = sorted(p.name for p in model.rglob("*"))
    for out in (model, model / "unet", data / "out"):
        argv = ["real", "finetune", "--model", str(model), "--data", str(data), "--out", str(out)]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "--out" in err and "nested with" in err and err.count("\n") == 1
    other = tmp_path / "someone-elses-folder"
    other.mkdir()
    (other / "photo.jpg").write_bytes(b"")
    argv = ["real", "finetune", "--model", str(model), "--data", str(data), "--out", str(other)]
    assert main(argv) == 2
    assert "folder is not empty; choose a new or empty folder" in capsys.readouterr().err
    assert sorted(p.name for p in model.rglob("*")) == before


@pytest.mark.skipif(not (DEMO / "results.json").is_file(), reason="no shipped demo pack")
def test_sweep_pack_never_replaces_or_mixes_another_pack(tmp_path, capsys):
    out = tmp_path / "pack"
    out.mkdir()
    (out / "grids").mkdir()
    (out / "grids" / "cp999_seed0.png").write_bytes(b"another pack's grid")
    (out / "README.md").write_text("another pack")
    shutil.copy(DEMO / "results.json", out / "results.json")
    assert main(["sweep-pack", str(DEMO), "--out", str(out)]) == 2
    assert "folder is not empty" in capsys.readouterr().err
    assert (out / "README.md").read_text() == "another pack"
    assert main(["sweep-pack", str(DEMO), "--out", str(DEMO / "grids")]) == 2
    assert "nested with sweep_dir" in capsys.readouterr().err
    assert main(["sweep-pack", str(DEMO), "--out", str(out), "--force"]) == 0
    assert not (out / "grids" / "cp999_seed0.png").exists() and not (out / "README.md").exists()
    assert (out / "results.json").read_bytes() == (DEMO / "results.json").read_bytes()
    assert not list(tmp_path.glob(".*"))  # no temp sibling left
