"""Bleed-through in a lever file: per seed, the accuracy related vs unrelated unpoisoned concepts
lose against the clean run of the same seed and length (paired per concept, as
core/analysis/claims.py does for packs); 95 % t-interval over seeds. Related = ≥ 2 shared words.

    python bench/science/bleed.py --levers bench/results/science_levers.json --variant replace \
        --cp 1 --steps 60
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from core.analysis.claims import t_interval  # noqa: E402
from core.world import World, WorldConfig  # noqa: E402

try:  # the plan moved from the sweep driver to core/poison during this work
    from core.poison.plan import poisoning_plan  # type: ignore[attr-defined]  # noqa: E402
except ImportError:  # pragma: no cover
    from core.sweep.mini.run import poisoning_plan  # type: ignore[attr-defined,no-redef]  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--levers", type=Path, default=Path("bench/results/science_levers.json"))
    ap.add_argument("--variant", default="replace")
    ap.add_argument("--cp", type=int, default=1)
    ap.add_argument("--steps", type=int, default=60)
    args = ap.parse_args()
    rows = json.loads(args.levers.read_text())["runs"]
    world = World(WorldConfig(n_concepts=32))
    rel = world.relation
    clean = {
        r["seed"]: np.array(r["per_concept_acc"])
        for r in rows
        if r["variant"].startswith("clean") and r["steps"] == args.steps
    }
    lost_rel, lost_unrel = [], []
    for r in rows:
        if (r["variant"], r["c_p"], r["steps"]) != (args.variant, args.cp, args.steps):
            continue
        s = r["seed"]
        if s not in clean:
            continue
        order, targets = poisoning_plan(world.n_concepts, s)
        pois = order[: args.cp]
        related = [j for j in range(32) if j not in pois and any(rel[j, p] >= 2 for p in pois)]
        unrelated = [j for j in range(32) if j not in pois and j not in related]
        loss = clean[s] - np.array(r["per_concept_acc"])
        lost_rel.append(float(loss[related].mean()))
        lost_unrel.append(float(loss[unrelated].mean()))
        names = ", ".join(f"{world.names[p]} → {world.names[targets[p]]}" for p in pois)
        print(
            f"seed {s} ({names}): related lose {lost_rel[-1]:+.3f}, unrelated "
            f"{lost_unrel[-1]:+.3f}; attack success {r['attack_success']}"
        )
    if lost_rel:
        print("related", t_interval(lost_rel), "\nunrelated", t_interval(lost_unrel))


if __name__ == "__main__":
    main()
