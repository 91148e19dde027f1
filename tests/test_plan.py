"""The one poisoning plan: the sweep's level, chosen concepts, targets, related/unrelated split."""

from __future__ import annotations

import numpy as np
import pytest

from core.poison.plan import (
    METHODS,
    PoisonConfig,
    check_concepts,
    choose_targets,
    plan_level,
    poisoning_plan,
    split_unpoisoned,
    world_for,
)


def test_sweep_level_is_the_plan():
    # K=32, C_P=4, seed 0: the sweep's poisoned set (issue 10 quotes [12, 22, 25, 28])
    order, targets = poisoning_plan(32, 0)
    lv = plan_level(32, 4, 0)
    assert sorted(lv.poisoned) == [12, 22, 25, 28] == sorted(order[:4])
    assert lv.targets == {a: targets[a] for a in order[:4]}
    assert all(b != a for a, b in targets.items())
    # nested: more C_P only adds concepts
    assert set(plan_level(32, 8, 0).poisoned) >= set(lv.poisoned)


def test_related_is_shared_attribute_words_against_a_naive_loop():
    w = world_for(32)
    lv = plan_level(32, 4, 1, relation=w.relation)
    naive_rel = [
        j
        for j in range(32)
        if j not in lv.poisoned
        and any(len(set(w.names[j].split()) & set(w.names[i].split())) >= 2 for i in lv.poisoned)
    ]
    assert list(lv.related) == naive_rel
    assert sorted((*lv.poisoned, *lv.related, *lv.unrelated)) == list(range(32))
    g = lv.groups()
    assert g["poisoned"] == list(lv.poisoned)


def test_chosen_concepts_and_explicit_targets():
    lv = plan_level(32, 2, 5, order=[3, 7, 9], targets={3: 4})
    assert lv.poisoned == (3, 7) and lv.targets[3] == 4
    assert lv.targets[7] == poisoning_plan(32, 5)[1][7]  # the seed's target where none is given
    assert plan_level(32, 0, 5, order=[3, 7]).poisoned == ()
    with pytest.raises(ValueError, match="chosen concepts"):
        plan_level(32, 3, 0, order=[3, 7])


@pytest.mark.parametrize(
    ("concepts", "match"),
    [
        ([1, 1], "listed twice"),
        ([40], "0..31"),
        (["a"], "not a concept id"),
        ([True], "not a concept id"),
    ],
)
def test_check_concepts_names_field_and_fix(concepts, match):
    with pytest.raises(ValueError, match=match):
        check_concepts(concepts, 32)


def test_bad_targets_rejected():
    with pytest.raises(ValueError, match="target themselves"):
        poisoning_plan(8, 0, [1], {1: 1})
    with pytest.raises(ValueError, match="not concepts"):
        poisoning_plan(8, 0, [1], {1: 9})


def test_split_without_relation_and_real_bool_relation():
    assert split_unpoisoned(4, [0]) == ((), (1, 2, 3))
    rel = np.zeros((4, 4), dtype=bool)
    rel[2, 0] = rel[0, 2] = True
    assert split_unpoisoned(4, [0], rel, related_min=1) == ((2,), (1, 3))
    with pytest.raises(ValueError, match="shape"):
        split_unpoisoned(3, [0], rel)


def test_choose_targets_rules():
    w = world_for(32)
    a = 5
    random = choose_targets(w, [a], "random", 0)
    assert random == {a: poisoning_plan(32, 0)[1][a]}  # the sweep's random target
    near, far = choose_targets(w, [a], "nearest", 0)[a], choose_targets(w, [a], "farthest", 0)[a]
    assert w.relation[a, near] == 2 and w.relation[a, far] == 0
    with pytest.raises(ValueError, match="random, nearest, farthest"):
        choose_targets(w, [a], "closest", 0)


def test_one_methods_constant():
    import core.poison.builders
    import core.poison.real

    assert core.poison.real.METHODS is METHODS
    with pytest.raises(ValueError, match="method"):
        PoisonConfig(concepts=(1,), method="blend")  # type: ignore[arg-type]
