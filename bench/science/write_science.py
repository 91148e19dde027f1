"""Write a pack's ``science.json`` (read by core/analysis/claims.py) from measured bench files.

- ``longer_training``: per-seed ratio of unpoisoned accuracy at C_P (rows of ``--variant``) to
  the clean run (rows of ``--clean-variant``, C_P 0, same seed), from a lever file
  (bench/results/levers.json or science_levers.json), at ``--steps`` fine-tune steps.
- ``nightshade``: from a sweep-budget result (bench/results/budget_cpu*.json): the Nightshade
  count with the highest attack success (ties: the largest count tried), ε in 1/255 of the
  [0, 255] pixel range (the sweep's ε is in [-1, 1] units: ×255/2), SSIM, and the smallest
  dirty-label count that reached 80 % (null: none).
- ``notes``: ``--note`` sentences shown as honest limits.

Never overwrites: an existing science.json is an error.

    python bench/science/write_science.py --pack assets/demo --levers bench/results/levers.json \
        --variant "200 steps, lr 5e-4" --clean-variant "200 steps, lr 5e-4" --cp 24 --steps 200 \
        --preset-steps 60 --budget bench/results/budget_cpu_e32.json --note "…"
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from core.analysis.claims import SCIENCE_FILE, t_interval  # noqa: E402
from core.io import atomic_write_json  # noqa: E402


def longer_training(
    rows: list[dict],
    variant: str,
    clean: str,
    c_p: int,
    steps: int | None,
    lr: float | None = None,
    seeds: list[int] | None = None,
) -> dict:
    def pick(name: str, level: int) -> dict[int, float]:
        return {
            int(r["seed"]): float(r["acc_unpoisoned"])
            for r in rows
            if r["variant"] == name
            and r["c_p"] == level
            and (steps is None or r.get("steps", steps) == steps)
            and (lr is None or abs(float(r["lr"]) - lr) < 1e-12)
            and (not seeds or int(r["seed"]) in seeds)
        }

    num, den = pick(variant, c_p), pick(clean, 0)
    ratios = [num[s] / den[s] for s in sorted(num) if s in den]
    if not ratios:
        raise ValueError(
            f"levers: no seed has both {variant!r} at C_P {c_p} and {clean!r} at C_P 0"
            f"{'' if steps is None else f' at {steps} steps'}; check --variant/--clean-variant/--steps"
        )
    iv = t_interval(ratios)
    return {
        "ratio": iv.mean,
        "ci_low": iv.low,
        "ci_high": iv.high,
        "n_seeds": iv.n,
        "seeds": sorted(s for s in num if s in den),
        "c_p": c_p,
        "steps": steps,
    }


def nightshade(budget: dict) -> dict:
    recs = budget["records"]
    ns = max(
        (r for r in recs if r["method"] == "nightshade"),
        key=lambda r: (r["attack_success"], r["count"]),
    )
    dl = sorted(
        r["count"] for r in recs if r["method"] == "dirty-label" and r["attack_success"] >= 0.8
    )
    eps = float(budget["config"]["epsilon"])
    return {
        "attack_success": ns["attack_success"],
        "n_poison": ns["count"],
        "epsilon255": round(eps * 255 / 2, 2),
        "ssim": ns["poison_report"].get("ssim"),
        "latent_gap_closed": ns["poison_report"].get("latent_distance_reduction"),
        "dirty_label_n80": dl[0] if dl else None,
        "dirty_label_best": max(r["attack_success"] for r in recs if r["method"] == "dirty-label"),
        "counts": budget["config"]["counts"],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pack", type=Path, required=True)
    ap.add_argument("--levers", type=Path)
    ap.add_argument("--variant")
    ap.add_argument("--clean-variant")
    ap.add_argument("--cp", type=int)
    ap.add_argument("--steps", type=int)
    ap.add_argument("--lr", type=float, help="only lever rows at this learning rate")
    ap.add_argument("--seeds", type=int, nargs="+", help="only these seeds (default: all)")
    ap.add_argument("--preset-steps", type=int)
    ap.add_argument("--budget", type=Path)
    ap.add_argument("--note", action="append", default=[])
    args = ap.parse_args()
    out = args.pack / SCIENCE_FILE
    if out.exists():
        raise SystemExit(f"{out} exists; nothing was overwritten (move it away to rewrite it)")
    d: dict = {"command": "python " + shlex.join(sys.argv), "notes": args.note}
    if args.levers:
        if not (args.variant and args.clean_variant and args.cp is not None):
            raise SystemExit("--levers needs --variant, --clean-variant and --cp")
        rows = json.loads(args.levers.read_text())["runs"]
        lt = longer_training(
            rows, args.variant, args.clean_variant, args.cp, args.steps, args.lr, args.seeds
        )
        lt["preset_steps"] = args.preset_steps
        lt["source"] = str(args.levers)
        d["longer_training"] = lt
    if args.budget:
        d["nightshade"] = {
            **nightshade(json.loads(args.budget.read_text())),
            "source": str(args.budget),
        }
    atomic_write_json(out, d)
    print(json.dumps(d, indent=1))


if __name__ == "__main__":
    main()
