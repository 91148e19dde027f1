"""Fine-tuning a real SD UNet on streamed (possibly poisoned) image/caption data.

Loss (DDPM, Ho et al. 2020): ‖ε_θ(z_t, t, c) − y‖², z_t = √ᾱ_t z_0 + √(1−ᾱ_t) ε, with y = ε for
epsilon models and y = v = √ᾱ_t ε − √(1−ᾱ_t) z_0 for v-prediction models (SD 2.x 768). z_0 is a
VAE posterior sample × scaling factor; c the frozen text conditioning (:meth:`RealSD.conditioning`:
CLIP text states; for SDXL also pooled text and size ids at the training resolution), of the
empty prompt with probability ``cfg_dropout`` so classifier-free guidance keeps working.

Checkpoints hold only the trainable weights, the optimizer, and the data position (epoch,
records consumed), so a resumed run continues on the same stream. The loop talks to the outside
through a :class:`~core.jobs.context.TrainContext` (``progress``, ``log``, ``should_stop``,
``save_checkpoint``, ``latest_checkpoint``): a job's, a sweep level's, or the CLI's printer (over
:class:`FolderCheckpoints`).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from core.data.captioned import DataReport, iter_records, load_image, shuffled
from core.io import atomic_write_json, atomic_write_with, check_output, run_metadata
from core.jobs.context import JobContext, TrainContext
from core.models.lora import (
    check_mode,
    load_trainable_state_dict,
    merge_lora_state_dict,
    setup_trainable,
    trainable_state_dict,
)
from core.models.sampling import training_loss
from core.models.sd import RealSD, load_sd
from core.training.precision import autocast, compute_dtype

# "auto": bf16 where the device runs it natively, else float32 (core.training.precision)
Precision = Literal["auto", "no", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = ("auto", "no", "bf16", "fp16")


@dataclass(frozen=True)
class RealFinetuneConfig:
    """A real-model fine-tune. ``data``: folders / tables, concatenated (e.g. clean + poison).
    ``resolution`` None = the model's native size. ``checkpoint_every`` 0 = only at the end."""

    model: str
    data: tuple[str, ...]
    out: str
    mode: str = "xattn"
    steps: int = 100
    batch: int = 4
    lr: float = 1e-5
    rank: int = 4
    resolution: int | None = None
    cfg_dropout: float = 0.1
    mixed_precision: str = "auto"
    gradient_checkpointing: bool = False
    checkpoint_every: int = 0
    shuffle_buffer: int = 256
    seed: int = 0
    device: str = "cpu"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_mode(self.mode)
        if isinstance(self.data, str | Path):
            object.__setattr__(self, "data", (str(self.data),))
        if not self.data:
            raise ValueError("data: empty; give at least one --data folder or table")
        for name in ("steps", "batch", "rank", "shuffle_buffer"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        if not 0 < self.lr < 1:
            raise ValueError(f"lr must be in (0, 1), got {self.lr}")
        if not 0 <= self.cfg_dropout < 1:
            raise ValueError(f"cfg_dropout must be in [0, 1), got {self.cfg_dropout}")
        if self.mixed_precision not in PRECISIONS:
            raise ValueError(
                f"mixed_precision must be one of {list(PRECISIONS)}, got {self.mixed_precision!r}"
            )
        if self.resolution is not None and (self.resolution < 8 or self.resolution % 8):
            raise ValueError(f"resolution must be a multiple of 8, got {self.resolution}")
        # The output never overwrites an input (the base model, a dataset) nor a foreign folder;
        # a folder holding this fine-tune's own checkpoints is resumed.
        check_output(
            Path(self.out),
            inputs=[("--model", self.model), *(("--data", d) for d in self.data)],
            field="--out",
            resumable=_own_finetune_folder,
            force_option=None,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready copy (data as a list)."""
        d = asdict(self)
        d["data"] = list(self.data)
        return d

    @staticmethod
    def from_dict(d: dict[str, Any]) -> RealFinetuneConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ValueError naming them."""
        known = set(RealFinetuneConfig.__dataclass_fields__)
        bad = sorted(set(d) - known)
        if bad:
            raise ValueError(f"unknown fine-tune settings {bad}; allowed: {sorted(known)}")
        d = dict(d)
        if "data" in d:
            d["data"] = (d["data"],) if isinstance(d["data"], str) else tuple(d["data"])
        return RealFinetuneConfig(**d)


def _own_finetune_folder(path: Path) -> bool:
    return (path / "checkpoints").is_dir() or (path / "finetune.json").is_file()


class FolderCheckpoints:
    """``save_checkpoint`` / ``latest_checkpoint`` over ``<out>/checkpoints`` (CLI runs)."""

    def __init__(self, folder: Path) -> None:
        self.checkpoint_dir = Path(folder)
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)

    def save_checkpoint(
        self, name: str, writer: Callable[[Path], None], keep: int | None = None
    ) -> Path:
        """Atomically write checkpoint ``name``; keep only the newest ``keep``."""
        if not name or "/" in name or name.startswith(".") or name in ("..", "latest.json"):
            raise ValueError(f"checkpoint name {name!r}: use a plain file name like 'step-100.pt'")
        path = self.checkpoint_dir / name
        atomic_write_with(path, writer)
        if keep:
            for old in self._saved()[:-keep]:
                old.unlink(missing_ok=True)
        return path

    def _saved(self) -> list[Path]:
        # Only regular files directly in checkpoint_dir: a symlink planted there is not ours.
        return sorted(
            p for p in self.checkpoint_dir.glob("step-*.pt") if p.is_file() and not p.is_symlink()
        )

    def latest_checkpoint(self) -> Path | None:
        """Newest ``step-*.pt`` (names are zero-padded, so lexical order is step order)."""
        found = self._saved()
        return found[-1] if found else None


def data_stream(
    cfg: RealFinetuneConfig,
    resolution: int,
    report: DataReport,
    epoch: int = 0,
    skip: int = 0,
    rank: int = 0,
    world: int = 1,
) -> Iterator[tuple[int, int, np.ndarray, str]]:
    """Endless (epoch, consumed, image, caption) stream; epoch e reshuffles with seed (seed, e).
    ``skip`` records of the first epoch are passed over undecoded (resume); with ``world`` > 1
    only records i ≡ ``rank`` (mod ``world``) are decoded (one shard per process)."""
    for e in itertools.count(epoch):
        recs = itertools.chain.from_iterable(iter_records(d, report) for d in cfg.data)
        stream = shuffled(recs, cfg.shuffle_buffer, seed=cfg.seed * 1000 + e)
        n_ok = 0
        for consumed, rec in enumerate(stream, 1):
            if e == epoch and consumed <= skip:
                n_ok += 1
                continue
            if consumed % world != rank:
                n_ok += 1  # another process's record
                continue
            x = load_image(rec.image, resolution, report)
            if x is not None:
                n_ok += 1
                yield e, consumed, x, rec.caption
        if n_ok == 0:
            raise ValueError(
                f"data {list(cfg.data)}: no readable image/caption pairs "
                f"(skipped: {report.to_dict()['skipped_by_reason']})"
            )


def denoising_loss(
    sd: RealSD,
    unet: torch.nn.Module,
    images: list[np.ndarray],
    captions: list[str],
    gen: torch.Generator,
    resolution: int,
    autocast: Any,
) -> torch.Tensor:
    """The DDPM loss ‖ε_θ(z_t, t, c) − y‖² of one batch (images (3, S, S) float32 in [-1, 1]);
    noise and timesteps come from ``gen``; ``unet`` may be a wrapped ``sd.unet`` (accelerate)."""
    with torch.no_grad():
        z0 = sd.encode_images(torch.from_numpy(np.stack(images)), sample=True)
        cond = sd.conditioning(captions, size=resolution).to(torch.float32)
    eps = torch.randn(z0.shape, generator=gen).to(z0.device)
    t = torch.randint(
        0, int(sd.scheduler.config.num_train_timesteps), (len(images),), generator=gen
    )
    t = t.to(z0.device)
    return training_loss(unet, sd.scheduler, z0, t, eps, cond.unet_kwargs(), autocast)


def finetune_real(sd: RealSD, cfg: RealFinetuneConfig, ctx: TrainContext) -> dict[str, Any]:
    """Train ``sd.unet`` in place for ``cfg.steps`` steps (resuming from ``ctx``'s checkpoint).

    ``ctx`` needs ``progress(step, total, loss=...)``, ``should_stop()``,
    ``save_checkpoint(name, writer, keep)`` and ``latest_checkpoint()``. Returns the final loss,
    steps done, images/s, changed-weight count and the data report.
    """
    dev = sd.device
    sd.unet.float()  # master weights in fp32; autocast does the low-precision math
    params = setup_trainable(sd.unet, cfg.mode, cfg.rank)
    if cfg.gradient_checkpointing:
        sd.unet.enable_gradient_checkpointing()
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=1e-2 if cfg.mode == "full" else 0.0)
    start, epoch, consumed, last_loss = 0, 0, 0, float("nan")
    gen = torch.Generator("cpu").manual_seed(cfg.seed)
    ckpt = ctx.latest_checkpoint()
    if ckpt is not None:
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        load_trainable_state_dict(sd.unet, state["trainable"])
        opt.load_state_dict(state["optimizer"])
        start, epoch, consumed = state["step"], state["epoch"], state["consumed"]
        gen.set_state(state["rng"])
        # resumed after the last step: the result still reports the loss reached
        last_loss = float(state.get("loss", float("nan")))
    res = cfg.resolution or sd.resolution
    report = DataReport()
    stream = data_stream(cfg, res, report, epoch, consumed)
    low = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.mixed_precision)
    if cfg.mixed_precision == "auto":
        auto = compute_dtype(dev)
        low = None if auto == torch.float32 else auto
    scaler = torch.amp.GradScaler("cuda") if low is torch.float16 and dev.type == "cuda" else None
    sd.unet.train()

    def save(step: int) -> None:
        state = {
            "step": step,
            "epoch": epoch,
            "consumed": consumed,
            "trainable": trainable_state_dict(sd.unet),
            "optimizer": opt.state_dict(),
            "rng": gen.get_state(),
            "config": cfg.to_dict(),
            "loss": loss_v,
        }
        ctx.save_checkpoint(f"step-{step:07d}.pt", lambda p: torch.save(state, p), keep=2)

    loss_v, t0, step = last_loss, time.time(), start
    for step in range(start + 1, cfg.steps + 1):
        xs, caps = [], []
        for e, c, x, cap in itertools.islice(stream, cfg.batch):
            xs.append(x)
            caps.append(cap)
            epoch, consumed = e, c  # data position after this batch (saved in checkpoints)
        drop = torch.rand(len(xs), generator=gen) < cfg.cfg_dropout
        caps = ["" if d else c for d, c in zip(drop.tolist(), caps)]
        loss = denoising_loss(sd, sd.unet, xs, caps, gen, res, autocast(dev, low or torch.float32))
        opt.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
        loss_v = float(loss.item())
        if not np.isfinite(loss_v):
            raise FloatingPointError(f"step {step}: loss became NaN/inf; lower --lr")
        ctx.progress(step, cfg.steps, loss=loss_v)
        if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < cfg.steps:
            save(step)
        if ctx.should_stop():
            save(step)
            break
    else:
        save(cfg.steps)
    sd.unet.eval()
    seconds = time.time() - t0
    done = step - start
    return {
        "loss": loss_v,
        "steps": step,
        "completed": step >= cfg.steps,
        "seconds": round(seconds, 2),
        "images_per_second": round(done * cfg.batch / seconds, 2) if seconds > 0 else None,
        "trainable_parameters": int(sum(p.numel() for p in params)),
        "data": report.to_dict(),
    }


def save_finetuned(sd: RealSD, cfg: RealFinetuneConfig, out: Path, result: dict[str, Any]) -> None:
    """Write the fine-tuned model (LoRA merged into the UNet; adapters also kept in
    ``unet_lora/``) as a standard SD folder, plus ``finetune.json`` (config, result, versions)."""
    from diffusers import UNet2DConditionModel

    out = Path(out)
    unet = sd.unet
    if cfg.mode == "lora":
        from peft.utils import get_peft_model_state_dict
        from safetensors.torch import save_file

        (out / "unet_lora").mkdir(parents=True, exist_ok=True)
        lora = {k: v.contiguous() for k, v in get_peft_model_state_dict(unet).items()}
        save_file(lora, str(out / "unet_lora" / "adapter_model.safetensors"))
        plain = UNet2DConditionModel.from_config(unet.config)
        plain.load_state_dict(merge_lora_state_dict(unet))
        sd = dataclasses.replace(sd, unet=plain)
    sd.save_pretrained(out, extra={"finetune": cfg.to_dict()})
    atomic_write_json(
        out / "finetune.json", {"config": cfg.to_dict(), "result": result, **run_metadata(cfg.seed)}
    )


class _Printer(FolderCheckpoints):
    """The CLI's :class:`~core.jobs.context.TrainContext`: checkpoints in ``folder``, progress
    printed every ``every`` steps, never stops early."""

    def __init__(self, folder: Path, every: int = 10, quiet: bool = False) -> None:
        super().__init__(folder)
        self.every, self.quiet = every, quiet

    def progress(
        self,
        step: int,
        total: int | None,
        loss: float | None = None,
        message: str | None = None,
        *,
        work: tuple[float, float] | None = None,
        **metrics: Any,
    ) -> None:
        if not self.quiet and (step % self.every == 0 or step == total):
            shown = "—" if loss is None else f"{loss:.4f}"
            print(f"step {step}/{total}  loss {shown}", flush=True)

    def log(self, msg: str) -> None:
        if not self.quiet:
            print(msg, flush=True)

    def should_stop(self) -> bool:
        return False


def run_finetune(cfg: RealFinetuneConfig, quiet: bool = False) -> dict[str, Any]:
    """CLI entry: load, fine-tune (resuming from ``<out>/checkpoints``), save to ``cfg.out``."""
    out = Path(cfg.out)
    sd = load_sd(cfg.model, cfg.device)
    ctx = _Printer(out / "checkpoints", quiet=quiet)
    result = finetune_real(sd, cfg, ctx)
    save_finetuned(sd, cfg, out, result)
    return result


def run_job(config: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Job kind ``real-finetune``: config = :class:`RealFinetuneConfig` fields; ``out`` defaults
    to ``<run_dir>/model``; the device comes from the job."""
    config = {**config, "device": ctx.device}
    config.setdefault("out", str(Path(ctx.run_dir) / "model"))
    cfg = RealFinetuneConfig.from_dict(config)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    sd = load_sd(cfg.model, cfg.device)
    result = finetune_real(sd, cfg, ctx)
    if result["completed"]:
        save_finetuned(sd, cfg, Path(cfg.out), result)
    return {k: v for k, v in result.items() if k != "data"} | {"out": cfg.out}


def describe(result: dict[str, Any]) -> str:
    """One-line summary for the CLI."""
    d = result["data"]
    return (
        f"{result['steps']} steps, loss {result['loss']:.4f}, "
        f"{result['images_per_second']} img/s; data: {d['loaded']} images loaded, "
        f"{d['skipped']} skipped {json.dumps(d['skipped_by_reason'])}"
    )
