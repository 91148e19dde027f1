"""AD of the training pairs per C_P level when dirty-label poisons are added vs replace the
poisoned captions' clean pairs (no fine-tuning: AD depends on the pairs only). Prints one line per
(mode, seed); cpu-full's levels and the demo pack's AD calibration.

    PYTHONPATH=. python bench/science/ad_modes.py --seeds 0 1
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from core.metrics import alignment_difficulty  # noqa: E402
from core.sweep.mini.run import SweepConfig  # noqa: E402

_spec = importlib.util.spec_from_file_location("levers", HERE / "implosion_levers.py")
assert _spec is not None and _spec.loader is not None
lv = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lv)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--out", type=Path, default=Path("build/science/ad_modes"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = SweepConfig(
        preset="ad-modes",
        levels=(0, 1, 2, 4, 8, 16, 24, 32),
        seeds=tuple(args.seeds),
        n_clean_per_concept=32,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    runner = lv.LeverRunner(cfg, args.out)
    for mode in ("add", "replace"):
        runner.mode = mode
        for seed in args.seeds:
            clean = runner.clean(seed)
            vals = []
            for c_p in cfg.levels:
                p = runner.pairs(c_p, seed)
                uniq = sorted(set(p["captions"]))
                t = runner.ldm.text_embeds(uniq).cpu().numpy()
                pos = {q: i for i, q in enumerate(uniq)}
                x = clean["image_emb"][p["image"]]
                y = t[[pos[q] for q in p["captions"]]]
                vals.append(alignment_difficulty(x, y, scale=lv.DEMO_AD_SCALE).ad)
            print(mode, seed, " ".join(f"{v:.3f}" for v in vals), flush=True)


if __name__ == "__main__":
    main()
