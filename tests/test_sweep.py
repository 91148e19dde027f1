"""Sweep and single-run jobs on a tiny model: contract, resume, errors."""

import json
from dataclasses import replace

import numpy as np
import pytest

from core.cli import main
from core.poison.plan import poisoning_plan
from core.sweep.mini.run import METRICS, SweepConfig, preset, run_sweep, summarize


def smoke(model_dir, **kw):
    return preset("ci-smoke", model=str(model_dir), **kw)


def test_results_contract(tiny_model_dir, tmp_path):
    res = run_sweep(smoke(tiny_model_dir), tmp_path / "s")
    assert res["complete"]
    saved = json.loads((tmp_path / "s" / "results.json").read_text())
    assert set(saved) >= {"config", "records", "summary"}
    assert len(saved["records"]) == 2
    for r in saved["records"]:
        assert set(METRICS) | {"c_p", "seed"} <= set(r)
    r0 = next(r for r in saved["records"] if r["c_p"] == 0)
    assert r0["acc_poisoned"] is None and r0["attack_success"] is None
    r2 = next(r for r in saved["records"] if r["c_p"] == 2)
    assert r2["acc_poisoned"] is not None and r2["n_pairs"] > r0["n_pairs"]
    assert r2["ad"] >= r0["ad"] - 1e-9 or True  # tiny random model: AD values only need to exist
    assert saved["summary"]["ad"]["c_p"] == [0, 2]
    cfg = saved["config"]
    assert len(cfg["concepts"]) == 8 and cfg["ad_scale"] and len(cfg["poison_order"]) == 8
    with np.load(tmp_path / "s" / "embeddings.npz", allow_pickle=False) as z:
        assert z["image_2"].shape[0] == z["poisoned_2"].shape[0] and z["poisoned_2"].any()
        assert z["generated_0"].shape[0] == 8
    with np.load(tmp_path / "s" / "generations.npz", allow_pickle=False) as z:
        assert z["images_0"].shape[:2] == (8, 1) and z["images_0"].dtype == np.uint8
    assert (tmp_path / "s" / "grids" / "cp2_seed0.png").is_file()
    # training probes: AD of the model's own generations at steps 0, 1, 2 (ci-smoke probes each)
    training = json.loads((tmp_path / "s" / "training.json").read_text())
    probe = training["2"]["probe"]
    assert (
        probe["step"] == [0, 1, 2] and len(probe["ad"]) == 3 and len(probe["acc_unpoisoned"]) == 3
    )
    assert all(0 <= a <= 1 for a in probe["ad"])
    assert all(r["ad_generated"] is not None for r in saved["records"])
    assert all(r["finetune_dtype"] in ("fp32", "bf16") for r in saved["records"])  # what ran


def test_sweep_pack_copies_a_loadable_pack(tiny_model_dir, tmp_path, capsys):
    from core.results.pack import load_pack

    run_sweep(smoke(tiny_model_dir), tmp_path / "s")
    assert main(["sweep-pack", str(tmp_path / "s"), "--out", str(tmp_path / "pack")]) == 0
    pack = load_pack(tmp_path / "pack")
    assert pack.levels == [0, 2] and (tmp_path / "pack" / "grids" / "cp2_seed0.png").is_file()
    assert not (tmp_path / "pack" / "levels").exists()
    # an unfinished sweep is refused, and the existing pack is left as it was
    run_sweep(smoke(tiny_model_dir), tmp_path / "u", should_stop=lambda: True)
    before = (tmp_path / "pack" / "results.json").read_bytes()
    argv = ["sweep-pack", str(tmp_path / "u"), "--out", str(tmp_path / "pack")]
    assert main(argv) == 2  # a pack is there: refused without --force
    assert "--force" in capsys.readouterr().err
    assert main([*argv, "--force"]) == 2  # even with --force, a bad sweep replaces nothing
    assert "sweep_dir" in capsys.readouterr().err
    assert (tmp_path / "pack" / "results.json").read_bytes() == before


def test_resume_skips_finished_levels(tiny_model_dir, tmp_path):
    out = tmp_path / "s"
    run_sweep(smoke(tiny_model_dir), out, should_stop=lambda: (out / "results.json").exists())
    partial = json.loads((out / "results.json").read_text())
    assert len(partial["records"]) == 1 and not partial["complete"]
    seen = []
    res = run_sweep(smoke(tiny_model_dir), out, on_progress=lambda i, t, m: seen.append(m))
    assert len(res["records"]) == 2 and res["complete"]
    assert not any("C_P=0" in m for m in seen)  # level 0 was not redone


def test_different_sweep_in_same_folder_refused(tiny_model_dir, tmp_path):
    run_sweep(smoke(tiny_model_dir), tmp_path / "s")
    before = (tmp_path / "s" / "results.json").read_text()
    with pytest.raises(ValueError, match="different sweep"):
        run_sweep(smoke(tiny_model_dir, seeds=(5,)), tmp_path / "s")
    assert (tmp_path / "s" / "results.json").read_text() == before


def test_levels_beyond_k(tiny_model_dir, tmp_path):
    with pytest.raises(ValueError, match="exceed K=8"):
        run_sweep(smoke(tiny_model_dir, levels=(0, 9)), tmp_path / "s")


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"levels": ()}, "levels"),
        ({"levels": (4, 2)}, "ascending"),
        ({"seeds": ()}, "seeds"),
        ({"poison_ratio": 0}, "poison_ratio"),
        ({"poison_mode": "swap"}, "poison_mode must be one of add, replace"),
        ({"seeds": (-1,)}, "seeds must be ≥ 0"),
    ],
)
def test_config_validation(kw, match):
    with pytest.raises(ValueError, match=match):
        SweepConfig(**kw)


def test_replace_mode_drops_the_clean_pairs_of_poisoned_concepts(tiny_model_dir, tmp_path):
    from core.sweep.mini.runner import SweepRunner

    for d in ("a", "r"):
        (tmp_path / d / "levels").mkdir(parents=True)
    add = SweepRunner(smoke(tiny_model_dir), tmp_path / "a")
    rep = SweepRunner(smoke(tiny_model_dir, poison_mode="replace"), tmp_path / "r")
    pa, pr = add.pairs(2, 0), rep.pairs(2, 0)
    order, _ = rep.plans[0]
    hit = np.isin(pr["caption_concept"], order[:2])
    assert pr["poisoned"][hit].all()  # every pair captioned with a poisoned concept is poison
    assert pr["poisoned"].sum() == pa["poisoned"].sum()  # the same poison pairs
    clean_a = np.isin(pa["caption_concept"], order[:2]) & ~pa["poisoned"]
    assert len(pr["captions"]) == len(pa["captions"]) - clean_a.sum() and clean_a.any()


def test_unknown_preset():
    with pytest.raises(ValueError, match="ci-smoke"):
        preset("fast")


def test_plan_is_nested_and_targets_distinct():
    order, targets = poisoning_plan(32, seed=3)
    assert sorted(order) == list(range(32))
    assert all(a != b for a, b in targets.items())
    assert poisoning_plan(32, 3) == (order, targets)


def test_summary_ci():
    recs = [{"c_p": 0, "seed": s, **{m: 1.0 + s for m in METRICS}} for s in range(3)]
    s = summarize(recs)
    assert s["ad"]["mean"] == [2.0] and s["ad"]["ci_low"][0] < 2.0 < s["ad"]["ci_high"][0]


def test_cli_sweep(tiny_model_dir, tmp_path, capsys):
    assert (
        main(
            [
                "sweep",
                "--preset",
                "ci-smoke",
                "--model",
                str(tiny_model_dir),
                "--out",
                str(tmp_path / "c"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "C_P" in out and "results.json" in out
    assert main(["sweep", "--preset", "nope", "--out", str(tmp_path / "d")]) == 2


def test_sweep_as_background_job(tiny_model_dir, tmp_path):
    from core.jobs import read_run, start_job, wait_job

    run_id = start_job(
        "sweep", {"preset": "ci-smoke", "model": str(tiny_model_dir), "out": str(tmp_path / "j")}
    )
    st = wait_job(run_id, timeout=120)
    assert st["state"] == "completed", read_run(run_id)
    assert json.loads((tmp_path / "j" / "results.json").read_text())["complete"]


def test_budget_sweep_tiny(tiny_model_dir, tmp_path, capsys):
    rc = main(
        [
            "sweep-budget",
            "--model",
            str(tiny_model_dir),
            "--concept",
            "small red circle",
            "--target",
            "large green square",
            "--counts",
            "1",
            "2",
            "--steps",
            "1",
            "--out",
            str(tmp_path / "b"),
        ]
    )
    assert rc == 0
    res = json.loads((tmp_path / "b" / "budget.json").read_text())
    assert {(r["method"], r["count"]) for r in res["records"]} == {
        ("nightshade", 1),
        ("nightshade", 2),
        ("dirty-label", 1),
        ("dirty-label", 2),
    }
    ns = [r for r in res["records"] if r["method"] == "nightshade"]
    assert all(r["poison_report"]["linf"] <= 16 / 255 + 1e-6 for r in ns)
    assert "samples_needed" in res["summary"]
    assert (
        main(
            [
                "sweep-budget",
                "--model",
                str(tiny_model_dir),
                "--concept",
                "small red circle",
                "--target",
                "small red circle",
                "--out",
                str(tmp_path / "c"),
            ]
        )
        == 2
    )


def test_budget_sweep_generated_anchors_and_epsilon(tiny_model_dir, tmp_path):
    out = tmp_path / "g"
    args = ["sweep-budget", "--model", str(tiny_model_dir), "--concept", "small red circle"]
    args += ["--target", "large green square", "--counts", "1", "--steps", "1"]
    args += ["--methods", "nightshade", "--anchors", "generated", "--epsilon", "0.1"]
    args += ["--pgd-steps", "2", "--eval-samples", "2", "--out", str(out)]
    assert main(args) == 0
    res = json.loads((out / "budget.json").read_text())
    assert res["config"]["anchors"] == "generated" and res["config"]["epsilon"] == 0.1
    assert res["records"][0]["poison_report"]["linf"] <= 0.1 + 1e-6


def test_parallel_workers_match_the_serial_sweep(tiny_model_dir, tmp_path):
    cfg = smoke(tiny_model_dir, seeds=(0, 1))
    serial = run_sweep(cfg, tmp_path / "serial")
    par = run_sweep(cfg, tmp_path / "par", workers=2)
    assert par["complete"] and len(par["records"]) == 4
    key = lambda r: (r["seed"], r["c_p"])  # noqa: E731
    for a, b in zip(sorted(serial["records"], key=key), sorted(par["records"], key=key)):
        assert key(a) == key(b)
        assert a["ad"] == pytest.approx(b["ad"], abs=1e-9)  # same pairs, same calibration
    assert (tmp_path / "par" / "embeddings.npz").is_file()
    assert len(list((tmp_path / "par" / "levels").glob("cp*.npz"))) == 4
    status = json.loads((tmp_path / "par" / "levels.json").read_text())
    assert [s["state"] for s in status["levels"]] == ["done"] * 4
    saved = json.loads((tmp_path / "par" / "results.json").read_text())
    assert saved["summary"]["ad"]["c_p"] == [0, 2] and saved["complete"]


def test_parallel_stop_then_resume(tiny_model_dir, tmp_path):
    cfg = smoke(tiny_model_dir, seeds=(0, 1))
    out = tmp_path / "p"
    # stop at once: no level is handed to the workers
    res = run_sweep(cfg, out, workers=2, should_stop=lambda: True)
    assert not res["complete"] and len(res["records"]) < 4
    res = run_sweep(cfg, out, workers=2)
    assert res["complete"] and len(res["records"]) == 4
    assert len({(r["c_p"], r["seed"]) for r in res["records"]}) == 4


def test_workers_must_be_positive(tiny_model_dir, tmp_path):
    with pytest.raises(ValueError, match="workers"):
        run_sweep(smoke(tiny_model_dir), tmp_path / "w", workers=0)


def test_cpu_presets_attack_runs_end_to_end_with_lora(tiny_model_dir, tmp_path):
    """The CPU presets' attack and fine-tune (replace poisons, rank-1 LoRA) through the driver:
    every level completes and saves, and the Poison-setup defaults are the same configuration."""
    from core.sweep.mini.config import CPU_FINETUNE, CPU_POISON_RATIO, PRESETS
    from core.sweep.mini.finetune import FINETUNE_DEFAULTS

    for cfg in (PRESETS["cpu-quick"], PRESETS["cpu-full"], FINETUNE_DEFAULTS):
        assert cfg.poison_mode == "replace" and cfg.poison_ratio == CPU_POISON_RATIO
        assert cfg.finetune == CPU_FINETUNE and CPU_FINETUNE.params == "lora"
    base = smoke(tiny_model_dir)
    cfg = replace(
        base,
        poison_mode="replace",
        poison_ratio=CPU_POISON_RATIO,
        finetune=replace(base.finetune, params="lora", lora_rank=1, lr=CPU_FINETUNE.lr),
    )
    res = run_sweep(cfg, tmp_path / "s")
    assert res["complete"] and len(res["records"]) == 2
    r2 = next(r for r in res["records"] if r["c_p"] == 2)
    assert r2["acc_poisoned"] is not None
