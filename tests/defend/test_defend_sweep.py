"""Defended sweep contract on ci-smoke, and `implosion defend` end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.cli import main
from core.defend.config import DefenseConfig
from core.defend.report import DEFENSE
from core.results.pack import load_pack


@pytest.fixture(scope="module")
def attacked(tiny_model_dir, tmp_path_factory):
    """A finished ci-smoke sweep (levels 0, 2) of the tiny model: the attacked pack."""
    from core.sweep.mini.run import preset, run_sweep

    out = tmp_path_factory.mktemp("attacked") / "sweep"
    res = run_sweep(preset("ci-smoke", model=str(tiny_model_dir)), out)
    assert res["complete"]
    return out


def test_defended_sweep_contract(attacked, tmp_path, capsys):
    out = tmp_path / "defended"
    rc = main(
        ["defend", "--pack", str(attacked), "--sweep", "--fpr", "0.25", "--out", str(out), "--json"]
    )
    assert rc == 0
    cmp = json.loads(capsys.readouterr().out)
    att, dfd = load_pack(attacked), load_pack(out)
    # the defended run is a pack like any other, of the same sweep with the defense recorded
    assert dfd.config["defense"]["detector"] == "misalignment"
    assert dfd.config["defense"]["fpr"] == 0.25
    assert dfd.config["levels"] == att.config["levels"] and dfd.levels == att.levels
    assert dfd.concepts == att.concepts
    for r in dfd.records:
        assert {"defense_removed", "defense_recall", "defense_fpr_measured"} <= set(r)
        assert r["n_pairs"] == r["n_pairs_before"] - r["defense_removed"]
        assert r["defense_fpr_measured"] <= 0.25
    by_cp = {r["c_p"]: r for r in dfd.records}
    assert by_cp[0]["defense_recall"] is None  # nothing to catch at C_P = 0
    # the kept pairs are what the level file and the pack's embeddings hold
    lv = dfd.level_arrays(2)
    assert lv["poisoned"].size == by_cp[2]["n_pairs"]
    n_poison = 2 * 4  # C_P = 2 concepts × poison_ratio 1 × 4 clean pairs each (ci-smoke)
    assert lv["poisoned"].sum() == n_poison - by_cp[2]["defense_removed_poisoned"]
    # comparison printed by the CLI: one row per C_P both ran
    assert [r["c_p"] for r in cmp["rows"]] == att.levels
    assert cmp["rows"][1]["ad_attacked"] == pytest.approx(att.records[1]["ad"])
    # a finished defended sweep in the same folder is reused, never overwritten
    assert (
        main(["defend", "--pack", str(attacked), "--sweep", "--fpr", "0.25", "--out", str(out)])
        == 0
    )
    assert load_pack(out).records == dfd.records


def test_defended_sweep_refuses_bad_requests(attacked, tmp_path, capsys):
    assert main(["defend", "--pack", str(attacked), "--sweep", "--levels", "7"]) == 2
    assert "levels: [7] are not in" in capsys.readouterr().err
    assert main(["defend", "--pack", str(attacked), "--sweep", "--fpr", "2"]) == 2
    assert "defense.fpr" in capsys.readouterr().err
    from core.sweep.mini.defended import defended_config

    with pytest.raises(ValueError, match="defense: unknown keys"):
        DefenseConfig.coerce({"detector": "misalignment", "rate": 0.1})
    assert defended_config(attacked, DefenseConfig(), seeds=[0]).defense.attacked


def test_defend_report_cli_stores_once(attacked, capsys):
    args = ["defend", "--pack", str(attacked), "--json"]
    args += ["--detectors", "misalignment", "knn_disagreement"]
    rc = main(args)
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["computed"] is True and (attacked / DEFENSE).is_file()
    rows = out["rows"]
    assert [(r["detector"], r["c_p"]) for r in rows] == [
        ("misalignment", 2),
        ("knn_disagreement", 2),
    ]
    for r in rows:
        assert 0.0 <= r["auc"] <= 1.0 and 0.0 <= r["recall_at_5pct_fpr"] <= 1.0
    stored = json.loads((attacked / DEFENSE).read_text())
    assert stored["rows"][0]["fpr"][0] == 0.0 and stored["rows"][0]["tpr"][-1] == 1.0
    # same settings: read back, not recomputed; settings the cache covers: answered from it;
    # a file the user named with --out is never overwritten
    main(args)
    assert json.loads(capsys.readouterr().out)["computed"] is False
    one = ["defend", "--pack", str(attacked), "--detectors", "misalignment", "--json"]
    assert main(one) == 0
    assert json.loads(capsys.readouterr().out)["computed"] is False
    assert main([*one[:-1], "--out", str(attacked / DEFENSE), "--levels", "2"]) == 0
    mine = attacked.parent / "mine.json"
    mine.write_text(json.dumps({"settings": {"levels": [99]}, "rows": [], "metadata": {}}))
    assert main([*one, "--out", str(mine)]) == 2
    assert "exists (nothing was overwritten)" in capsys.readouterr().err


def test_nightshade_pairs_replace_the_dirty_label_ones(attacked, tmp_path):
    import shutil

    from core.defend.pairs import build_nightshade_cache, level_pairs

    pack_dir = tmp_path / "pack"
    shutil.copytree(attacked, pack_dir)
    pack = load_pack(pack_dir)
    path = build_nightshade_cache(pack, epsilon=8 / 255, steps=2)
    assert path.is_file() and build_nightshade_cache(pack, epsilon=8 / 255, steps=2) == path
    dl = level_pairs(pack, 2, "dirty-label")
    ns = level_pairs(pack, 2, "nightshade", epsilon=8 / 255, steps=2)
    assert ns.poisoned.sum() == dl.poisoned.sum() and len(ns) == len(dl)
    # Nightshade-style pairs: the caption's own concept, by construction
    np.testing.assert_array_equal(ns.caption_concept[ns.poisoned], ns.image_concept[ns.poisoned])
    with pytest.raises(FileNotFoundError, match="build it first"):
        level_pairs(pack, 2, "nightshade", epsilon=4 / 255, steps=2)
    # the build also scored the poisons and a clean reference set with the pack's VAE
    from core.defend.pairs import reconstruction_level

    for method in ("nightshade", "dirty-label"):
        s, truth = reconstruction_level(pack, 2, method, epsilon=8 / 255, steps=2)
        assert np.isfinite(s).all() and 0 < truth.sum() < truth.size
    s, truth = reconstruction_level(pack, 2, "nightshade", epsilon=8 / 255, steps=2)
    assert truth.sum() == ns.poisoned.sum()  # the same poisons the embedding detectors see


def test_replace_pack_level_without_clean_pairs_is_not_scored(tiny_model_dir, tmp_path, capsys):
    """With replace poisons, C_P = K leaves no clean pair: no ROC there, the others are scored,
    and asking for it names the level and the ones that can be scored."""
    from core.defend.report import scorable_levels
    from core.sweep.mini.run import preset, run_sweep

    out = tmp_path / "sweep"
    cfg = preset("ci-smoke", model=str(tiny_model_dir), poison_mode="replace", levels=(0, 1, 8))
    assert run_sweep(cfg, out)["complete"]
    assert scorable_levels(load_pack(out)) == [1]
    rc = main(["defend", "--pack", str(out), "--json", "--detectors", "misalignment"])
    assert rc == 0
    assert [r["c_p"] for r in json.loads(capsys.readouterr().out)["rows"]] == [1]
    rc = main(["defend", "--pack", str(out), "--levels", "8", "--out", str(tmp_path / "d.json")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "C_P [8] have no clean pairs" in err and "choose from [1]" in err
