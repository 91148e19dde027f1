"""Every run is a pack: the Poison-setup fine-tune (clean baseline + poisoned level through the
sweep driver), ``implosion finetune`` and ``implosion runs list/show`` on a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.cli import main
from core.poison.plan import plan_level
from core.results.runs import get_run, list_runs, open_run, run_summary
from core.sweep.mini.finetune import (
    finetune_config,
    job_config,
    model_world,
    resolve_concepts,
    run_finetune,
)

TINY = {"eval_samples": 1, "grid_samples": 1, "eval_steps": 2, "probe_every": 1}


def tiny_config(model_dir, concepts, **kw):
    world = model_world(model_dir)
    return finetune_config(
        world,
        concepts,
        steps=2,
        model=str(model_dir),
        n_clean_per_concept=4,
        embeddings_per_level=64,
        **{**TINY, **kw},
    )


def test_random_cp_is_the_sweeps_level(tiny_model_dir):
    world = model_world(tiny_model_dir)
    lv = plan_level(world.n_concepts, 3, 2)
    cfg = finetune_config(world, list(lv.poisoned), seed=2)
    assert cfg.levels == (0, 3) and cfg.seeds == (2,) and cfg.concepts == lv.poisoned
    assert cfg.targets is None  # random: the seed's plan targets, as in the sweep
    assert cfg.preset == "finetune"


def test_names_resolved_once_and_errors_name_the_field(tiny_model_dir):
    world = model_world(tiny_model_dir)
    a, b = world.names[1], world.names[4]
    assert resolve_concepts(world, [a, "4"]) == (1, 4)
    cfg = finetune_config(world, [a, b], targets={a: b, b: a}, budget=8)
    assert cfg.targets == ((1, 4), (4, 1)) and cfg.poison_ratio == pytest.approx(8 / 32)
    near = finetune_config(world, [a], targets="nearest")
    assert near.targets is not None and world.relation[1, near.targets[0][1]] == 2
    with pytest.raises(ValueError, match="valid concepts"):
        finetune_config(world, ["purple dog"])
    with pytest.raises(ValueError, match="listed twice"):
        finetune_config(world, [a, a])
    with pytest.raises(ValueError, match="no target given"):
        finetune_config(world, [a, b], targets={a: b})
    with pytest.raises(ValueError, match="target themselves"):
        finetune_config(world, [a], targets={a: a})
    with pytest.raises(ValueError, match="budget"):
        finetune_config(world, [a], budget=0)
    with pytest.raises(ValueError, match="model.json"):
        model_world(tiny_model_dir.parent)


@pytest.fixture()
def finished_pack(tiny_model_dir, tmp_path, monkeypatch):
    """A two-level fine-tune run in-process into <runs>/<id>/pack with a job-like config.json."""
    runs = tmp_path / "runs"
    run = runs / "20260101-000000-finetune-aaaaaa"
    (run / "pack").mkdir(parents=True)
    world = model_world(tiny_model_dir)
    cfg = tiny_config(tiny_model_dir, [world.names[0], world.names[5]])
    (run / "config.json").write_text(
        json.dumps(
            {"kind": "finetune", "config": job_config(cfg, world.names), "created": "2026-01-01"}
        )
    )
    seen = []
    res = run_finetune(cfg, run / "pack", lambda i, n, m: seen.append((i, n, m)))
    return run, res, seen


def test_finetune_writes_a_pack_of_two_levels(finished_pack, tiny_model_dir):
    run, res, seen = finished_pack
    assert res["complete"] and [r["c_p"] for r in res["levels"]] == [0, 2]
    assert seen[0][:2] == (0, 2) and seen[-1][:2] == (2, 2)
    pack = open_run(run.name, complete=True, model=tiny_model_dir)
    assert pack.levels == [0, 2] and pack.poison_order == [0, 5]
    assert pack.groups(2)["poisoned"] == [0, 5]
    assert set(pack.generations()) == {0, 2}  # clean vs poisoned at the same seeds
    assert pack.training is not None and "probe" in pack.training["2"]
    assert pack.config["ad_scale"]  # AD on the calibrated scale, like every pack
    from core.results.weights import read_level_weights, weights_levels

    assert weights_levels(pack.root) == [(0, 0), (2, 0)]  # each level's fine-tuned adapter
    assert read_level_weights(pack.root, 2, 0).params == "lora"  # Poison setup: rank-1 LoRA
    info = get_run(run.name)
    assert info.kind == "finetune" and info.complete and info.levels == (0, 2)
    assert info.name == "small red circle + large red square" or "+" in info.name
    assert [r.c_p for r in run_summary(run.name)] == [0, 2]


def test_runs_cli_list_and_show(finished_pack, capsys):
    run, _, _ = finished_pack
    assert main(["runs", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    mine = next(r for r in listed if r["id"] == run.name)
    assert {"id", "kind", "levels", "seeds", "complete", "path"} <= set(mine)
    assert mine["levels"] == [0, 2] and mine["complete"] is True and mine["kind"] == "finetune"
    assert main(["runs", "show", run.name, "--json", "--complete"]) == 0
    shown = json.loads(capsys.readouterr().out)
    row = shown["summary"][1]
    for key in (
        "c_p",
        "ad",
        "acc_unpoisoned",
        "acc_poisoned",
        "incoherence",
        "alignment_unpoisoned",
    ):
        assert key in row
    assert row["c_p"] == 2 and row["acc_poisoned"] is not None


def test_runs_errors_are_one_line(finished_pack, tmp_path, capsys):
    run, _, _ = finished_pack
    assert main(["runs", "show", "no-such-run"]) == 2
    err = capsys.readouterr().err
    assert "unknown run 'no-such-run'" in err and err.count("\n") == 1
    # an unfinished pack asked for as complete
    results = run / "pack" / "results.json"
    data = json.loads(results.read_text())
    data["complete"] = False
    data["records"] = data["records"][:1]
    results.write_text(json.dumps(data))
    assert main(["runs", "show", run.name, "--complete"]) == 2
    err = capsys.readouterr().err
    assert "is not complete" in err and "levels done: 0 of 0, 2" in err
    assert [r.id for r in list_runs() if r.id == run.name]  # still listed, as partial
    assert get_run(run.name).state == "partial"


def test_runs_show_refuses_a_pack_of_another_model(finished_pack, tmp_path, capsys):
    from core.models.config import ModelConfig
    from core.models.ldm import MiniLDM
    from core.world import WorldConfig

    run, _, _ = finished_pack
    other = tmp_path / "other"
    MiniLDM.build(WorldConfig(n_concepts=16), ModelConfig.tiny()).save_pretrained(other)
    assert main(["runs", "show", run.name, "--model", str(other)]) == 2
    assert "made with another model" in capsys.readouterr().err


def test_finetune_cli_rejects_bad_concepts(tiny_model_dir, capsys):
    rc = main(["finetune", "--concepts", "purple dog", "--model", str(tiny_model_dir)])
    assert rc == 2 and "valid concepts" in capsys.readouterr().err


def test_finetune_cli_wait_prints_the_run_id_last(tiny_model_dir, capsys):
    """The CLI contract, end to end through a worker process: progress on stderr, id last."""
    world = model_world(tiny_model_dir)
    rc = main(
        [
            "finetune",
            "--concepts", world.names[2], world.names[3],
            "--steps", "2",
            "--model", str(tiny_model_dir),
            "--eval-samples", "1",
            "--probe-every", "1",
            "--wait",
        ]
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert rc == 0, err
    run_id = out.strip().splitlines()[-1]
    assert "completed" in err and "C_P=" in err
    info = get_run(run_id)
    assert info.complete and info.levels == (0, 2) and info.state == "completed"
    assert Path(info.path).name == "pack"
