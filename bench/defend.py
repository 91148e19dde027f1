"""Benchmark and measured targets of the Defend stage (issue 16); writes bench/results/defend.md.

    python bench/defend.py [--pack assets/demo] [--defended runs/demo-defended-misalignment-fpr5]

1. ROC (curve, AUC, recall at 1 %/5 % FPR) of 10⁵ random pairs: wall time (target ≤ 5 s).
2. Every detector × method × C_P on the pack (defense.json, computed if absent): AUC and recall.
3. AD of each level's training pairs after each detector's filter at 5 % FPR (exact, from the
   pack's recorded pairs and AD calibration): what a defended sweep trains on.
4. If a defended sweep of the pack exists: attacked vs defended AD and unpoisoned accuracy, the
   implosion gap and how much of it the defense recovers.
The load average (2 shared CPU cores) is recorded beside every timing.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from core.defend.compare import compare
from core.defend.config import DETECTOR_NAMES, DefenseConfig
from core.defend.filter import apply_defense
from core.defend.pairs import dirty_label_pairs
from core.defend.report import pack_report
from core.defend.roc import roc
from core.metrics import alignment_difficulty
from core.results.pack import load_pack

OUT = Path(__file__).parent / "results" / "defend.md"
NOTES = """## Notes

- The threshold at a false-positive rate is the ROC operating point: the lowest score that flags at
  most that share of the level's clean pairs. For the per-pair misalignment score a clean pair's
  score does not depend on the poison, so this is what calibrating on a trusted clean set gives.
- With misalignment at 5 % FPR every dirty-label pair goes and the same 5 % of clean pairs (the
  worst aligned) go at every level, so every defended level trains on the same clean subset: its AD
  is below the clean C_P = 0 set's and the defended accuracy differs between levels only by the
  fine-tune seed. One seed (0) was run for the defended sweep (CPU time); attacked figures are the
  demo pack's seed-0 records.
- Nightshade-style poisons (core.poison.builders, PGD on the mini VAE, eps 16/255, 60 steps) close
  about a fifth of the VAE-latent gap to the target (report in the cached npz). They perturb the
  input of the VAE, not the joint embedding the detectors see: their image embedding stays among
  the caption's own concept (kNN disagreement below chance) and only a small alignment loss shows
  (misalignment AUC about 0.75). A filter in the embedder's space is the wrong place to look for a
  VAE-space attack; a latent-space check would be the next detector to try.
"""


def load() -> str:
    a, b, c = os.getloadavg()
    return f"load {a:.1f} {b:.1f} {c:.1f}"


def bench_roc(n: int = 100_000, repeats: int = 3) -> tuple[float, str]:
    rng = np.random.default_rng(0)
    truth = rng.random(n) < 0.05
    scores = rng.normal(size=n) + 1.5 * truth
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        r = roc(scores, truth)
        r.to_dict()
        best = min(best, time.perf_counter() - t0)
    return best, load()


def fmt(v: object) -> str:
    return f"{v:.3f}" if isinstance(v, float) else ("—" if v is None else str(v))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pack", type=Path, default=Path("assets/demo"))
    ap.add_argument("--defended", type=Path, default=None)
    args = ap.parse_args()
    lines = ["# Defend: poison detectors and the defended sweep (bench/defend.py)", ""]

    secs, ld = bench_roc()
    lines += [
        f"## ROC speed\n\nROC + AUC + recall@1/5 % of 10⁵ pairs: **{secs:.3f} s** "
        f"(best of 3; {ld}; target ≤ 5 s).",
        "",
    ]
    print(lines[-2])

    pack = load_pack(args.pack)
    t0 = time.perf_counter()
    rep, path, fresh = pack_report(pack, methods=["dirty-label", "nightshade"])
    lines += [
        f"## Detectors on {args.pack} ({'computed' if fresh else 'read from'} {path.name}; "
        f"{time.perf_counter() - t0:.1f} s, {load()})",
        "",
        "| detector | method | " + " | ".join(f"C_P {c}" for c in rep.settings["levels"]) + " |",
        "|---|---|" + "---|" * len(rep.settings["levels"]),
    ]
    for method in rep.settings["methods"]:
        for det in rep.settings["detectors"]:
            rows = {r["c_p"]: r for r in rep.rows if r["method"] == method and r["detector"] == det}
            cells = [
                f"{rows[c]['auc']:.3f} / {rows[c]['recall_at_1pct_fpr']:.2f} / "
                f"{rows[c]['recall_at_5pct_fpr']:.2f}"
                for c in rep.settings["levels"]
            ]
            lines.append(f"| {det} | {method} | " + " | ".join(cells) + " |")
    lines += ["", "Cells: AUC / recall at 1 % FPR / recall at 5 % FPR."]
    for m in rep.settings["methods"]:
        b = rep.best(m)
        if b:
            lines.append(
                f"- best on {m}: **{b['detector']}**, mean AUC {b['mean_auc']:.4f}, "
                f"min over C_P {b['min_auc']:.4f}"
            )
    lines.append("")

    cal = tuple(pack.config["ad_scale"]) if pack.config.get("ad_scale") else None
    lines += [
        f"## AD of the training pairs after each filter at 5 % FPR (exact; scale {cal})",
        "",
        "| C_P | attacked | " + " | ".join(DETECTOR_NAMES) + " |",
        "|---|---|" + "---|" * len(DETECTOR_NAMES),
    ]
    for c in [c for c in pack.levels if c > 0]:
        p = dirty_label_pairs(pack, c)
        cells = [f"{alignment_difficulty(p.image, p.text, scale=cal).ad:.4f}"]
        for det in DETECTOR_NAMES:
            keep, st = apply_defense(
                DefenseConfig(det, 0.05), p.image, p.text, p.caption_concept, p.poisoned
            )
            ad = alignment_difficulty(p.image[keep], p.text[keep], scale=cal).ad
            cells.append(f"{ad:.4f} (recall {st['defense_recall']:.2f})")
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    lines.append("")

    if args.defended and Path(args.defended).exists():
        cmp = compare(pack, load_pack(args.defended))
        d = load_pack(args.defended).config["defense"]
        lines += [
            f"## Defended sweep ({d['detector']} at {d['fpr']:.0%} FPR) vs the attacked pack",
            "",
            f"Defended pack: `{args.defended}`; seeds {cmp.rows[0]['seeds']}.",
            "",
            "| C_P | AD attacked | AD defended | acc unpoisoned attacked | defended | pairs removed | poison recall | clean FPR |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in cmp.rows:
            lines.append(
                "| "
                + " | ".join(
                    fmt(r[k])
                    for k in (
                        "c_p",
                        "ad_attacked",
                        "ad_defended",
                        "acc_unpoisoned_attacked",
                        "acc_unpoisoned_defended",
                        "defense_removed",
                        "defense_recall",
                        "defense_fpr_measured",
                    )
                )
                + " |"
            )
        lines += [
            "",
            f"- clean accuracy (attacked pack, C_P 0, same seeds): {fmt(cmp.clean_acc)}",
            f"- AD lower at every C_P ≥ 4: **{cmp.ad_lower_from_4}**",
            f"- at C_P {cmp.c_recovery}: implosion gap {fmt(cmp.gap)}, recovered "
            f"**{fmt(cmp.recovered)}** of it (target ≥ 0.5)",
            "",
        ]
    lines.append(NOTES)
    OUT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
