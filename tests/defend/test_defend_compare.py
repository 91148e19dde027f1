"""Attacked vs defended comparison on hand-made records (known gap and recovery)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.defend.compare import compare
from core.results.pack import Pack


def pack(records, defense=None) -> Pack:
    cfg = {"concepts": [f"c{i}" for i in range(8)], "levels": sorted({r["c_p"] for r in records})}
    if defense:
        cfg["defense"] = defense
    return Pack(Path("/nonexistent"), {"config": cfg, "records": records})


def rec(c_p, seed, ad, acc):
    return {"c_p": c_p, "seed": seed, "ad": ad, "acc_unpoisoned": acc}


def test_gap_recovery_and_ad_target():
    att = pack(
        [
            rec(0, 0, 0.4, 1.0),
            rec(4, 0, 0.5, 0.8),
            rec(6, 0, 0.6, 0.6),
            rec(8, 0, 0.7, None),
            rec(6, 1, 0.6, 0.5),
        ]
    )  # seed 1 only in the attacked pack: ignored
    dfd = pack(
        [rec(4, 0, 0.38, 0.95), rec(6, 0, 0.39, 0.9), rec(8, 0, 0.4, None)], {"detector": "x"}
    )
    c = compare(att, dfd)
    assert [r["c_p"] for r in c.rows] == [4, 6, 8]
    assert c.clean_acc == 1.0 and c.c_recovery == 6  # the largest C_P with unpoisoned concepts
    assert c.gap == pytest.approx(0.4) and c.recovered == pytest.approx(0.75)
    assert c.ad_lower_from_4 is True
    c2 = compare(att, pack([rec(4, 0, 0.55, 0.8), rec(6, 0, 0.5, 0.6)], {"detector": "x"}))
    assert c2.ad_lower_from_4 is False and c2.recovered == pytest.approx(0.0)


def test_no_common_records_is_an_error():
    with pytest.raises(ValueError, match="shares no"):
        compare(pack([rec(0, 0, 0.4, 1.0)]), pack([rec(0, 1, 0.4, 1.0)], {"detector": "x"}))


def planned(seeds=(0, 1), model=None, k=8, order_of=None, ratio=3.0, defense=None) -> Pack:
    """A pack whose config carries what pairing checks: model, concepts, settings, plans."""
    plans = {
        str(s): {"order": (order_of or {}).get(s, list(range(k))), "targets": {"0": 1}}
        for s in seeds
    }
    cfg = {
        "concepts": [f"c{i}" for i in range(k)],
        "levels": [0, 4],
        "seeds": list(seeds),
        "model": model,
        "poison_ratio": ratio,
        "plans": plans,
        "defense": defense,
    }
    records = [rec(c, s, 0.5, 0.8) for s in seeds for c in (0, 4)]
    return Pack(Path(f"/packs/{model or 'base'}-{ratio}"), {"config": cfg, "records": records})


def test_unrelated_packs_are_refused_naming_what_differs():
    d = {"detector": "misalignment", "fpr": 0.05}
    att = planned()
    compare(att, planned(defense=d))  # its own defended sweep
    compare(att, planned(seeds=(1,), defense=d))  # on a subset of its seeds
    cases = [
        (planned(model="/m/other", defense=d), "model differs"),
        (planned(k=6, defense=d), r"K differs \(8 vs 6 concepts\)"),
        (planned(ratio=1.0, defense=d), "sweep settings differ: poison_ratio"),
        (planned(seeds=(0, 7), defense=d), r"seeds \[7\] were not run by the attacked pack"),
        (planned(order_of={1: [7, 6, 5, 4, 3, 2, 1, 0]}, defense=d), "plan of seed 1 differs"),
        (planned(), "is not a defended sweep"),
    ]
    for defended, why in cases:
        with pytest.raises(ValueError, match=why):
            compare(att, defended)
    with pytest.raises(ValueError, match="is itself a defended sweep"):
        compare(planned(defense=d), planned(defense=d))
