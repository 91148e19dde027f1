"""The pack schema: level keys round-trip, bad keys name the expected form, summaries are means."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.results.aggregate import level_summaries
from core.results.schema import (
    grid_file,
    level_array_key,
    level_file,
    level_key,
    parse_level_key,
)


@pytest.mark.parametrize(("c_p", "seed"), [(0, 0), (4, 0), (32, 11)])
def test_level_key_round_trip(c_p, seed):
    key = level_key(c_p, seed)
    assert parse_level_key(key) == (c_p, seed)
    assert parse_level_key(level_file(Path("/x"), c_p, seed).name) == (c_p, seed)
    assert grid_file(Path("/x"), c_p, seed) == Path(f"/x/grids/{key}.png")
    assert level_array_key("image", c_p) == f"image_{c_p}"


@pytest.mark.parametrize("bad", ["cp4", "seed0_cp4", "cp-1_seed0", ""])
def test_parse_level_key_rejects(bad):
    with pytest.raises(ValueError, match="cp<C_P>_seed<seed>"):
        parse_level_key(bad)


def test_level_key_rejects_negative():
    with pytest.raises(ValueError, match="c_p and seed"):
        level_key(-1, 0)


def test_level_summaries_mean_over_seeds_and_skip_nulls():
    recs = [
        {"c_p": 0, "seed": 0, "ad": 0.2, "acc_poisoned": None, "acc_unpoisoned": 0.8},
        {"c_p": 0, "seed": 1, "ad": 0.4, "acc_poisoned": None, "acc_unpoisoned": 0.6},
        {"c_p": 2, "seed": 0, "ad": 0.5, "acc_poisoned": 0.1, "acc_unpoisoned": 0.5},
    ]
    s = level_summaries(recs)
    assert [x.c_p for x in s] == [0, 2]
    assert s[0].ad == pytest.approx(0.3) and s[0].acc_poisoned is None and s[0].n_seeds == 2
    assert s[1].to_dict()["acc_poisoned"] == pytest.approx(0.1)
