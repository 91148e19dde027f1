"""Issue 12 lever search: what makes implosion hold at steady state in the mini model?

Each variant fine-tunes the shipped base at C_P = 0 and at the chosen C_P levels (same poisoning
order and targets as ``implosion sweep``) for max(``--steps``) steps and judges every concept
after each step count in ``--steps`` (the preset's 60 and ≥ 3× longer): 8 samples per concept,
10 DDIM steps, CFG 3, as cpu-full. Results are appended to ``--out`` (resumable).

Poison modes: ``add`` (the shipped sweep: dirty-label pairs added, the poisoned caption keeps its
clean images) and ``replace`` (the poisoned caption's clean pairs are removed: caption A is only
ever paired with images of B — a pure structure conflict, no mixture to fit).

    PYTHONPATH=. python bench/science/implosion_levers.py --variant replace --cp 24 --seed 0 \
        --steps 60 180 --no-clean --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch  # noqa: E402

from core.evaluate.judged import Generations, score_generations  # noqa: E402
from core.io import atomic_write_json  # noqa: E402
from core.metrics import alignment_difficulty  # noqa: E402
from core.models.ldm import to_uint8  # noqa: E402
from core.results.grid import save_grid  # noqa: E402
from core.sweep.mini.run import SweepConfig  # noqa: E402
from core.sweep.mini.runner import SweepRunner  # noqa: E402
from core.training.finetune import FinetuneConfig, finetune_unet, make_pairs  # noqa: E402

DEMO_AD_SCALE = (0.8620057515202743, 0.9552974084074232)  # assets/demo's calibration

# name → (poison mode, poison_ratio, FinetuneConfig overrides)
VARIANTS: dict[str, tuple[str, float, dict[str, Any]]] = {
    "add": ("add", 1.0, {}),
    "replace": ("replace", 1.0, {}),
    "replace-r2": ("replace", 2.0, {}),
    "add-r2": ("add", 2.0, {}),
    "replace-xattn": ("replace", 1.0, {"params": "cross-attention", "lr": 1e-3}),
    "replace-lr1e-3": ("replace", 1.0, {"lr": 1e-3}),
    "replace-lora-r1": ("replace", 1.0, {"params": "lora", "lora_rank": 1, "lr": 3e-3}),
    "replace-lora-r4": ("replace", 1.0, {"params": "lora", "lora_rank": 4, "lr": 3e-3}),
    "replace-lora-r16": ("replace", 1.0, {"params": "lora", "lora_rank": 16, "lr": 3e-3}),
    "replace-lora-r1-lr1e-2": ("replace", 1.0, {"params": "lora", "lora_rank": 1, "lr": 1e-2}),
    "replace-r2-lora-r1": ("replace", 2.0, {"params": "lora", "lora_rank": 1, "lr": 3e-3}),
    "replace-r3-lora-r1": ("replace", 3.0, {"params": "lora", "lora_rank": 1, "lr": 3e-3}),
    "add-lora-r4": ("add", 1.0, {"params": "lora", "lora_rank": 4, "lr": 3e-3}),
}


def params_label(ft: FinetuneConfig) -> str:
    """all | cross-attention | lora-r<rank>: C_P 0 is one run per label, learning rate and length."""
    return f"lora-r{ft.lora_rank}" if ft.params == "lora" else ft.params


KEYS = (
    "acc_unpoisoned",
    "acc_poisoned",
    "attack_success",
    "acc_related",
    "acc_unrelated",
    "alignment_unpoisoned",
    "incoherence",
    "incoherence_unpoisoned",
    "undefined_rate",
    "ad",
    "per_concept_acc",
)


class LeverRunner(SweepRunner):
    """SweepRunner whose ``replace`` mode drops the poisoned captions' own clean pairs."""

    mode = "add"

    def pairs(self, c_p: int, seed: int) -> dict[str, Any]:
        p = super().pairs(c_p, seed)
        if self.mode == "add" or c_p == 0:
            return p
        order, _ = self.plans[seed]
        pois = np.isin(p["caption_concept"], order[:c_p])
        keep = ~pois | p["poisoned"]  # drop clean pairs whose caption is a poisoned concept
        return {
            k: (np.asarray(v)[keep] if k != "captions" else [c for c, m in zip(v, keep) if m])
            for k, v in p.items()
        }


def run_level(runner: LeverRunner, c_p: int, seed: int, at: list[int]) -> dict[int, dict]:
    """One fine-tune of max(at) steps from the clean base, judged after each step count in ``at``.

    With a constant lr the first n steps are exactly the n-step fine-tune (same batches, same
    noise: finetune_unet draws them from its own generator; judging uses its own seeds), so one
    run gives both fine-tune lengths."""
    cfg, ldm, world = runner.config, runner.ldm, runner.world
    ldm.unet.load_state_dict(runner.base_state)
    clean = runner.clean(seed)
    p = runner.pairs(c_p, seed)
    x, y = runner.pair_embeddings(p, seed)
    ad = alignment_difficulty(x, y, scale=runner.calibration)
    data = make_pairs(ldm, clean["mean"], clean["std"], np.asarray(p["image"]), list(p["captions"]))
    ft = replace(cfg.finetune, steps=max(at), seed=seed * 1000 + c_p)
    k = world.n_concepts
    concept = torch.arange(k).repeat_interleave(cfg.eval_samples)
    prompts = [world.concepts[int(i)].caption(0) for i in concept]
    out: dict[int, dict] = {}
    t0 = time.time()

    def on_step(step: int, total: int, loss: float) -> None:
        if step not in at:
            return
        was = ldm.unet.training
        ldm.unet.eval()
        images = ldm.sample(prompts, seed=seed, steps=cfg.eval_steps, guidance=cfg.guidance)
        ldm.unet.train(was)
        sc = score_generations(ldm, Generations(images, concept, prompts))
        rec = runner._record(c_p, seed, ad, sc, concept, time.time() - t0)
        rec["loss"] = loss
        out[step] = rec
        save_grid(
            to_uint8(images)
            .reshape(k, cfg.eval_samples, *images.shape[2:], 3)[:, :4]
            .reshape(-1, *images.shape[2:], 3),
            runner.out / "grids" / f"cp{c_p}_seed{seed}_step{step}.png",
            ncol=4,
        )

    finetune_unet(ldm, data, ft, on_step=on_step)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--variant", nargs="+", default=["replace"], choices=sorted(VARIANTS))
    ap.add_argument("--cp", type=int, nargs="+", default=[24])
    ap.add_argument("--seed", type=int, nargs="+", default=[0])
    ap.add_argument("--steps", type=int, nargs="+", default=[60, 180])
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--no-clean", action="store_true", help="skip C_P 0 (already measured)")
    ap.add_argument("--out", type=Path, default=Path("bench/results/science_levers.json"))
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)  # 1 on a loaded 2-core machine: no OpenMP spin-waits
    res = json.loads(args.out.read_text()) if args.out.exists() else {"runs": []}
    work = Path("build/science")
    at = sorted(args.steps)
    for name in args.variant:
        mode, ratio, over = VARIANTS[name]
        ft = FinetuneConfig(**{"steps": at[-1], "batch": 64, "lr": args.lr, **over})
        levels = tuple(sorted(set(args.cp) | (set() if args.no_clean else {0})))
        cfg = SweepConfig(
            preset="science",
            levels=levels,
            seeds=tuple(args.seed),
            n_clean_per_concept=32,
            poison_ratio=ratio,
            finetune=ft,
            eval_samples=8,
            eval_steps=10,
            grid_samples=4,
        )
        folder = work / f"{name}_lr{ft.lr:g}_{params_label(ft)}"
        (folder / "grids").mkdir(parents=True, exist_ok=True)
        runner = LeverRunner(cfg, folder)
        runner.mode = mode
        runner.calibration = DEMO_AD_SCALE
        for seed in args.seed:
            for c_p in levels:
                # C_P 0 is the same run for every poison mode and ratio
                label = name if c_p else f"clean-{params_label(ft)}"
                done = {
                    (r["variant"], r["steps"], r["lr"], r["c_p"], r["seed"]) for r in res["runs"]
                }
                todo = [n for n in at if (label, n, ft.lr, c_p, seed) not in done]
                if not todo:
                    continue
                t0 = time.time()
                recs = run_level(runner, c_p, seed, at)
                for steps in at:  # already-recorded lengths are printed (a check), not re-added
                    rec = recs[steps]
                    row = {
                        "variant": label,
                        "mode": mode if c_p else "clean",
                        "poison_ratio": ratio,
                        "steps": steps,
                        "lr": ft.lr,
                        "params": params_label(ft),
                        "c_p": c_p,
                        "seed": seed,
                        "wall_seconds": round(time.time() - t0, 1),
                        "load1": round(os.getloadavg()[0], 2),
                        **{k: rec.get(k) for k in KEYS},
                    }
                    if steps in todo:
                        res["runs"].append(row)
                    print(
                        f"{label:16s} steps={steps:4d} lr={ft.lr:g} C_P={c_p:2d} seed={seed} "
                        f"unp={rec['acc_unpoisoned']} incoh_unp={rec['incoherence_unpoisoned']} "
                        f"undef={rec['undefined_rate']:.3f} rel={rec['acc_related']} "
                        f"unrel={rec['acc_unrelated']} atk={rec['attack_success']} "
                        f"({row['wall_seconds']} s, load {row['load1']})",
                        flush=True,
                    )
                atomic_write_json(args.out, res)


if __name__ == "__main__":
    main()
