"""Job records on disk name their function as ``"module:function"``; a record written before the
function moved still loads (core.jobs.kinds.MOVED)."""

from __future__ import annotations

import importlib.util

import pytest

from core.jobs.kinds import MOVED, kinds, load_target, resolve_target


@pytest.mark.parametrize("old", sorted(MOVED))
def test_a_moved_target_loads_the_function_it_moved_to(old):
    module = old.partition(":")[0]
    assert importlib.util.find_spec(module) is None or not hasattr(
        importlib.import_module(module), old.partition(":")[2]
    ), f"{old} still exists: drop it from MOVED"
    assert load_target(old) is load_target(MOVED[old])
    assert resolve_target(old) == MOVED[old]


def test_every_registered_kind_names_a_current_target():
    for kind, target in kinds().items():
        assert target not in MOVED, kind
    for kind in ("sweep", "finetune", "real-sweep"):
        assert callable(load_target(kinds()[kind], kind))


def test_an_unknown_old_target_still_fails_naming_the_module():
    with pytest.raises(ValueError, match="cannot import core.sweep.nowhere"):
        load_target("core.sweep.nowhere:run_job")
