"""docs/architecture.md: a per-level array is added in two files, the schema's registry and the
runner. This adds one the way the doc says (a registry entry, and a runner that hands the array
to ``pack_level`` in ``extra``) and follows it through the engine, the pack writer, the
validating reader and ``Pack.level_arrays``."""

from __future__ import annotations

import numpy as np
import pytest

from core.poison.plan import plan_level
from core.results import schema
from core.results.pack import load_pack
from core.results.validate import BrokenPack
from core.results.write import write_pack_files
from core.sweep.engine import drive
from core.sweep.executors.local import SerialExecutor
from core.sweep.runner import RunnerSpec, level_record, new_results, pack_level

K, D, N, KEEP = 4, 8, 12, 8  # concepts, embedding width, training pairs per level, pairs kept
LEVELS, SEEDS = (0, 1, 2), (0,)
NEW = "generated_spread"  # per concept: spread of its generations' embeddings (K,)
PER_PAIR = "pair_index"  # per training pair: its row in the level's pairs (n,)


class SpreadRunner:
    """A level runner whose levels carry one more array, ``NEW``, handed to ``pack_level``."""

    steps_per_level = 1

    def __init__(self, out, rows: int = K):
        self.out, self.rows = out, rows
        self.plans = {s: (list(range(K)), {a: (a + 1) % K for a in range(K)}) for s in SEEDS}

    def open(self):
        cfg = {"levels": list(LEVELS), "seeds": list(SEEDS)}
        return new_results(cfg, [f"c{i}" for i in range(K)], self.plans, {})

    def spec(self):
        return RunnerSpec("tests:none", {}, str(self.out))

    def run_level(self, c_p, seed, on_step, stop):
        on_step(1, 0.5)
        rng = np.random.default_rng([seed, c_p])
        level = plan_level(K, c_p, seed)
        concept = np.repeat(np.arange(K), 2)
        record = level_record(level, concept, concept, np.ones(K), np.full(K, 0.3), np.full(K, 0.1))
        pairs = {
            "image": rng.normal(size=(N, D)),
            "text": rng.normal(size=(N, D)),
            "caption_concept": np.arange(N) % K,
            "image_concept": np.arange(N) % K,
            "poisoned": np.zeros(N, dtype=bool),
            PER_PAIR: np.arange(N, dtype=np.float32),  # a per-pair array goes with the pairs
        }
        spread = np.linspace(0.0, 1.0, self.rows).astype(np.float32) + c_p
        images = np.zeros((K, 1, 4, 4, 3), dtype=np.uint8)
        return pack_level(
            record, images, pairs, np.arange(N), KEEP, rng.normal(size=(K, D)), [0.5], 1,
            extra={NEW: spread},
        )  # fmt: skip

    def level_done(self, c_p, seed):
        pass

    def assemble(self):
        text_concept = np.random.default_rng(0).normal(size=(K, D))
        write_pack_files(self.out, LEVELS, SEEDS[0], [f"c{i}" for i in range(K)], text_concept)


@pytest.fixture
def registered(monkeypatch):
    """Step 1 of the doc: name the array and its shape in the schema's registry."""
    monkeypatch.setitem(schema.LEVEL_ARRAYS, NEW, schema.LevelArray(1, "f", "concepts"))
    monkeypatch.setitem(schema.LEVEL_ARRAYS, PER_PAIR, schema.LevelArray(1, "f", "pairs"))


def test_a_registered_array_survives_write_validate_and_load(tmp_path, registered):
    res = drive(SpreadRunner(tmp_path), tmp_path, SerialExecutor())
    assert res["complete"]
    pack = load_pack(tmp_path)  # the validating reader
    for c in LEVELS:
        got = pack.level_arrays(c)
        assert set(got) == set(schema.LEVEL_ARRAYS)
        np.testing.assert_allclose(got[NEW], np.linspace(0, 1, K) + c)
        rows = got[PER_PAIR].astype(int)  # the same subsample as the pairs it describes
        assert len(rows) == len(got["image"]) == KEEP and np.all(np.diff(rows) > 0)
        assert rows.max() < N


def test_the_validator_checks_the_new_array_by_its_registered_shape(tmp_path, registered):
    drive(SpreadRunner(tmp_path, rows=K + 1), tmp_path, SerialExecutor())
    with pytest.raises(BrokenPack, match=f"'{NEW}_0' has {K + 1} rows, expected {K}"):
        load_pack(tmp_path)


def test_an_unregistered_array_is_not_part_of_the_contract(tmp_path):
    drive(SpreadRunner(tmp_path), tmp_path, SerialExecutor())
    assert {NEW, PER_PAIR}.isdisjoint(load_pack(tmp_path).level_arrays(1))


def test_a_required_array_a_pack_lacks_names_itself_and_an_optional_one_is_skipped(
    tmp_path, monkeypatch
):
    drive(SpreadRunner(tmp_path), tmp_path, SerialExecutor())
    monkeypatch.setitem(schema.LEVEL_ARRAYS, "later", schema.LevelArray(1, "f", "concepts"))
    with pytest.raises(BrokenPack, match="'later_0' is missing"):
        load_pack(tmp_path)
    monkeypatch.setitem(
        schema.LEVEL_ARRAYS, "later", schema.LevelArray(1, "f", "concepts", required=False)
    )
    assert "later" not in load_pack(tmp_path).level_arrays(0)
