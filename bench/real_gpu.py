"""GPU benchmark of the real-SD path on a tiny random SD at 64 px (one H200; bf16).

    python3 bench/real_gpu.py                      # ~50 training steps per mode + sampling
    python3 bench/real_gpu.py --steps 5 --out /tmp/b.json
    python3 bench/real_gpu.py --sdxl --out bench/results/real_gpu_sdxl.json   # tiny SDXL

Builds a tiny random SD folder (core.models.tiny) and a synthetic 256-image dataset in a temp dir,
then for each mode (full, xattn, lora) fine-tunes ``--steps`` steps with bf16 autocast through
core.training.real.finetune_real, and samples ``--samples`` images with 25 DDIM steps. Reports
training img/s per mode, sampling img/s and peak CUDA memory; writes JSON to ``--out`` (default
bench/results/real_gpu.json). ``--sdxl`` does the same on a tiny random SDXL base (two text
encoders, pooled text + size conditioning). Needs CUDA; exits 2 without it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.io import atomic_write_json, run_metadata  # noqa: E402
from core.models.sd import load_sd  # noqa: E402
from core.models.tiny import build_tiny_sd, build_tiny_sdxl  # noqa: E402
from core.training.real import FolderCheckpoints, RealFinetuneConfig, finetune_real  # noqa: E402


class _Quiet:
    def __init__(self, folder: Path) -> None:
        ck = FolderCheckpoints(folder)
        self.save_checkpoint, self.latest_checkpoint = ck.save_checkpoint, ck.latest_checkpoint

    def progress(self, *a: object, **k: object) -> None:
        pass

    def should_stop(self) -> bool:
        return False


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--samples", type=int, default=64)
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--sdxl", action="store_true", help="a tiny SDXL base instead of SD")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "real_gpu.json")
    a = p.parse_args()
    if not torch.cuda.is_available():
        print("bench/real_gpu.py: needs a CUDA device", file=sys.stderr)
        return 2
    torch.backends.cuda.matmul.allow_tf32 = True
    from PIL import Image

    family = "sdxl" if a.sdxl else "sd"
    result: dict[str, object] = {"device": torch.cuda.get_device_name(0), "family": family}
    result["modes"] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = (build_tiny_sdxl if a.sdxl else build_tiny_sd)(root / family, a.resolution)
        data = root / "data"
        data.mkdir()
        rng = np.random.default_rng(0)
        for i in range(256):
            arr = rng.integers(0, 256, (a.resolution, a.resolution, 3), dtype=np.uint8)
            Image.fromarray(arr).save(data / f"{i:04d}.png")
            (data / f"{i:04d}.txt").write_text(f"a photo of a {['dog', 'cat', 'car'][i % 3]}")
        for mode in ("full", "xattn", "lora"):
            sd = load_sd(model, "cuda")
            cfg = RealFinetuneConfig(
                model=str(model), data=(str(data),), out=str(root / mode), mode=mode,
                steps=a.steps, batch=a.batch, lr=1e-4, mixed_precision="bf16", device="cuda",
            )  # fmt: skip
            torch.cuda.reset_peak_memory_stats()
            torch.cuda.synchronize()
            r = finetune_real(sd, cfg, _Quiet(root / mode / "checkpoints"))
            torch.cuda.synchronize()
            result["modes"][mode] = {  # type: ignore[index]
                "train_images_per_second": r["images_per_second"],
                "loss": r["loss"],
                "trainable_parameters": r["trainable_parameters"],
                "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3),
            }
            print(mode, result["modes"][mode], flush=True)  # type: ignore[index]
        sd = load_sd(model, "cuda", dtype=torch.bfloat16)
        torch.cuda.reset_peak_memory_stats()
        t0 = time.time()
        sd.sample(["a photo of a dog"] * a.samples, steps=25, batch=a.samples)
        torch.cuda.synchronize()
        dt = time.time() - t0
    modes = result["modes"]
    result["train_images_per_second"] = min(m["train_images_per_second"] for m in modes.values())  # type: ignore[attr-defined]
    result["sample_images_per_second"] = round(a.samples / dt, 2)
    result["peak_memory_gib"] = max(
        [m["peak_memory_gib"] for m in modes.values()]  # type: ignore[attr-defined]
        + [round(torch.cuda.max_memory_allocated() / 2**30, 3)]
    )
    result.update(run_metadata(0))
    atomic_write_json(a.out, result)
    print(json.dumps({k: v for k, v in result.items() if k != "modes"}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
