"""The mini-model level runner: build pairs, measure AD, fine-tune, judge (core/sweep/mini/run.py).

:class:`SweepRunner` implements :class:`core.sweep.runner.LevelRunner`; the driver
(core/sweep/engine.py) saves what :meth:`SweepRunner.run_level` returns. Workers rebuild it with
:func:`from_spec` (the AD calibration travels in the spec, so every worker uses the parent's)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from core.evaluate.judged import Generations, score_generations
from core.metrics import alignment_difficulty, calibrate_scale
from core.models.adapter import unet_fingerprint
from core.models.ldm import MiniLDM, to_uint8
from core.poison.plan import PoisonLevel, plan_level
from core.results.schema import GRIDS_DIR, LEVELS_DIR, LevelRecord
from core.results.weights import weights_bytes, write_level_weights
from core.results.write import write_pack_files
from core.sweep.engine import resumable_results
from core.sweep.mini.config import SweepConfig, seed_plan
from core.sweep.runner import (
    SWEEP_CONFIG,
    LevelResult,
    RunnerSpec,
    StepFn,
    StopFn,
    level_record,
    new_results,
    pack_level,
)
from core.training.finetune import encode_images, finetune_unet, make_pairs


def _load_model(config: SweepConfig) -> MiniLDM:
    from core.io import default_base

    return MiniLDM.from_pretrained(
        Path(config.model) if config.model else default_base(), config.device
    )


def generated_ad(ldm: MiniLDM, images: torch.Tensor, prompts: list[str], scale: Any) -> float:
    """AD of the model's own text→image mapping: pairs (generated image, its prompt) in the dual
    encoder's joint space, one pair per image. The training pairs' AD is fixed during a level's
    fine-tune; this one moves with the weights (D_fea: generations drift from their prompts;
    D_stru: image–image similarities stop mirroring prompt–prompt ones)."""
    x = ldm.image_embeds(images).cpu().numpy()
    return float(alignment_difficulty(x, text_rows(ldm, prompts), scale=scale).ad)


def text_rows(ldm: MiniLDM, prompts: list[str]) -> np.ndarray:
    """Joint-space text embeddings (n, d), one row per prompt; each distinct prompt encoded once."""
    uniq = sorted(set(prompts))
    t = ldm.text_embeds(uniq).cpu().numpy()
    pos = {c: i for i, c in enumerate(uniq)}
    return t[[pos[q] for q in prompts]]


class TrainingProbe:
    """Fixed-seed probes during a level's fine-tune: one generation per concept (same noise at
    every probe), its AD (:func:`generated_ad`) and the judged accuracy of unpoisoned concepts.
    ``arrays()`` → probe_step (P,), probe_ad (P,), probe_acc_unpoisoned (P,) for the level file."""

    def __init__(self, runner: SweepRunner, c_p: int, seed: int) -> None:
        self.runner, self.seed = runner, seed
        world = runner.world
        self.unpoisoned = list(runner.level(c_p, seed).unpoisoned)
        self.concept = torch.arange(world.n_concepts)
        self.prompts = [c.caption(0) for c in world.concepts]
        self.rows: list[tuple[int, float, float]] = []

    def __call__(self, step: int) -> None:
        r = self.runner
        ldm, cfg = r.ldm, r.config
        was_training = ldm.unet.training
        ldm.unet.eval()
        images = ldm.sample(
            self.prompts, seed=self.seed + 7919, steps=cfg.eval_steps, guidance=cfg.guidance
        )
        ldm.unet.train(was_training)
        sc = score_generations(ldm, Generations(images, self.concept, self.prompts))
        names = r.world.names
        acc = float(np.mean([sc["per_concept"][names[i]] for i in self.unpoisoned]))
        ad = generated_ad(ldm, images, self.prompts, r.calibration)
        self.rows.append((step, ad, acc if self.unpoisoned else float("nan")))

    def arrays(self) -> dict[str, np.ndarray]:
        a = np.asarray(self.rows, dtype=np.float64).reshape(-1, 3)
        return {
            "probe_step": a[:, 0].astype(np.int64),
            "probe_ad": a[:, 1].astype(np.float32),
            "probe_acc_unpoisoned": a[:, 2].astype(np.float32),
        }


class SweepRunner:
    """Holds the base model, clean data per seed and the AD calibration across levels."""

    def __init__(self, config: SweepConfig, out: Path) -> None:
        self.config = config
        self.out = out
        self.steps_per_level = config.finetune.steps
        self.ldm = _load_model(config)
        self.world = self.ldm.world
        bad = [c for c in config.levels if c > self.world.n_concepts]
        if bad:
            raise ValueError(
                f"levels: C_P values {bad} exceed K={self.world.n_concepts} concepts of this model"
            )
        self.base_state = {k: v.clone() for k, v in self.ldm.unet.state_dict().items()}
        self.base_sha256 = unet_fingerprint(self.base_state)  # what saved weights apply to
        self.plans = {s: seed_plan(config, self.world.n_concepts, s) for s in config.seeds}
        self._clean: dict[int, dict[str, Any]] = {}
        self.calibration: Any = None
        (out / LEVELS_DIR).mkdir(exist_ok=True)
        (out / GRIDS_DIR).mkdir(exist_ok=True)

    def level(self, c_p: int, seed: int) -> PoisonLevel:
        """The poisoning plan at (c_p, seed): core.poison.plan.PoisonLevel."""
        order, targets = self.plans[seed]
        return plan_level(
            self.world.n_concepts,
            c_p,
            seed,
            relation=self.world.relation,
            order=order,
            targets=targets,
        )

    # ------------------------------------------------------------------ bookkeeping
    def spec(self) -> RunnerSpec:
        """How a worker rebuilds this runner (:func:`from_spec`), with the parent's calibration."""
        return RunnerSpec(
            "core.sweep.mini.runner:from_spec",
            self.config.to_dict(),
            str(self.out),
            {"calibration": list(self.calibration)},
        )

    def open(self) -> dict[str, Any]:
        """Previous results if they belong to the same config (resume), else a fresh dict;
        ValueError if ``out`` holds a different sweep."""
        prev = resumable_results(self.out, self.config.to_dict(), SWEEP_CONFIG)
        if prev is not None:
            cal = prev["config"].get("ad_scale")
            self.calibration = tuple(cal) if cal else None
            return prev
        if self.calibration is None:
            self.calibration = self._calibrate()
        extra = {
            "ad_scale": list(self.calibration),
            "ad_calibration": "dual-encoder clean pairs, 5th–95th percentile",
        }
        return new_results(self.config.to_dict(), self.world.names, self.plans, extra)

    def _calibrate(self) -> tuple[float, float]:
        clean = self.clean(self.config.seeds[0])
        cal = calibrate_scale(
            clean["image_emb"], self.ldm.text_embeds(clean["captions"]).cpu().numpy()
        )
        return cal.as_tuple()

    def clean(self, seed: int) -> dict[str, Any]:
        """Clean pairs for a seed: images, latents, joint-space embeddings (cached)."""
        if seed not in self._clean:
            d = self.world.sample(self.config.n_clean_per_concept, seed=10_000 + seed)
            mean, std = encode_images(self.ldm, d.images)
            emb = self.ldm.image_embeds(torch.from_numpy(d.images)).cpu().numpy()
            self._clean[seed] = {
                "data": d,
                "mean": mean,
                "std": std,
                "image_emb": emb,
                "captions": d.captions,
            }
        return self._clean[seed]

    # ------------------------------------------------------------------ one level
    def pairs(self, c_p: int, seed: int) -> dict[str, np.ndarray | list[str]]:
        """Clean pairs plus dirty-label pairs for the first c_p concepts of the seed's order."""
        cfg, world = self.config, self.world
        clean = self.clean(seed)
        labels = clean["data"].labels
        order, targets = self.plans[seed]
        img_idx = list(range(len(labels)))
        caps = list(clean["captions"])
        cap_c, img_c, poisoned = list(labels), list(labels), [False] * len(labels)
        rng = np.random.default_rng([seed, c_p, 99])
        n_p = max(1, round(cfg.poison_ratio * cfg.n_clean_per_concept))
        for a in order[:c_p]:
            b = targets[a]
            src = np.flatnonzero(labels == b)
            pick = rng.choice(src, size=n_p, replace=n_p > src.size)
            img_idx += pick.tolist()
            caps += [world.concepts[a].caption(int(t)) for t in rng.integers(0, 5, n_p)]
            cap_c += [a] * n_p
            img_c += [b] * n_p
            poisoned += [True] * n_p
        out: dict[str, np.ndarray | list[str]] = {
            "image": np.asarray(img_idx),
            "captions": caps,
            "caption_concept": np.asarray(cap_c),
            "image_concept": np.asarray(img_c),
            "poisoned": np.asarray(poisoned),
        }
        if cfg.poison_mode == "replace":  # drop the clean pairs of every poisoned caption concept
            keep = ~np.isin(np.asarray(cap_c), order[:c_p]) | np.asarray(poisoned)
            out = {
                k: [c for c, m in zip(v, keep) if m] if k == "captions" else np.asarray(v)[keep]
                for k, v in out.items()
            }
        return out

    def pair_embeddings(
        self, p: dict[str, np.ndarray | list[str]], seed: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(x, y): image and caption embeddings (n, d) of the pairs ``p`` (from :meth:`pairs`)
        in the dual encoder's joint space: the inputs of AD and of the poison detectors."""
        x = self.clean(seed)["image_emb"][np.asarray(p["image"])]
        return x, text_rows(self.ldm, list(p["captions"]))

    def run_level(
        self, c_p: int, seed: int, on_step: StepFn | None = None, stop: StopFn | None = None
    ) -> LevelResult | None:
        """Pairs → AD → fine-tune from the clean base → judge one (C_P, seed); None if stopped."""
        cfg, ldm, world = self.config, self.ldm, self.world
        ldm.unet.load_state_dict(self.base_state)
        clean = self.clean(seed)
        p = self.pairs(c_p, seed)
        x, y = self.pair_embeddings(p, seed)  # AD's inputs, in the dual encoder's joint space
        # ---- defense (core/defend): drop the pairs the detector flags, before AD and fine-tune
        defense_fields: dict[str, Any] = {}
        if cfg.defense is not None:
            from core.defend.filter import apply_defense

            keep, defense_fields = apply_defense(
                cfg.defense, x, y, np.asarray(p["caption_concept"]), np.asarray(p["poisoned"])
            )
            p = {
                k: [v[i] for i in np.flatnonzero(keep)] if isinstance(v, list) else v[keep]
                for k, v in p.items()
            }
            x, y = x[keep], y[keep]
        # ---- end defense
        ad = alignment_difficulty(x, y, scale=self.calibration)
        # fine-tune from the clean base
        data = make_pairs(
            ldm, clean["mean"], clean["std"], np.asarray(p["image"]), list(p["captions"])
        )
        ft_cfg = cfg.finetune.__class__(**{**cfg.finetune.to_dict(), "seed": seed * 1000 + c_p})
        losses: list[float] = []
        probes = TrainingProbe(self, c_p, seed) if cfg.probe_every > 0 else None
        if probes is not None:
            probes(0)

        def step_done(step: int, total: int, loss: float) -> None:
            losses.append(loss)
            if probes is not None and (step % cfg.probe_every == 0 or step == total):
                probes(step)
            if on_step is not None:
                on_step(step, loss)

        ft = finetune_unet(ldm, data, ft_cfg, step_done, stop, keep_weights=True)
        if ft["steps"] < ft_cfg.steps:
            return None
        self.save_weights(c_p, seed, ft["weights"])
        # judge generations of every concept
        k = world.n_concepts
        concept = torch.arange(k).repeat_interleave(cfg.eval_samples)
        prompts = [world.concepts[int(i)].caption(0) for i in concept]
        images = ldm.sample(prompts, seed=seed, steps=cfg.eval_steps, guidance=cfg.guidance)
        sc = score_generations(ldm, Generations(images, concept, prompts))
        record = self._record(c_p, seed, ad, sc, concept, ft["seconds"])
        record["ad_generated"] = generated_ad(ldm, images, prompts, self.calibration)
        record["finetune_dtype"] = ft["dtype"]  # what ran (precision "auto" picks per machine)
        # defended sweeps only (core/defend/filter.py): fields beyond the schema's
        cast(dict[str, Any], record).update(defense_fields)
        return self._level_result(
            record, images, p, x, y, losses, probes.arrays() if probes else {}
        )

    def save_weights(self, c_p: int, seed: int, weights: dict[str, torch.Tensor]) -> None:
        """``weights/cp{c_p}_seed{seed}.safetensors``: what the level's fine-tune trained (rank-r
        LoRA adapters, α = r as core.models.lora.setup_trainable sets it, or the cross-attention
        projections) and the fingerprint of the base they apply to (core.results.weights)."""
        ft = self.config.finetune
        rank = ft.lora_rank if ft.params == "lora" else 0
        data = weights_bytes(
            {k: v.numpy() for k, v in weights.items()},
            c_p=c_p,
            seed=seed,
            params=ft.params,
            base_sha256=self.base_sha256,
            base=self.config.model or "shipped base",
            lora_rank=rank,
            lora_alpha=float(rank),
        )
        write_level_weights(self.out, data, c_p, seed)

    def _record(
        self,
        c_p: int,
        seed: int,
        ad: Any,
        sc: dict[str, Any],
        concept: torch.Tensor,
        seconds: float,
    ) -> LevelRecord:
        """The level's record from the judge's scores ``sc`` of the generations (prompt concept
        ``concept`` (N,)) and the training pairs' AD, via the one record builder."""
        names = self.world.names
        record = level_record(
            self.level(c_p, seed),
            concept.numpy(),
            np.asarray(sc["predicted"]),
            np.array([sc["per_concept"][n] for n in names]),
            np.array([sc["per_concept_alignment"][n] for n in names]),
            np.array([sc["per_concept_incoherence"][n] for n in names]),
        )
        record["ad"], record["ad_feature"], record["ad_structure"] = ad.ad, ad.d_fea, ad.d_stru
        record["n_pairs"] = int(ad.n)
        record["undefined_rate"] = sc["undefined_rate"]
        record["finetune_seconds"] = seconds
        return record

    def _level_result(
        self,
        record: LevelRecord,
        images: torch.Tensor,
        p: dict[str, Any],
        x: np.ndarray,
        y: np.ndarray,
        losses: list[float],
        probe_arrays: dict[str, np.ndarray],
    ) -> LevelResult:
        cfg, k = self.config, self.world.n_concepts
        u8 = to_uint8(images).reshape(k, cfg.eval_samples, *images.shape[2:], 3)[
            :, : cfg.grid_samples
        ]
        gen = self.ldm.image_embeds(images).cpu().numpy().reshape(k, cfg.eval_samples, -1).mean(1)
        pairs = {"image": x, "text": y}
        pairs.update({n: p[n] for n in ("caption_concept", "image_concept", "poisoned")})
        eligible = np.arange(len(p["captions"]))
        return pack_level(
            record, u8, pairs, eligible, cfg.embeddings_per_level, gen, losses,
            cfg.grid_samples, probe_arrays,
        )  # fmt: skip

    def level_done(self, c_p: int, seed: int) -> None:
        """Nothing to clean up: a mini level keeps no state between runs."""

    # ------------------------------------------------------------------ demo-pack files
    def assemble(self) -> None:
        """embeddings.npz, generations.npz and training.json for the first seed (demo format)."""
        prompts = [c.caption(0) for c in self.world.concepts]
        write_pack_files(
            self.out,
            self.config.levels,
            self.config.seeds[0],
            self.world.names,
            self.ldm.text_embeds(prompts).cpu().numpy(),
        )


def from_spec(config: dict[str, Any], out: str, state: dict[str, Any]) -> SweepRunner:
    """The runner a worker uses: the parent's config, folder and AD calibration."""
    runner = SweepRunner(SweepConfig.from_dict(config), Path(out))
    runner.calibration = (float(state["calibration"][0]), float(state["calibration"][1]))
    return runner
