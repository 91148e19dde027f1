"""2-step fine-tunes in each mode (which weights changed), resume, job kind, CLI, accelerate."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from core.training.real import RealFinetuneConfig, run_finetune, run_job


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    (f,) = (folder / "unet").glob("*.safetensors")
    return load_file(str(f))


def _changed(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> set[str]:
    assert a.keys() == b.keys()
    return {k for k in a if not torch.equal(a[k].float(), b[k].float())}


def _cfg(tiny_sd_dir, data, out, **kw) -> RealFinetuneConfig:
    base = dict(model=str(tiny_sd_dir), data=(str(data),), out=str(out), steps=2, batch=2, lr=1e-3)
    return RealFinetuneConfig(**{**base, **kw})


def _check_changed(mode: str, base: Path, out: Path) -> set[str]:
    """The UNet weights a fine-tune in ``mode`` wrote to ``out`` differ from ``base`` exactly
    where the mode trains (LoRA: the attn2 projections, through the merge)."""
    changed = _changed(_weights(base), _weights(out))
    assert changed
    if mode == "full":
        assert "conv_in.weight" in changed
    else:
        assert all(".attn2." in k for k in changed), sorted(changed)[:5]
    if mode == "lora":  # base weights of the projections change only through the merge
        assert all(k.endswith(("to_q.weight", "to_k.weight", "to_v.weight", "0.weight"))
                   for k in changed)  # fmt: skip
        assert (out / "unet_lora" / "adapter_model.safetensors").is_file()
    meta = json.loads((out / "finetune.json").read_text())
    assert meta["config"]["mode"] == mode
    return changed


@pytest.mark.parametrize("mode", ["full", "xattn", "lora"])
def test_modes_change_the_right_weights(mode, tiny_sd_dir, messy_data, tmp_path):
    extra = {"mixed_precision": "bf16", "gradient_checkpointing": True} if mode == "lora" else {}
    r = run_finetune(_cfg(tiny_sd_dir, messy_data, tmp_path / mode, mode=mode, **extra), True)
    assert r["steps"] == 2 and r["completed"] and r["data"]["loaded"] >= 4
    _check_changed(mode, tiny_sd_dir, tmp_path / mode)


@pytest.mark.parametrize("mode", ["full", "xattn", "lora"])
def test_sdxl_modes_resume_and_save_sdxl(mode, tiny_sdxl_dir, messy_data, tmp_path):
    """SDXL: step 1, then a resumed step 2; the UNet got text_embeds/time_ids (full mode trains
    the added-condition embedding); the output is again an SDXL folder that samples."""
    from core.models.sd import load_sd

    out = tmp_path / mode
    extra = {"mixed_precision": "bf16", "gradient_checkpointing": True} if mode == "lora" else {}
    run_finetune(_cfg(tiny_sdxl_dir, messy_data, out, mode=mode, steps=1, **extra), True)
    r = run_finetune(_cfg(tiny_sdxl_dir, messy_data, out, mode=mode, **extra), True)
    assert r["steps"] == 2 and r["completed"]
    ckpts = sorted(p.name for p in (out / "checkpoints").glob("step-*.pt"))
    assert ckpts == ["step-0000001.pt", "step-0000002.pt"]  # the 2nd run resumed from step 1
    changed = _check_changed(mode, tiny_sdxl_dir, out)
    assert ("add_embedding.linear_1.weight" in changed) == (mode == "full")
    sd = load_sd(out)
    assert sd.is_sdxl and sd.sample(["a dog"], steps=2).shape == (1, 3, 32, 32)


def test_resume_continues_from_checkpoint(tiny_sd_dir, messy_data, tmp_path):
    out = tmp_path / "run"
    run_finetune(_cfg(tiny_sd_dir, messy_data, out, steps=1), True)
    assert [p.name for p in (out / "checkpoints").glob("*.pt")] == ["step-0000001.pt"]
    r = run_finetune(_cfg(tiny_sd_dir, messy_data, out, steps=2), True)
    assert r["steps"] == 2
    assert sorted(p.name for p in (out / "checkpoints").glob("*.pt"))[-1] == "step-0000002.pt"


class _Ctx:
    def __init__(self, run_dir: Path, stop_after: int) -> None:
        from core.training.real import FolderCheckpoints

        self.run_dir, self.device, self.steps = run_dir, "cpu", []
        self._ck = FolderCheckpoints(run_dir / "checkpoints")
        self.save_checkpoint = self._ck.save_checkpoint
        self.latest_checkpoint = self._ck.latest_checkpoint
        self.stop_after = stop_after

    def progress(self, step, total, loss=None, **_):
        self.steps.append(step)

    def should_stop(self):
        return len(self.steps) >= self.stop_after


def test_job_kind_stop_and_resume(tiny_sd_dir, messy_data, tmp_path):
    import core.commands.real  # noqa: F401  (registers the kind)
    from core.jobs import kinds

    assert kinds()["real-finetune"] == "core.training.real:run_job"
    cfg = {"model": str(tiny_sd_dir), "data": [str(messy_data)], "steps": 2, "batch": 2}
    r = run_job(cfg, _Ctx(tmp_path, stop_after=1))
    assert r["steps"] == 1 and not r["completed"] and not (tmp_path / "model").exists()
    ctx = _Ctx(tmp_path, stop_after=99)
    r = run_job(cfg, ctx)
    assert ctx.steps == [2] and r["completed"] and (tmp_path / "model" / "unet").is_dir()
    with pytest.raises(ValueError, match="unknown fine-tune settings"):
        run_job({**cfg, "stepz": 3}, ctx)


def test_cli_end_to_end_and_errors(tiny_sd_dir, messy_data, tmp_path, capsys):
    from core.commands.real import main

    assert main(["check", "--model", str(tiny_sd_dir), "--data", str(messy_data), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["resolution"] == 32 and info["data"][str(messy_data)]["pairs"] == 8
    args = ["poison", "--data", str(messy_data), "--concept", "dog", "--target", "cat,kitten"]
    assert main([*args, "--budget", "2", "--resolution", "16", "--out", str(tmp_path / "p")]) == 0
    ft = ["finetune", "--model", str(tiny_sd_dir), "--data", str(messy_data), "--data"]
    ft += [str(tmp_path / "p"), "--out", str(tmp_path / "ft"), "--steps", "1", "--batch", "2"]
    assert main([*ft, "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["steps"] == 1
    assert main([*ft[:-4], "--steps", "0"]) == 2
    assert main(["check", "--model", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "must be ≥ 1" in err and "no such folder" in err


def _accelerate_cmd(tiny_sd_dir, data, out, n):
    # `accelerate launch --cpu` starts several processes only through mpirun; torchrun's path
    # (--multi_gpu) works without GPUs when the script itself asks for the CPU (Accelerator(cpu=)).
    return [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(n),
            "--multi_gpu", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
            "-m", "core.training.accelerate_train", "--model", str(tiny_sd_dir), "--data", str(data),
            "--out", str(out), "--steps", "2", "--batch", "1", "--mode", "lora", "--cpu"]  # fmt: skip


def test_accelerate_script_resumes_and_shares_checkpoints(
    tiny_sd_dir, messy_data, tmp_path, capsys
):
    """One process in-process: stop after step 1, resume to 2; core.training.real resumes to 3."""
    from core.training.accelerate_train import main

    out = tmp_path / "acc"
    args = ["--model", str(tiny_sd_dir), "--data", str(messy_data), "--out", str(out)]
    args += ["--batch", "1", "--mode", "lora", "--cpu", "--checkpoint_every", "1"]
    assert main([*args, "--steps", "1"]) == 0
    assert main([*args, "--steps", "2"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["resumed_from"] == 1 and result["steps"] == 2
    ckpts = sorted(p.name for p in (out / "checkpoints").glob("step-*.pt"))
    assert ckpts == ["step-0000001.pt", "step-0000002.pt"]
    state = torch.load(out / "checkpoints" / ckpts[-1], map_location="cpu", weights_only=True)
    assert state["step"] == 2 and state["positions"] == [[state["epoch"], state["consumed"]]]
    r = run_finetune(_cfg(tiny_sd_dir, messy_data, out, steps=3, batch=1, mode="lora"), True)
    assert r["steps"] == 3 and r["completed"]


@pytest.mark.slow
def test_accelerate_launch_two_processes(tiny_sd_dir, messy_data, tmp_path):
    """``accelerate launch --multi_gpu --num_processes 2 … --cpu``: 2 gloo CPU processes."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    cmd = _accelerate_cmd(tiny_sd_dir, messy_data, tmp_path / "acc", 2)
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    result = json.loads(p.stdout.strip().splitlines()[-1])
    assert result["processes"] == 2 and result["steps"] == 2
    assert (tmp_path / "acc" / "unet_lora").is_dir()


@pytest.mark.gpu
def test_gpu_bench_script(tmp_path):
    """bench/real_gpu.py on a CUDA device: tiny SD at 64 px, bf16, a few steps."""
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    bench = Path(__file__).resolve().parents[2] / "bench" / "real_gpu.py"
    if not bench.is_file() or shutil.which("nvidia-smi") is None:
        pytest.skip("bench/real_gpu.py or nvidia-smi missing")
    cmd = [sys.executable, str(bench), "--steps", "5", "--out", str(tmp_path / "b.json")]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads((tmp_path / "b.json").read_text())
    assert r["train_images_per_second"] > 0 and r["peak_memory_gib"] > 0
