"""A planned attack: validation, and the check run trains exactly the planned level."""

from __future__ import annotations

import pytest

from core.audit.plan import PlannedAttack, check_run_job, plan_order, sweep_config_of
from core.poison.plan import plan_level
from core.results.pack import demo_dir, load_pack


def test_attack_validation():
    with pytest.raises(ValueError, match="--c-p"):
        PlannedAttack(-1, 0)
    with pytest.raises(ValueError, match="--method"):
        PlannedAttack(2, 0, "pixel-swap")
    with pytest.raises(ValueError, match="exceeds K=8"):
        PlannedAttack(9, 0).check(8)
    with pytest.raises(ValueError, match="chosen concepts"):
        PlannedAttack(3, 0, concepts=(1, 2))


def test_plan_order_is_the_sweeps_level():
    lv = plan_level(32, 8, 21)
    ids, targets = plan_order(PlannedAttack(8, 21), 32)
    assert tuple(ids) == lv.poisoned and targets == lv.targets


def test_check_run_is_the_calibrations_sweep_on_the_planned_concepts():
    demo = load_pack(demo_dir())
    job = check_run_job(PlannedAttack(4, 21), demo.config)
    sc = job
    ids, targets = plan_order(PlannedAttack(4, 21), 32)
    assert list(sc["levels"]) == [0, 4] and list(sc["seeds"]) == [21]
    assert list(sc["concepts"]) == ids
    assert {a: b for a, b in sc["targets"]} == targets
    base = sweep_config_of(demo.config)
    assert sc["finetune"] == base.finetune.to_dict() | {"seed": sc["finetune"]["seed"]}
    for k in ("poison_ratio", "poison_mode", "n_clean_per_concept", "eval_samples"):
        assert sc[k] == getattr(base, k)
    with pytest.raises(ValueError, match="dirty-label"):
        check_run_job(PlannedAttack(4, 21, "nightshade"), demo.config)
    with pytest.raises(ValueError, match="C_P = 0"):
        check_run_job(PlannedAttack(0, 21), demo.config)


def test_manifest_uploaded_alone_reads_relative_to_a_root(tmp_path):
    import json

    from PIL import Image

    from core.audit.pairs import manifest_records

    images = tmp_path / "images"
    images.mkdir()
    for n in ("a.png", "b.png"):
        Image.new("RGB", (4, 4)).save(images / n)
    elsewhere = tmp_path / "upload"
    elsewhere.mkdir()
    m = elsewhere / "m.jsonl"
    m.write_text("".join(json.dumps({"image": n, "caption": n}) + "\n" for n in ("a.png", "b.png")))
    paths, caps = manifest_records(m, images)
    assert [p.name for p in paths] == ["a.png", "b.png"] and caps == ["a.png", "b.png"]
    m.write_text(json.dumps({"image": "../upload/m.jsonl", "caption": "x"}) + "\n")
    with pytest.raises(ValueError, match="outside its folder"):
        manifest_records(m, images)


def test_real_clip_folder_has_no_calibration_without_a_real_sweep(tmp_path):
    from PIL import Image

    from core.audit.request import AuditRequest, prepare

    data = tmp_path / "data"
    data.mkdir()
    for i in range(2):
        Image.new("RGB", (4, 4)).save(data / f"d{i}.png")
        (data / f"d{i}.txt").write_text("a dog")
    clip = tmp_path / "clip"
    clip.mkdir()
    (clip / "config.json").write_text("{}")
    prep = prepare(AuditRequest("dataset", path=str(data), clip=str(clip)))
    assert prep.calibration is None
    assert "no calibration exists for CLIP" in prep.no_calibration
    assert prep.records is not None and len(prep.records[0]) == 2
