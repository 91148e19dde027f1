"""The real-model sweep on tiny random SD + CLIP: results contract, resume, stop, pack, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core.sweep.real.config import RealSweepConfig, parse_concepts, parse_ints

CONTRACT = (
    "c_p", "seed", "ad", "ad_feature", "ad_structure", "acc_unpoisoned", "acc_poisoned",
    "attack_success", "alignment_unpoisoned", "incoherence", "acc_related", "acc_unrelated",
    "finetune_seconds",
)  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Two threads on a busy 2-core machine spin-wait; these tiny models need one."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def pets(tmp_path_factory) -> Path:
    """13 random 32 px images: 4 dogs, 4 cats, 4 cars and one caption naming a dog and a cat."""
    d = tmp_path_factory.mktemp("pets")
    rng = np.random.default_rng(0)
    caps = ["a photo of a dog"] * 4 + ["a cat sleeping"] * 4 + ["a red car"] * 4
    for i, cap in enumerate([*caps, "a dog chasing a cat"]):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(d / f"{i:02d}.png")
        (d / f"{i:02d}.txt").write_text(cap)
    return d


def _cfg(sd_dir, clip_dir, data_dir, **kw) -> RealSweepConfig:
    base = dict(
        model=str(sd_dir), clip=str(clip_dir), data=(str(data_dir),),
        concepts=(("dog",), ("cat", "kitten"), ("car",)), levels=(0, 2), seeds=(0,), steps=2, batch=2, lr=1e-3, eval_samples=1, eval_steps=1,
        grid_samples=1,
    )  # fmt: skip
    return RealSweepConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def finished(tiny_sd_dir, tiny_clip_dir, pets, tmp_path_factory):
    from core.sweep.real.run import run_real_sweep

    out = tmp_path_factory.mktemp("sweep") / "out"
    cfg = _cfg(tiny_sd_dir, tiny_clip_dir, pets)
    seen: list[tuple[int, int, str]] = []
    res = run_real_sweep(cfg, out, lambda s, t, m, loss: seen.append((s, t, m)))
    return cfg, out, res, seen


def test_results_contract_and_pack(finished):
    from core.results.pack import load_pack
    from core.results.schema import SUMMARY_METRICS as METRICS

    cfg, out, res, seen = finished
    # 2 levels × (2 fine-tune steps + 1 unit for evaluating and saving the level)
    assert res["complete"] and seen[-1][:2] == (6, 6)
    saved = json.loads((out / "results.json").read_text())
    assert saved["complete"] and [(r["c_p"], r["seed"]) for r in saved["records"]] == [
        (0, 0),
        (2, 0),
    ]
    for r in saved["records"]:
        assert set(CONTRACT) <= set(r)
        for k in ("acc_unpoisoned", "alignment_unpoisoned", "incoherence", "ad"):
            assert -1 <= r[k] <= 1
    clean, poisoned = saved["records"]
    for k in ("acc_poisoned", "attack_success", "acc_related", "acc_unrelated"):
        assert clean[k] is None
    assert poisoned["acc_poisoned"] is not None and poisoned["n_poison"] > 0
    assert poisoned["n_pairs"] == clean["n_pairs"] + poisoned["n_poison"]
    assert set(saved["summary"]) == set(METRICS)
    c = saved["config"]
    assert c["concepts"] == ["dog", "cat", "car"] and c["ad_scale"] == [0.2, 0.45]
    assert c["ad_calibration"] == "clip-vit-b32-laion" and c["relation"][0][1] == 1  # co-mention
    assert (out / "grids" / "cp2_seed0.png").is_file()
    pack = load_pack(out)
    assert pack.levels == [0, 2] and len(pack.poisoned_at(2)) == 2
    arrays = pack.level_arrays(2)
    assert arrays["poisoned"].any() and arrays["generated"].shape[0] == 3
    assert arrays["image_concept"].min() >= 0  # only concept-labelled pairs go in the pack
    assert pack.generations()[2].shape == (3, 1, 32, 32, 3)
    assert pack.embeddings()["text_concept"].shape[0] == 3
    assert len(pack.training["2"]["loss"]) == 2


def test_rerun_skips_finished_records_and_refuses_other_sweeps(finished, monkeypatch):
    from core.sweep.real import run as sweep
    from core.sweep.real.runner import RealSweepRunner

    cfg, out, res, _ = finished
    monkeypatch.setattr(RealSweepRunner, "sd", lambda self: pytest.fail("model loaded"))
    again = sweep.run_real_sweep(cfg, out)
    assert again["records"] == res["records"] and again["complete"]
    with pytest.raises(ValueError, match="different sweep.*nothing was overwritten"):
        sweep.run_real_sweep(_cfg(cfg.model, cfg.clip, cfg.data[0], steps=3), out)


def test_cli_on_finished_sweep_and_errors(finished, tmp_path, capsys):
    from core.commands.real import main

    cfg, out, _, _ = finished
    args = ["sweep", "--model", cfg.model, "--clip", cfg.clip, "--data", cfg.data[0]]
    args += ["--concepts", "dog", "cat,kitten", "car", "--levels", "0", "2", "--steps", "2"]
    args += ["--batch", "2", "--lr", "1e-3", "--eval-samples", "1", "--eval-steps", "1"]
    assert main([*args, "--out", str(out), "--json"]) == 0
    assert "ad" in json.loads(capsys.readouterr().out.splitlines()[-1])["summary"]
    bad = [a if a != cfg.clip else str(tmp_path / "no-clip") for a in args]
    assert main([*bad, "--out", str(tmp_path / "o")]) == 2
    assert "clip" in capsys.readouterr().err
    assert main([*args[:-6], "--levels", "0", "4", "--out", str(tmp_path / "o")]) == 2
    assert "levels: C_P=4 > 3 concepts" in capsys.readouterr().err


def test_bad_inputs_name_the_field(tiny_sd_dir, tiny_clip_dir, pets, tmp_path):
    from core.sweep.real.run import run_real_sweep

    def fails(match, **kw):
        with pytest.raises((ValueError, FileNotFoundError), match=match):
            run_real_sweep(_cfg(tiny_sd_dir, tiny_clip_dir, pets, **kw), tmp_path / "out")

    fails(r"clip .*no CLIP model", clip=str(tmp_path))
    fails(r"model .*no such folder", model=str(tmp_path / "nope"))
    fails(r"levels: C_P=4 > 3 concepts", levels=(0, 4))
    fails(r"'zebra'.*add such images", concepts=(("dog",), ("zebra",)))
    fails(r"keyword 'dog' is in both", concepts=(("dog",), ("puppy", "dog")))
    fails(r"--data .*no such file", data=(str(tmp_path / "none"),))
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="out: cannot write"):
        run_real_sweep(_cfg(tiny_sd_dir, tiny_clip_dir, pets), tmp_path / "file" / "sub")
    with pytest.raises(ValueError, match="mode must be one of"):
        _cfg(tiny_sd_dir, tiny_clip_dir, pets, mode="dora")
    with pytest.raises(ValueError, match="unknown real-sweep settings"):
        RealSweepConfig.from_dict({"model": "m", "clip": "c", "data": ["d"], "stepz": 1})
    with pytest.raises(ValueError, match="clip: missing"):
        RealSweepConfig.from_dict({"model": "m", "data": ["d"]})


def test_parsers_and_auto_concepts(pets, tiny_sd_dir, tiny_clip_dir):
    from core.data.concepts import ConceptIndex

    assert parse_concepts("dog, puppy; cat\ncar\n") == (("dog", "puppy"), ("cat",), ("car",))
    assert parse_ints("0 1, 2", "levels") == (0, 1, 2)
    with pytest.raises(ValueError, match="levels: expected whole numbers"):
        parse_ints("0 x", "levels")
    cfg = _cfg(tiny_sd_dir, tiny_clip_dir, pets, concepts=(), auto_concepts=3)
    index = ConceptIndex.scan(cfg)
    assert index.names == ["cat", "dog", "car"] and index.counts.tolist() == [4, 4, 4]
    assert index.relation[0, 1] and not index.relation[0, 2]  # a caption names cat and dog
    cfg = RealSweepConfig.from_dict(cfg.to_dict())
    assert cfg.concepts == () and cfg.data == (str(pets),)


def test_level_record_by_hand():
    from core.poison.plan import plan_level
    from core.sweep.real.runner import clip_level_record

    relation = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 0]], dtype=bool)
    concept = np.repeat(np.arange(3), 2)
    z = {
        "pred": np.array([2, 2, 1, 0, 2, 2]),  # dog → car twice; cat half right; car right
        "cosine": np.tile(np.array([[0.1, 0.2, 0.3]]), (6, 1)),
        "incoherence": np.array([0.0, 0.0, 1.0, 1.0, 0.5, 0.5]),
    }
    level = plan_level(
        3, 1, 0, relation=relation, related_min=1, order=[0, 1, 2], targets={0: 2, 1: 0, 2: 0}
    )
    r = clip_level_record(level, concept, z)
    assert r["acc_poisoned"] == 0 and r["attack_success"] == 1
    assert r["acc_unpoisoned"] == pytest.approx(0.75)
    assert r["acc_related"] == 0.5 and r["acc_unrelated"] == 1  # cat is related to dog
    assert r["alignment_unpoisoned"] == pytest.approx(0.25) and r["incoherence"] == 0.5


def test_job_stops_mid_level_and_resumes_with_fresh_lora(
    tiny_sd_dir, tiny_clip_dir, pets, tmp_path
):
    import core.commands.real  # noqa: F401  (registers the kinds)
    from core.jobs import kinds
    from core.sweep.real.run import run_job

    assert kinds()["real-sweep"] == "core.sweep.real.run:run_job"

    class Ctx:
        def __init__(self, stop_after: int) -> None:
            self.run_dir, self.device, self.steps, self.stop_after = tmp_path, "cpu", [], stop_after

        def progress(self, step, total, loss=None, message=None, **_):
            if loss is not None:
                self.steps.append(step)

        def should_stop(self):
            return len(self.steps) >= self.stop_after

        def pause_requested(self):
            return False

    config = {
        k: v for k, v in _cfg(tiny_sd_dir, tiny_clip_dir, pets, mode="lora").to_dict().items()
    }
    config.update(levels=[0, 1], device="ignored: the job's device wins")
    r = run_job(config, Ctx(stop_after=1))
    assert not r["complete"] and r["records"] == 0
    assert list((tmp_path / "sweep" / "levels" / "cp0_seed0" / "checkpoints").glob("step-*.pt"))
    ctx = Ctx(stop_after=99)
    r = run_job(config, ctx)
    assert r["complete"] and r["records"] == 2
    # level 0 resumed at its step 2 (unit 2), unit 3 evaluated it, level 1 from a fresh adapter
    assert ctx.steps == [2, 4, 5]
    training = json.loads((tmp_path / "sweep" / "training.json").read_text())
    assert len(training["0"]["loss"]) == 2
    assert not (tmp_path / "sweep" / "levels" / "cp0_seed0" / "checkpoints").exists()


def test_cli_job_validates_then_starts_real_sweep(
    tiny_sd_dir, tiny_clip_dir, pets, monkeypatch, capsys
):
    import core.jobs
    from core.commands.real import main

    seen = {}

    def fake_start(kind, config, **kw):
        seen.update(kind=kind, config=config, **kw)
        return "20260101-000000-real-sweep-abcdef"

    monkeypatch.setattr(core.jobs, "start_job", fake_start)
    args = ["sweep", "--model", str(tiny_sd_dir), "--clip", str(tiny_clip_dir), "--data", str(pets)]
    args += ["--concepts", "dog,puppy", "cat", "--levels", "0", "1", "--mode", "lora", "--job"]
    assert main(args) == 0
    assert capsys.readouterr().out.strip() == "20260101-000000-real-sweep-abcdef"
    cfg = seen["config"]
    assert seen["kind"] == "real-sweep" and seen["device"] == "cpu" and "device" not in cfg
    assert cfg["concepts"] == [["dog", "puppy"], ["cat"]] and cfg["mode"] == "lora"
    assert "out" not in cfg  # the job writes into its run folder, where the app finds packs
    assert RealSweepConfig.from_dict(cfg).levels == (0, 1)
    assert main([*args[:-1], "--concepts", "dog", "unicorn", "--job"]) == 2
    assert "'unicorn'" in capsys.readouterr().err
    assert cfg["concepts"] == seen["config"]["concepts"]  # refused before start_job


def test_sweep_on_sdxl(tiny_sdxl_dir, tiny_clip_dir, pets, tmp_path):
    """The same sweep (2 levels × 1 seed) on a tiny SDXL base: contract, poison, pack."""
    from core.results.pack import load_pack
    from core.sweep.real.run import run_real_sweep

    res = run_real_sweep(_cfg(tiny_sdxl_dir, tiny_clip_dir, pets, eval_steps=2), tmp_path / "xl")
    assert res["complete"] and [(r["c_p"], r["seed"]) for r in res["records"]] == [(0, 0), (2, 0)]
    assert all(set(CONTRACT) <= set(r) for r in res["records"])
    assert res["records"][1]["n_poison"] > 0 and res["config"]["resolution"] == 32
    assert load_pack(tmp_path / "xl").generations()[2].shape == (3, 1, 32, 32, 3)


def test_real_sweep_on_local_ray_equals_local(finished, tmp_path):
    """The same real sweep with each level a Ray task (one thread, as the local run here)."""
    pytest.importorskip("ray")
    from core.sweep.executors import ExecutorOptions
    from core.sweep.real.run import run_real_sweep

    cfg, _, res, _ = finished
    opts = ExecutorOptions(cpus_per_level=1)
    on_ray = run_real_sweep(cfg, tmp_path / "ray", executor="ray", options=opts)
    assert on_ray["complete"]
    for a, b in zip(res["records"], on_ray["records"], strict=True):
        assert set(a) == set(b)
        for k in set(a) - {"finetune_seconds", "wall_seconds"}:
            assert a[k] == (pytest.approx(b[k], abs=1e-6) if a[k] is not None else b[k]), k
    status = json.loads((tmp_path / "ray" / "levels.json").read_text())
    assert [s["state"] for s in status["levels"]] == ["done", "done"]
