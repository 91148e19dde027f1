"""Per-seed truth: each seed poisons its own concepts, so per-concept drops are averaged only
over the seeds where the concept is in the group it is shown in (Pack.groups per seed)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.analysis.drops import accuracy_drop
from core.poison.plan import plan_level
from core.results.aggregate import concept_drop
from core.results.pack import demo_dir, load_pack
from core.world import World, WorldConfig


def test_demo_drop_of_an_unrelated_prompt_counts_only_seeds_where_it_stayed_unrelated():
    """At C_P 8 the demo shows "small blue star" as unrelated (seed 0's plan); seeds 1–3 poisoned
    it. Averaged over every seed it "fell" 48 %; over seeds 0 and 4, where it is unrelated, 6 %."""
    pack = load_pack(demo_dir())
    i = pack.concepts.index("small blue star")
    assert i in pack.groups(8)["unrelated"]
    roles = {s: next(g for g, ids in pack.groups(8, s).items() if i in ids) for s in range(5)}
    assert roles == {0: "unrelated", 1: "poisoned", 2: "poisoned", 3: "poisoned", 4: "unrelated"}
    acc = {(r["c_p"], r["seed"]): r["per_concept_acc"][i] for r in pack.records}
    clean_seeds = [0, 4]
    want = np.mean([acc[(0, s)] - acc[(8, s)] for s in clean_seeds])
    drop = accuracy_drop(pack, 8)
    assert drop is not None
    assert drop[i] == pytest.approx(want) and drop[i] == pytest.approx(0.0625)
    mixed = np.mean([acc[(0, s)] - acc[(8, s)] for s in range(5)])
    assert mixed == pytest.approx(0.475)  # what averaging across groups showed


def _pack_with_plans(tmp_path, orders, per_concept):
    k = 8
    names = World(WorldConfig(n_concepts=k)).names
    records = [
        {"c_p": c, "seed": s, "per_concept_acc": per_concept[(c, s)]}
        for c in (0, 2)
        for s in range(len(orders))
    ]
    cfg = {
        "concepts": names,
        "levels": [0, 2],
        "seeds": list(range(len(orders))),
        "poison_order": orders[0],
        "targets": {},
        "plans": {str(s): {"order": o, "targets": {}} for s, o in enumerate(orders)},
    }
    root = tmp_path / "pack"
    root.mkdir()
    (root / "results.json").write_text(json.dumps({"config": cfg, "records": records}))
    return load_pack(root)


def test_drop_against_a_naive_loop_over_per_seed_plans(tmp_path):
    rng = np.random.default_rng(1)
    orders = [list(rng.permutation(8).tolist()) for _ in range(4)]
    per = {(c, s): [round(float(v), 3) for v in rng.random(8)] for c in (0, 2) for s in range(4)}
    pack = _pack_with_plans(tmp_path, orders, per)
    world = World(WorldConfig(n_concepts=8))
    shown = plan_level(8, 2, 0, relation=world.relation, order=orders[0]).groups()
    assert pack.groups(2) == shown
    role = {i: g for g, ids in shown.items() for i in ids}
    for s in range(4):
        assert pack.groups(2, s) == (
            plan_level(8, 2, s, relation=world.relation, order=orders[s]).groups()
        )
    naive = np.zeros(8)
    for i in range(8):
        seeds = [s for s in range(4) if i in pack.groups(2, s)[role[i]]]
        naive[i] = np.mean([per[(0, s)][i] - per[(2, s)][i] for s in seeds])
    np.testing.assert_allclose(accuracy_drop(pack, 2), naive)


def test_groups_refuse_a_seed_without_a_plan(tmp_path):
    per = {(c, s): [1.0] * 8 for c in (0, 2) for s in range(2)}
    pack = _pack_with_plans(tmp_path, [list(range(8)), list(range(8))], per)
    with pytest.raises(ValueError, match="seed 7: this pack records no poisoning plan"):
        pack.groups(2, 7)


def test_concept_drop_without_groups_is_the_mean_over_seeds():
    rng = np.random.default_rng(0)
    records = [
        {"c_p": c, "seed": s, "per_concept_acc": list(rng.random(4))}
        for c in (0, 2)
        for s in (0, 1, 2)
    ]
    naive = np.zeros(4)
    for s in (0, 1, 2):
        r0 = next(r for r in records if r["c_p"] == 0 and r["seed"] == s)
        r2 = next(r for r in records if r["c_p"] == 2 and r["seed"] == s)
        naive += (np.array(r0["per_concept_acc"]) - np.array(r2["per_concept_acc"])) / 3
    np.testing.assert_allclose(concept_drop(records, 4, 2), naive)
    assert concept_drop(records, 5, 2) is None  # wrong K: no per-concept numbers
    assert concept_drop([{"c_p": 2, "seed": 0}], 4, 2) is None
    only_first = concept_drop(records, 4, 2, lambda s: [0] if s == 0 else None)
    assert only_first is not None and np.isnan(only_first[1:]).all()
    r0, r2 = records[0]["per_concept_acc"], records[3]["per_concept_acc"]
    assert only_first[0] == pytest.approx(r0[0] - r2[0])
