"""``train-base``: train the mini latent diffusion model from scratch on the concept world.

Four stages, each resumable: (1) CLIP dual encoder, contrastive with label-aware targets;
(2) VAE (reconstruction + tiny KL); (3) judge, on real and VAE-reconstructed images so that it
reads decoder output as well as real pixels; (4) UNet, DDPM ε-prediction on frozen VAE latents and
frozen CLIP text states, caption dropout for classifier-free guidance, EMA weights.

Stage outputs and UNet checkpoints go to ``<out>/checkpoints``; the finished model is written with
:meth:`MiniLDM.save_pretrained` to ``<out>``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from core.io import atomic_write_json, atomic_write_with, ensure_writable_dir, seed_everything
from core.models.ldm import MiniLDM
from core.training.config import TrainConfig

OnStep = Callable[[str, int, int, float], None]  # (stage, step, total, loss)
STAGES = ("dual", "vae", "judge", "unet")


class _Stage:
    """Bookkeeping shared by the stages: progress bar, callback, done markers."""

    def __init__(self, ckpt: Path, on_step: OnStep | None) -> None:
        self.ckpt = ckpt
        self.on_step = on_step
        state_file = ckpt / "state.json"
        self.state: dict[str, Any] = (
            json.loads(state_file.read_text()) if state_file.exists() else {}
        )

    def done(self, stage: str) -> bool:
        return stage in self.state.get("done", [])

    def mark(self, stage: str, **info: Any) -> None:
        self.state.setdefault("done", []).append(stage)
        self.state.setdefault("metrics", {})[stage] = info
        atomic_write_json(self.ckpt / "state.json", self.state)

    def loop(self, stage: str, total: int, start: int = 0) -> tqdm:
        return tqdm(
            range(start, total),
            desc=f"train-base {stage}",
            initial=start,
            total=total,
            dynamic_ncols=True,
        )

    def report(self, stage: str, step: int, total: int, loss: float) -> None:
        if self.on_step is not None:
            self.on_step(stage, step, total, loss)


def _save_module(module: torch.nn.Module, path: Path) -> None:
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    atomic_write_with(path, lambda p: save_file(state, str(p)))


def train_base(
    config: TrainConfig,
    out: Path,
    on_step: OnStep | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Train all components into ``out``; resumes from ``out/checkpoints`` if present.

    Returns the metrics dict also written to ``out/model.json``.
    """
    out = ensure_writable_dir(Path(out), "out")
    ckpt = out / "checkpoints"
    ckpt.mkdir(exist_ok=True)
    atomic_write_json(out / "train_config.json", config.to_dict())
    seed_everything(config.seed)
    device = torch.device(config.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: CUDA requested but not available; use --device cpu")
    ldm = MiniLDM.build(config.world, config.model, seed=config.seed).to(device)
    world = ldm.world
    data = world.sample(config.n_per_concept, seed=config.seed)
    images = torch.from_numpy(data.images).to(device)
    labels = torch.from_numpy(data.labels).to(device)
    attrs = torch.from_numpy(world.attribute_ids).to(device)[labels]
    g = torch.Generator("cpu").manual_seed(config.seed)
    st = _Stage(ckpt, on_step)
    stop = should_stop or (lambda: False)
    t0 = time.time()

    from core.training.stages import train_dual, train_judge, train_unet, train_vae

    caps = data.captions
    stages: tuple[tuple[str, Callable[[], dict[str, Any]], torch.nn.Module], ...] = (
        ("dual", lambda: train_dual(ldm, config, images, labels, caps, g, st, stop), ldm.clip),
        ("vae", lambda: train_vae(ldm, config, images, g, st, stop), ldm.vae),
        ("judge", lambda: train_judge(ldm, config, images, attrs, g, st, stop), ldm.judge),
    )
    for name, run_stage, module in stages:
        path = ckpt / f"{name}.safetensors"
        if st.done(name) and path.exists():
            module.load_state_dict(load_file(str(path)))
            continue
        metrics = run_stage()
        if stop():
            return {"stopped": name}
        _save_module(module, path)
        st.mark(name, **metrics)
    if not st.done("unet"):
        metrics = train_unet(ldm, config, images, caps, g, st, stop)
        if stop():
            return {"stopped": "unet"}
        st.mark("unet", **metrics)
    else:
        ldm.vae.register_to_config(scaling_factor=st.state["metrics"]["unet"]["latent_scale"])
        ldm.unet.load_state_dict(load_file(str(ckpt / "unet_ema.safetensors")))
    result = {
        "train_seconds": round(time.time() - t0, 1),
        "stages": st.state["metrics"],
        "parameters": ldm.n_parameters(),
        "train_config": config.to_dict(),
    }
    ldm.save_pretrained(out, extra={"training": result, "seed": config.seed})
    return result
