"""JobContext in-process: checkpoints (files and folders), pruning, recovery, progress."""

from __future__ import annotations

import json
import os

import pytest

from core.jobs import RunContext


@pytest.fixture
def ctx(tmp_path):
    return RunContext(tmp_path / "run", device="cpu")


def test_checkpoint_files_keep_and_latest(ctx):
    assert ctx.latest_checkpoint() is None
    for i in (1, 2, 3):
        ctx.save_checkpoint(f"c{i}.json", lambda p, i=i: p.write_text(json.dumps(i)), keep=2)
    assert ctx.latest_checkpoint() == ctx.checkpoint_dir / "c3.json"
    assert sorted(p.name for p in ctx.checkpoint_dir.iterdir()) == [
        "c2.json",
        "c3.json",
        "latest.json",
    ]
    (ctx.checkpoint_dir / "latest.json").unlink()  # e.g. killed before the pointer write
    assert ctx.latest_checkpoint() == ctx.checkpoint_dir / "c3.json"


def test_failed_writer_leaves_previous_checkpoint(ctx):
    ctx.save_checkpoint("a.json", lambda p: p.write_text("1"))

    def broken(p):
        p.write_text("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        ctx.save_checkpoint("b.json", broken)
    assert ctx.latest_checkpoint() == ctx.checkpoint_dir / "a.json"
    assert sorted(p.name for p in ctx.checkpoint_dir.iterdir()) == ["a.json", "latest.json"]
    with pytest.raises(ValueError, match="plain file name"):
        ctx.save_checkpoint("../x", lambda p: None)


def test_folder_checkpoint_replaced_and_recovered_after_kill_mid_swap(ctx, tmp_path):
    def folder(tag):
        def write(p):
            p.mkdir()
            (p / "weights.bin").write_text(tag)

        return write

    ctx.save_checkpoint("model", folder("v1"))
    ctx.save_checkpoint("model", folder("v2"))
    assert (ctx.latest_checkpoint() / "weights.bin").read_text() == "v2"
    # Simulate a kill between the two renames of a folder swap, plus a torn temp folder.
    os.replace(ctx.checkpoint_dir / "model", ctx.checkpoint_dir / ".model.old")
    (ctx.checkpoint_dir / ".model.123.tmp").mkdir()
    fresh = RunContext(tmp_path / "run", device="cpu")
    assert (fresh.latest_checkpoint() / "weights.bin").read_text() == "v2"
    assert not list(fresh.checkpoint_dir.glob(".*"))


def test_progress_eta_history_and_nan(ctx):
    for step in range(1, 6):
        ctx.progress(step, 10, loss=float("nan") if step == 5 else 1.0 / step, lr=0.1)
    ctx.flush()
    progress = json.loads((ctx.run_dir / "progress.json").read_text())
    assert progress["step"] == 5 and progress["total"] == 10 and progress["loss"] is None
    assert progress["eta_seconds"] is not None and progress["metrics"] == {"lr": 0.1}
    lines = (ctx.run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3, 4, 5]
    again = RunContext(ctx.run_dir)  # a resumed attempt continues the loss history
    assert len(again._history) == 5
