"""A sweep or fine-tune that cannot run is refused in the launching process, with one line and
exit 2, whether it would run in the foreground or as a background job; memory caps; one writer
per output folder; the emulated-bf16 warning."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import replace

import pytest

from core.cli import main
from core.jobs.outlock import OutputBusy, check_output_free, hold_output
from core.sweep.mini.checks import check_memory, level_memory_bytes
from core.sweep.mini.config import PRESETS, preset

GiB = 2**30


@pytest.fixture
def runs(tmp_path, monkeypatch):
    """A private runs folder, so 'no job was created' can be checked."""
    root = tmp_path / "runs"
    monkeypatch.setenv("IMPLOSION_RUNS", str(root))
    return root


def jobs_created(root) -> list[str]:
    return sorted(p.name for p in root.rglob("status.json")) if root.exists() else []


REFUSED = [
    (["--levels", "0", "33"], r"levels: C_P values \[33\] exceed K=32"),
    (["--seeds", "99999999999999999999"], r"seeds must be ≤ 2147483647"),
    (["--workers", "0"], r"workers must be ≥ 1, got 0"),
    (["--out", "{file}/sub"], r"out: cannot write to .*Not a directory"),
    (["--executor", "ray", "--gpus-per-level", "1"], r"--gpus-per-level: a level asks for 1 GPU"),
    (["--executor", "ray", "--cpus-per-level", "1000"], r"--cpus-per-level: .* 1000 CPU"),
]


@pytest.mark.parametrize("background", [True, False], ids=["background", "foreground"])
@pytest.mark.parametrize("flags,why", REFUSED, ids=[f[0][0] + f[0][-1] for f in REFUSED])
def test_sweep_refused_before_any_work(flags, why, background, runs, tmp_path, capsys):
    if "--executor" in flags:
        pytest.importorskip("ray")
        from core.sweep.executors.resources import this_machine

        if "--gpus-per-level" in flags and this_machine()["GPU"] >= 1:
            pytest.skip("this machine has a GPU")
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    flags = [f.replace("{file}", str(afile)) for f in flags]
    out = [] if "--out" in flags else ["--out", str(tmp_path / "o")]
    args = ["sweep", "--preset", "ci-smoke", *out, *flags]
    assert main([*args, "--background"] if background else args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("implosion sweep: error:"), err
    assert __import__("re").search(why, err[0]), err[0]
    assert jobs_created(runs) == []
    assert not (tmp_path / "o" / "results.json").exists()


def test_finetune_budget_beyond_memory_is_refused(runs, capsys):
    rc = main(["finetune", "--concepts", "large red star", "--budget", "1000000000"])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert "poison_ratio: 1,000,000,000 poison pairs per concept (budget" in err
    assert "give at most" in err and "\n" not in err
    assert jobs_created(runs) == []


def test_memory_estimate_and_caps():
    cfg = PRESETS["cpu-full"]
    # the shipped presets fit an 8 GiB laptop with room to spare
    for p in PRESETS.values():
        check_memory(p, 32, 32, available=8 * GiB)
    # the estimate grows with poison pairs and clean images (K=32, 32 px)
    base = level_memory_bytes(cfg, 32, 32)
    assert level_memory_bytes(replace(cfg, poison_ratio=30.0), 32, 32) > base
    with pytest.raises(ValueError, match=r"poison_ratio: .* give at most [\d,]+ poison pairs"):
        check_memory(replace(cfg, poison_ratio=1e6), 32, 32, available=8 * GiB)
    many = replace(cfg, n_clean_per_concept=2_000_000)
    with pytest.raises(ValueError, match=r"n_clean_per_concept: 2,000,000 .* give at most"):
        check_memory(many, 32, 32, available=8 * GiB)
    # the cap it names fits, one more poison pair per concept does not
    big = replace(cfg, poison_ratio=1e6)
    with pytest.raises(ValueError) as e:
        check_memory(big, 32, 32, available=8 * GiB)
    most = int(str(e.value).rsplit("at most ", 1)[1].split()[0].replace(",", ""))
    check_memory(replace(cfg, poison_ratio=most / 32), 32, 32, available=8 * GiB)
    with pytest.raises(ValueError):
        check_memory(replace(cfg, poison_ratio=(most + 1000) / 32), 32, 32, available=8 * GiB)


HOLD = """
import sys, time
from pathlib import Path
from core.jobs.outlock import hold_output
with hold_output(Path(sys.argv[1]), "a test writer"):
    print("held", flush=True)
    time.sleep(600)
"""


@pytest.fixture
def held(tmp_path):
    """A separate process holding ``tmp_path / 'out'``'s writer lock; yields (out, process)."""
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    yield out, proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_second_writer_is_refused_naming_the_first(held):
    out, proc = held
    with pytest.raises(OutputBusy, match=rf"out: .* a test writer \(pid {proc.pid}"):
        check_output_free(out)
    with pytest.raises(OutputBusy, match="wait for it to finish, stop it"):
        with hold_output(out, "a second writer"):
            pass
    # the writer is killed: its lock goes with it, the next writer takes the folder
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    check_output_free(out)
    with hold_output(out, "the next writer"):
        info = json.loads((out / ".writer.lock").read_text())
        assert info["pid"] == os.getpid() and info["what"] == "the next writer"


def test_sweep_into_a_folder_being_written_is_refused(held, runs, capsys):
    out, proc = held
    (out / "results.json").write_text('{"first": true}')
    for bg in ([], ["--background"]):
        assert main(["sweep", "--preset", "ci-smoke", "--out", str(out), *bg]) == 2
        err = capsys.readouterr().err
        assert f"is being written by a test writer (pid {proc.pid}" in err
    assert json.loads((out / "results.json").read_text()) == {"first": True}
    assert jobs_created(runs) == []


def test_driver_takes_the_lock(held):
    """A sweep that got past the launcher (a job accepted before the other started) still meets
    the lock in the driver, before it reads or writes anything."""
    from core.sweep.engine import drive
    from core.sweep.executors import SerialExecutor

    out, proc = held

    class Runner:
        steps_per_level = 1

        def open(self):
            raise AssertionError("the driver read the folder of another writer")

    with pytest.raises(OutputBusy):
        drive(Runner(), out, SerialExecutor())  # type: ignore[arg-type]


def test_bf16_on_a_cpu_that_emulates_it_warns(monkeypatch, capsys, tmp_path):
    import torch

    import core.training.precision as P

    monkeypatch.setattr(P, "native_bf16", lambda device: False)
    note = P.emulated_bf16_warning("cpu", "bf16")
    assert note is not None and "no native bf16" in note
    assert P.emulated_bf16_warning("cpu", "fp32") is None
    assert P.emulated_bf16_warning("cpu", "auto") is None
    with pytest.warns(RuntimeWarning, match="no native bf16"):
        assert P.compute_dtype("cpu", "bf16") == torch.bfloat16  # honoured, with a warning
    args = ["sweep", "--preset", "ci-smoke", "--out", str(tmp_path / "o"), "--precision", "bf16"]
    assert main([*args, "--levels", "0", "99"]) == 2  # refused after the warning: no work done
    assert "warning: precision bf16: this CPU has no native bf16" in capsys.readouterr().err
    monkeypatch.setattr(P, "native_bf16", lambda device: True)
    assert P.emulated_bf16_warning("cpu", "bf16") is None


def test_preset_seeds_cap():
    with pytest.raises(ValueError, match="seeds must be ≤ 2147483647"):
        preset("ci-smoke", seeds=(2**31,))
    preset("ci-smoke", seeds=(2**31 - 1,))


@pytest.mark.parametrize("background", [True, False], ids=["background", "foreground"])
def test_out_holding_another_sweep_is_refused_at_launch(background, runs, tmp_path, capsys):
    """A folder with another sweep's results is refused before a job is accepted, not later in
    the worker; the folder's results stay as they were."""
    out = tmp_path / "o"
    out.mkdir()
    other = replace(preset("ci-smoke"), seeds=(7,))
    saved = {"config": {"sweep_config": other.to_dict()}, "records": []}
    text = json.dumps(saved)
    (out / "results.json").write_text(text)
    args = ["sweep", "--preset", "ci-smoke", "--out", str(out)]
    assert main([*args, "--background"] if background else args) == 2
    assert "holds results of a different sweep" in capsys.readouterr().err
    assert jobs_created(runs) == []
    assert (out / "results.json").read_text() == text
