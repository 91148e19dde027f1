"""User mistakes give one clear line naming the option, before any work (issue 13).

One test per class: silent wrong results (non-finite guidance, unbounded -n), tracebacks for
user mistakes (--device, paths that are folders, values validated only after compute), and
library messages passed through (corrupt tables).
"""

from __future__ import annotations

import json

import pytest

from core.cli import main


def _err(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err  # exactly one line, no traceback
    return err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--guidance", "nan"], "--guidance must be a finite number"),
        (["--guidance", "inf"], "--guidance must be a finite number"),
        (["-n", "1000000"], "-n must be ≥ 1 and ≤ 1024"),
        (["--steps", "0"], "--steps must be in 1..1000"),
        (["--device", "tpu"], "--device 'tpu': unknown device"),
    ],
)
def test_sampling_values_are_checked_before_any_work(
    tiny_model_dir, tmp_path, capsys, monkeypatch, extra, message
):
    import core.commands.base as base

    def no_model(path):  # nothing may be loaded or sampled for a bad value
        raise AssertionError("the model was loaded before the options were checked")

    monkeypatch.setattr(base, "load_model", no_model)
    out = tmp_path / "g.png"
    argv = ["generate", "--model", str(tiny_model_dir), "--prompt", "a red star", *extra]
    if "--device" in extra:
        argv = ["train-base", "--out", str(tmp_path / "m"), "--tiny", "--device", "tpu"]
    assert main([*argv, "--out", str(out)] if argv[0] == "generate" else argv) == 2
    assert message in _err(capsys)
    assert not out.exists()
    if "--guidance" in extra:
        assert main(["eval-base", "--model", str(tiny_model_dir), *extra]) == 2
        assert message in _err(capsys)


def test_cuda_without_cuda_is_one_line(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(["train-base", "--out", str(tmp_path / "m"), "--tiny", "--device", "cuda"]) == 2
    err = _err(capsys)
    assert "--device cuda: CUDA is not available here" in err and "--device cpu" in err
    assert main(["jobs", "start", "dummy", "--device", "cuda:0"]) == 2
    assert "CUDA is not available" in _err(capsys)
    # the README's GPU command: the preset's own device is checked too, before any work
    assert main(["sweep", "--preset", "gpu-full", "--out", str(tmp_path / "s")]) == 2
    assert "preset gpu-full runs on cuda: CUDA is not available here" in _err(capsys)
    assert not (tmp_path / "s").exists()


def test_output_paths_are_checked_before_the_work_and_never_overwritten(
    tiny_model_dir, tmp_path, capsys
):
    argv = ["generate", "--model", str(tiny_model_dir), "--prompt", "a red star", "--steps", "1"]
    folder = tmp_path / "looks-like.png"
    folder.mkdir()
    assert main([*argv, "-n", "1", "--out", str(folder)]) == 2
    assert "is a folder" in _err(capsys)
    out = tmp_path / "g.png"
    assert main([*argv, "-n", "1", "--out", str(out)]) == 0
    capsys.readouterr()
    first = out.read_bytes()
    assert main([*argv, "-n", "2", "--out", str(out)]) == 2
    assert "already exists; choose a new name or pass --force" in _err(capsys)
    assert out.read_bytes() == first
    assert main([*argv, "-n", "2", "--out", str(out), "--force"]) == 0
    assert out.read_bytes() != first


def test_any_oserror_is_one_clear_line(tmp_path, capsys):
    # A --note that is a folder: a check names the option; an OSError deeper down is one line.
    from core.cli import describe_os_error

    assert main(["sweep-pack", str(tmp_path), "--out", str(tmp_path / "p"), "--note",
                 str(tmp_path)]) == 2  # fmt: skip
    assert "--note" in _err(capsys)
    line = describe_os_error(IsADirectoryError(21, "Is a directory", str(tmp_path)))
    assert line == f"Is a directory: {tmp_path} (it is a folder; give a file path)"
    long_name = "x" * 300
    assert main(["jobs", "logs", long_name]) == 2
    assert "unknown run" in _err(capsys)


def test_values_validated_before_minutes_of_compute(tmp_path, capsys, monkeypatch):
    import core.sweep.mini.budget as budget

    monkeypatch.setattr(budget, "run_budget_sweep", lambda *a, **k: pytest.fail("work started"))
    argv = ["sweep-budget", "--out", str(tmp_path / "b"), "--eval-samples", "0"]
    rc = main(argv)
    if rc == 2:
        assert "--eval-samples must be ≥ 1, got 0" in _err(capsys)
    else:  # sweep-budget needs other required options in this checkout
        pytest.fail(capsys.readouterr().err)


def test_tables_with_bad_rows_or_corrupt_files_give_clear_messages(tmp_path):
    from PIL import Image

    from core.data.captioned import DataReport, iter_records

    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    table = tmp_path / "t.jsonl"
    table.write_text(
        "\n".join([json.dumps({"image": "a.png", "caption": "a dog"}), "[1, 2]", '"text"', "{"])
    )
    report = DataReport()
    recs = list(iter_records(table, report))
    assert [r.caption for r in recs] == ["a dog"]
    assert report.skipped_count == {"bad_row": 3}
    bad = tmp_path / "t.parquet"
    bad.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(ValueError, match="not a readable parquet file"):
        list(iter_records(bad))
    cols = tmp_path / "c.csv"
    cols.write_text("path_to_img,words\na.png,a dog\n")
    with pytest.raises(ValueError) as e:
        list(iter_records(cols))
    assert "--image-column" not in str(e.value) and "rename the image column" in str(e.value)


def test_corrupt_files_are_one_clear_line_not_a_library_message(tmp_path, capsys):
    text = tmp_path / "emb.npz"
    text.write_text("hello, not numpy")
    assert main(["ad", "--embeddings", str(text)]) == 2
    err = _err(capsys)
    assert "is not an .npz archive" in err and "unsafely" not in err and "pickle" not in err
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    for name in ("results.json", "embeddings.npz", "generations.npz", "training.json"):
        (sweep / name).write_text('{"complete": tr')
    assert main(["sweep-pack", str(sweep), "--out", str(tmp_path / "pack")]) == 2
    err = _err(capsys)
    assert "results.json is not valid JSON at line 1" in err
    assert "different sweep" not in err


def test_corrupt_clip_weights_are_a_clear_error(tmp_path):
    from core.models.dual import ClipEmbedder
    from core.models.tiny import build_tiny_clip

    clip = build_tiny_clip(tmp_path / "clip", image_size=32)
    weights = clip / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ValueError, match=r"--clip .*cannot load this CLIP folder \(Safetensor"):
        ClipEmbedder(clip)
    weights.unlink()
    (clip / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(ValueError, match=r"only pickle weights \(pytorch_model.bin\)"):
        ClipEmbedder(clip)


# Options of other programs named in our messages (streamlit, huggingface-cli, accelerate).
OTHER_TOOLS = {"--browser", "--server", "--local-dir", "--include", "--exclude", "--cpu",
               "--config_file"}  # fmt: skip
# Chromium's own flags: the handout prints its PDF through a headless Chromium
OTHER_TOOLS |= {"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
                "--user-data-dir", "--no-pdf-header-footer", "--print-to-pdf"}  # fmt: skip


def test_messages_only_suggest_options_that_exist():
    """Every ``--option`` named in core's text is an option of some implosion command."""
    import argparse
    import re

    from core.cli import COMMANDS, build_parser
    from core.io import REPO_ROOT

    options: set[str] = set()

    def walk(parser: argparse.ArgumentParser) -> None:
        for action in parser._actions:
            options.update(action.option_strings)
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    walk(sub)

    for name in COMMANDS:
        walk(build_parser([name]))
    sources = sorted((REPO_ROOT / "core").rglob("*.py"))
    for path in sources:  # module scripts with their own parser (python -m core.…)
        options.update(re.findall(r"add_argument\(\s*\"(--[\w-]+)\"", path.read_text()))
    unknown = []
    for path in sources:
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if "add_argument" in line:
                continue
            for opt in re.findall(r"(?<![\w-])(--[a-z][a-z0-9_-]*[a-z0-9])", line):
                if opt not in options and opt not in OTHER_TOOLS:
                    unknown.append(f"{path.relative_to(REPO_ROOT)}:{i}: {opt}")
    assert not unknown, unknown


def test_corrupt_sweep_results_are_called_corrupt_not_a_different_sweep(tiny_model_dir, tmp_path):
    from core.sweep.mini.run import preset, run_sweep

    out = tmp_path / "s"
    out.mkdir()
    (out / "results.json").write_text('{"config": {"lev')
    with pytest.raises(ValueError, match=r"results.json is corrupt \(not valid JSON") as e:
        run_sweep(preset("ci-smoke", model=str(tiny_model_dir)), out)
    assert "different sweep" not in str(e.value)
    assert (out / "results.json").read_text() == '{"config": {"lev'  # nothing overwritten
