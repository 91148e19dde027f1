"""Lever search for implosion in the mini model (issue 4, item 5): which fine-tune settings make
unpoisoned concepts degrade as C_P grows?

For each variant, fine-tune the shipped base at C_P = 0 and at C_P = ``--cp`` (same seed, same
poisoning order and targets as ``implosion sweep``) and judge every concept. Writes
bench/results/levers.json after every run (resumable; delete it to start over).

    python bench/levers.py --cp 24 --seed 0
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.io import atomic_write_json  # noqa: E402
from core.sweep.mini.run import SweepConfig  # noqa: E402
from core.sweep.mini.runner import SweepRunner  # noqa: E402
from core.training.finetune import FinetuneConfig  # noqa: E402

VARIANTS: dict[str, dict] = {
    "cpu-quick (60 steps, lr 5e-4)": {"finetune": FinetuneConfig(steps=60, batch=64, lr=5e-4)},
    "200 steps, lr 5e-4": {"finetune": FinetuneConfig(steps=200, batch=64, lr=5e-4)},
    "200 steps, lr 1e-3": {"finetune": FinetuneConfig(steps=200, batch=64, lr=1e-3)},
    "200 steps, lr 5e-4, ratio 2": {
        "finetune": FinetuneConfig(steps=200, batch=64, lr=5e-4),
        "poison_ratio": 2.0,
    },
    "200 steps, lr 1e-3, cross-attention only": {
        "finetune": FinetuneConfig(steps=200, batch=64, lr=1e-3, params="cross-attention"),
    },
}
KEYS = (
    "acc_unpoisoned",
    "acc_poisoned",
    "attack_success",
    "acc_related",
    "acc_unrelated",
    "alignment_unpoisoned",
    "incoherence",
    "ad",
    "per_concept_acc",
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cp", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", nargs="*", default=None, help="variant names to run")
    ap.add_argument("--out", type=Path, default=Path("bench/results/levers.json"))
    args = ap.parse_args()
    res = json.loads(args.out.read_text()) if args.out.exists() else {"runs": []}
    done = {(r["variant"], r["c_p"]) for r in res["runs"]}
    work = Path("build/levers")
    for name, over in VARIANTS.items():
        if args.only and name not in args.only:
            continue
        cfg = replace(
            SweepConfig(
                preset="levers",
                levels=(0, args.cp),
                seeds=(args.seed,),
                n_clean_per_concept=32,
                eval_samples=8,
                eval_steps=10,
                grid_samples=4,
            ),
            **over,
        )
        folder = work / "".join(ch if ch.isalnum() else "_" for ch in name)
        folder.mkdir(parents=True, exist_ok=True)
        runner = SweepRunner(cfg, folder)
        runner.calibration = (0.0, 1.0)  # AD is not the point here; fixed scale
        for c_p in cfg.levels:
            if (name, c_p) in done:
                continue
            t0 = time.time()
            result = runner.run_level(c_p, args.seed)
            assert result is not None
            rec = result.record
            row = {
                "variant": name,
                "c_p": c_p,
                "seed": args.seed,
                "wall_seconds": round(time.time() - t0, 1),
                **{k: rec.get(k) for k in KEYS},
            }
            res["runs"].append(row)
            atomic_write_json(args.out, res)
            print(
                f"{name:45s} C_P={c_p:2d} unpoisoned={rec['acc_unpoisoned']} "
                f"poisoned={rec['acc_poisoned']} attack={rec['attack_success']} "
                f"incoh={rec['incoherence']:.3f} ({row['wall_seconds']} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
