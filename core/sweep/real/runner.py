"""The implosion sweep on a real Stable Diffusion model and a captioned image dataset.

Same experiment and output contract as the mini-model sweep (core/sweep/mini/run.py): for each seed a
poisoning order and targets are drawn once (:func:`core.poison.plan.poisoning_plan`); level C_P poisons
the first C_P concepts (nested sets) with poison pairs *added* to the clean data (conflicting
poison). Each (C_P, seed) restarts from the base UNet (LoRA: a fresh adapter), measures AD of its
training pairs in CLIP space, fine-tunes (:func:`core.training.real.finetune_real`: full, xattn or
LoRA) and generates ``eval_samples`` images of "a photo of a {concept}" per concept with fixed
seeds (identical noise at every level), scored by CLIP zero-shot among the concept prompts
(:func:`core.evaluate.clip.zero_shot_scores`):

- acc_* = share of a concept's images classified as that concept (unpoisoned / poisoned /
  related / unrelated, rule in :mod:`core.data.concepts`); attack_success = share of a poisoned
  concept's images classified as its target; alignment_unpoisoned = mean CLIP cosine of an
  unpoisoned concept's images to its prompt; incoherence = mean normalised zero-shot entropy.

Output (``out``): ``results.json`` {"config", "records", "summary"} rewritten atomically after
each record (a rerun skips finished records, resumes a stopped level from its checkpoint, and
refuses a folder holding a different sweep), ``grids/cp{C}_seed{S}.png``,
``levels/cp{C}_seed{S}.npz``, cached pairs (:mod:`core.sweep.real.data`), and on completion the
demo-pack files ``embeddings.npz`` / ``generations.npz`` / ``training.json`` (core/results/pack.py).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from core.data.concepts import RELATION_RULE, ConceptIndex
from core.evaluate.clip import to_pil, zero_shot_scores
from core.io import atomic_write_json, seed_everything
from core.metrics import CLIP_CALIBRATION, CLIP_SCALE, alignment_difficulty, calibrate_scale
from core.models.ldm import to_uint8
from core.poison.plan import PoisonLevel, plan_level, poisoning_plan
from core.results.schema import RESULTS, LevelRecord
from core.results.write import write_pack_files
from core.sweep.engine import same_sweep
from core.sweep.real.config import RealSweepConfig, check_inputs
from core.sweep.real.data import PROMPT, LevelPairs, SweepData
from core.sweep.runner import (
    LevelResult,
    RunnerSpec,
    StepFn,
    StopFn,
    level_record,
    new_results,
    pack_level,
)
from core.training.real import FolderCheckpoints, RealFinetuneConfig, finetune_real

IDENTITY = "sweep_config.json"  # the config that owns this folder's caches and results


def native_resolution(model: str | Path) -> int:
    """Image size an SD folder was trained at: unet sample_size × 2^(VAE blocks − 1)."""
    unet = json.loads((Path(model) / "unet" / "config.json").read_text())
    vae = json.loads((Path(model) / "vae" / "config.json").read_text())
    return int(unet["sample_size"]) * 2 ** (len(vae["block_out_channels"]) - 1)


class _LevelCtx(FolderCheckpoints):
    """The :class:`~core.jobs.context.TrainContext` :func:`finetune_real` talks to in a sweep:
    checkpoints in the level's folder (a stopped level resumes mid-way), losses kept for
    training.json, progress and stop forwarded to the sweep."""

    def __init__(self, folder: Path, on_step: StepFn, stop: StopFn) -> None:
        super().__init__(folder / "checkpoints")
        self.loss_file = folder / "loss.json"
        resumed = self.latest_checkpoint() is not None and self.loss_file.is_file()
        self.losses: list[float] = json.loads(self.loss_file.read_text()) if resumed else []
        self._on_step, self._stop = on_step, stop

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
        del self.losses[step - 1 :]  # a resumed level repeats no step, but be exact anyway
        self.losses.append(float("nan") if loss is None else loss)
        self._on_step(step, loss)

    def log(self, msg: str) -> None:
        print(msg, flush=True)

    def should_stop(self) -> bool:
        return self._stop()

    def keep_losses(self) -> None:
        atomic_write_json(self.loss_file, self.losses)


class RealSweepRunner:
    """Holds the model, CLIP, the data cache and the AD calibration across levels."""

    def __init__(self, cfg: RealSweepConfig, out: Path, index: ConceptIndex) -> None:
        self.cfg, self.out, self.index = cfg, out, index
        self.steps_per_level = cfg.steps
        self.names = index.names
        self.plans = {s: poisoning_plan(len(self.names), s) for s in cfg.seeds}
        self.resolution = cfg.resolution or native_resolution(cfg.model)
        self._sd: Any = None
        self._clip: Any = None
        self._base: dict[str, torch.Tensor] = {}
        self.data = SweepData(cfg, out, index, self.resolution, self.clip, self.sd)
        self.scale: tuple[float, float] | None = None
        self.calibration = ""
        for sub in ("levels", "grids"):
            (out / sub).mkdir(exist_ok=True)

    # ------------------------------------------------------------------ models (lazy)
    def sd(self) -> Any:
        """The SD model at the sweep's resolution; the base weights a level restarts from."""
        if self._sd is None:
            from core.models.sd import load_sd

            self._sd = load_sd(self.cfg.model, self.cfg.device)
            self._sd.resolution = self.resolution
            if self.cfg.mode != "lora":  # LoRA never changes base weights
                self._base = {
                    n: p.detach().to("cpu", copy=True)
                    for n, p in self._sd.unet.named_parameters()
                    if self.cfg.mode == "full" or ".attn2." in n
                }
        return self._sd

    def clip(self) -> Any:
        if self._clip is None:
            from core.models.dual import ClipEmbedder

            self._clip = ClipEmbedder(Path(self.cfg.clip), device=self.cfg.device)
        return self._clip

    def reset_unet(self) -> None:
        """Back to the base UNet: restore the trained weights, or drop the LoRA adapter."""
        unet = self.sd().unet
        if getattr(unet, "peft_config", None):
            unet.unload_lora()
        params = dict(unet.named_parameters())
        with torch.no_grad():
            for n, v in self._base.items():
                params[n].copy_(v)

    # ------------------------------------------------------------------ bookkeeping
    def spec(self) -> RunnerSpec:
        state = {"scale": list(self.scale) if self.scale else None, "calibration": self.calibration}
        return RunnerSpec(
            "core.sweep.real.runner:from_spec", self.cfg.to_dict(), str(self.out), state
        )

    def level(self, c_p: int, seed: int) -> PoisonLevel:
        """Who is poisoned at (c_p, seed); related = shares a keyword or a caption."""
        order, targets = self.plans[seed]
        return plan_level(
            len(self.names), c_p, seed, relation=self.index.relation, related_min=1,
            order=order, targets=targets,
        )  # fmt: skip

    def open(self) -> dict[str, Any]:
        """Results to resume, or new ones; ValueError if ``out`` holds a different sweep."""
        owner, path = self.out / IDENTITY, self.out / RESULTS
        if owner.is_file() or path.is_file():
            try:
                same = same_sweep(json.loads(owner.read_text()), self.cfg.to_dict())
            except (OSError, json.JSONDecodeError, TypeError):
                same = False
            if not same:
                raise ValueError(
                    f"out: {self.out} holds a different sweep (other settings or another kind); "
                    "choose a new --out folder (nothing was overwritten)"
                )
        else:
            atomic_write_json(owner, self.cfg.to_dict())
        if path.is_file():
            prev = json.loads(path.read_text())
            scale = prev["config"]["ad_scale"]
            self.scale, self.calibration = (
                tuple(scale) if scale else None,
                prev["config"]["ad_calibration"],
            )
            return cast(dict[str, Any], prev)
        self.scale, self.calibration = self._calibrate()
        extra = {
            "preset": "real-sd",
            "kind": "real-sweep",
            "concept_keywords": [list(k) for k in self.index.keywords],
            "relation": self.index.relation.astype(int).tolist(),
            "relation_rule": RELATION_RULE,
            "resolution": self.resolution,
            "ad_scale": list(self.scale) if self.scale else None,
            "ad_calibration": self.calibration,
            "data_summary": self.index.summary(),
            "real_config": self.cfg.to_dict(),
        }
        return new_results(self.cfg.to_dict(), self.names, self.plans, extra)

    def _calibrate(self) -> tuple[tuple[float, float] | None, str]:
        mode, (lo, hi) = self.cfg.ad_rescale, self.cfg.ad_interval
        if mode == "clip":
            return CLIP_SCALE, CLIP_CALIBRATION
        if mode == "none":
            return None, "none"
        if mode == "custom":
            return (lo, hi), f"custom [{lo:g}, {hi:g}]"
        clean = self.data.clean()
        cal = calibrate_scale(clean["image"], clean["text"])
        return cal.as_tuple(), cal.name

    def level_done(self, c_p: int, seed: int) -> None:
        """A finished level's fine-tune checkpoints are only needed mid-level: delete them."""
        shutil.rmtree(self.out / "levels" / f"cp{c_p}_seed{seed}" / "checkpoints", True)

    # ------------------------------------------------------------------ one level
    def run_level(self, c_p: int, seed: int, on_step: StepFn, stop: StopFn) -> LevelResult | None:
        """Pairs → AD → fine-tune → generate → score one (C_P, seed); None if stopped."""
        cfg = self.cfg
        # whatever draws from the global RNG (VAE latent sampling, LoRA init) is seeded by the
        # level alone, so a level's result does not depend on which levels its process ran first
        seed_everything(seed * 1000 + c_p)
        order, targets = self.plans[seed]
        pairs = self.data.level(c_p, seed, order, targets)
        ad = alignment_difficulty(
            pairs.x, pairs.y, alpha=cfg.ad_alpha, scale=self.scale, calibration=self.calibration
        )
        sd = self.sd()
        self.reset_unet()
        folder = pairs.manifest.parent
        ctx = _LevelCtx(folder, on_step, stop)
        ft_cfg = RealFinetuneConfig(
            model=cfg.model, data=(str(pairs.manifest),), out=str(folder / "finetune"),
            mode=cfg.mode,
            steps=cfg.steps, batch=cfg.batch, lr=cfg.lr, rank=cfg.rank,
            resolution=self.resolution, mixed_precision=cfg.mixed_precision,
            gradient_checkpointing=cfg.gradient_checkpointing, seed=seed * 1000 + c_p,
            device=cfg.device, extra={"c_p": c_p, "seed": seed},
        )  # fmt: skip
        ft = finetune_real(sd, ft_cfg, ctx)  # checkpoints via ctx; nothing is saved in ft_cfg.out
        if not ft["completed"]:
            ctx.keep_losses()
            return None
        concept = np.repeat(np.arange(len(self.names)), cfg.eval_samples)
        prompts = [PROMPT.format(self.names[i]) for i in concept]
        images = sd.sample(prompts, seed=seed, steps=cfg.eval_steps, guidance=cfg.guidance)
        z = zero_shot_scores(self.clip(), to_pil(images), [PROMPT.format(n) for n in self.names])
        rec = clip_level_record(self.level(c_p, seed), concept, z)
        rec["ad"], rec["ad_feature"], rec["ad_structure"] = ad.ad, ad.d_fea, ad.d_stru
        rec["n_pairs"], rec["n_poison"] = int(ad.n), int(pairs.n_poison)
        rec["finetune_seconds"], rec["final_loss"] = ft["seconds"], ft["loss"]
        return self._level_result(rec, images, z["image_emb"], pairs, ctx.losses)

    def _level_result(
        self,
        rec: LevelRecord,
        images: torch.Tensor,
        gen_emb: np.ndarray,
        pairs: LevelPairs,
        losses: list[float],
    ) -> LevelResult:
        """The level's pack arrays: images (K, m, s, s, 3) uint8 at image_size; a subsample of
        concept-labelled training pairs; mean generated embedding per concept; the grid."""
        cfg, k = self.cfg, len(self.names)
        if images.shape[-1] > cfg.image_size:
            images = torch.nn.functional.interpolate(
                images, size=cfg.image_size, mode="bilinear", antialias=True
            )
        u8 = to_uint8(images).reshape(k, cfg.eval_samples, *images.shape[2:], 3)
        u8 = u8[:, : cfg.grid_samples]
        labelled = np.flatnonzero((pairs.caption_concept >= 0) & (pairs.image_concept >= 0))
        arrays = {
            "image": pairs.x,
            "text": pairs.y,
            "caption_concept": pairs.caption_concept,
            "image_concept": pairs.image_concept,
            "poisoned": pairs.poisoned,
        }
        gen = gen_emb.reshape(k, cfg.eval_samples, -1).mean(1)
        return pack_level(
            rec, u8, arrays, labelled, cfg.embeddings_per_level, gen, losses, cfg.grid_samples
        )

    def assemble(self) -> None:
        """The demo-pack files of the first seed (core/results/pack.py format)."""
        write_pack_files(
            self.out, self.cfg.levels, self.cfg.seeds[0], self.names,
            self.data.clean()["text_concept"],
        )  # fmt: skip


def clip_level_record(
    level: PoisonLevel, concept: np.ndarray, z: dict[str, np.ndarray]
) -> LevelRecord:
    """Implosion metrics of one level from CLIP zero-shot scores ``z`` of the generations
    (``pred`` (N,), ``cosine`` (N, K), ``incoherence`` (N,)); ``concept`` (N,) is each image's
    prompt concept. Per concept j: accuracy = share of its images classified as j, alignment =
    mean cosine of its images to prompt j, incoherence = mean normalised entropy."""
    k = z["cosine"].shape[1]
    own = [concept == j for j in range(k)]
    acc = np.array([np.mean(z["pred"][m] == j) for j, m in enumerate(own)])
    align = np.array([np.mean(z["cosine"][m, j]) for j, m in enumerate(own)])
    incoh = np.array([np.mean(z["incoherence"][m]) for m in own])
    return level_record(level, concept, np.asarray(z["pred"]), acc, align, incoh)


def from_spec(config: dict[str, Any], out: str, state: dict[str, Any]) -> RealSweepRunner:
    """The runner a worker uses: the parent's config, folder and AD scale (the data and model
    folders must be at the same paths on every node: docs/cluster.md)."""
    cfg = RealSweepConfig.from_dict(config)
    runner = RealSweepRunner(cfg, Path(out), check_inputs(cfg))
    scale = state.get("scale")
    runner.scale = (float(scale[0]), float(scale[1])) if scale else None
    runner.calibration = str(state.get("calibration", ""))
    return runner
