"""The lesson's core: pinned prompts chosen once in the shown seed's plan, Play's last level, steps
whose numbers come from the pack, the claims note, the run banner's settings, the handout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.analysis.claims import Claim, Interval, PackClaims
from core.lesson import (
    implosion_note,
    last_open_level,
    lesson_steps,
    pinned_prompts,
    play_levels,
    row_labels,
)
from core.lesson.banner import run_settings
from core.lesson.handout import render_handout, write_handout
from core.results.pack import Pack
from core.world import World, WorldConfig

K = 16
LEVELS = [0, 1, 4, 8, 16]


def _summary(values: dict[str, list[float | None]]) -> dict:
    return {
        m: {
            "c_p": [c for c, v in zip(LEVELS, vs) if v is not None],
            "mean": [v for v in vs if v is not None],
            "ci_low": [v for v in vs if v is not None],
            "ci_high": [v for v in vs if v is not None],
        }
        for m, vs in values.items()
    }


def _pack(tmp_path: Path, seeds=(3, 0), acc_unpoisoned=(1.0, 0.97, 0.9, 0.7, None)) -> Pack:
    """A pack whose first seed (3) poisons in another order than seed 0, with per-concept
    accuracies that differ between the seeds."""
    rng = np.random.default_rng(0)
    orders = {s: [int(i) for i in rng.permutation(K)] for s in seeds}
    records = []
    for s in seeds:
        for c in LEVELS:
            acc = np.ones(K)
            if c:
                acc[orders[s][:c]] = 0.0
                # seed 3: the highest ids fall most; seed 0: the lowest (opposite choices)
                fall = np.arange(K) / K if s == 3 else 1 - np.arange(K) / K
                acc = np.where(acc > 0, 1 - 0.5 * fall * min(c, 8) / 8, acc)
            records.append({"c_p": c, "seed": s, "per_concept_acc": acc.tolist()})
    config = {
        "preset": "cpu-full",
        "concepts": World(WorldConfig(n_concepts=K)).names,
        "levels": LEVELS,
        "seeds": list(seeds),
        "poison_order": orders[seeds[0]],
        "plans": {str(s): {"order": orders[s]} for s in seeds},
        "targets": {},
        "finetune": {"steps": 60, "params": "lora", "lora_rank": 1, "lr": 3e-3},
    }
    summary = _summary(
        {
            "ad": [0.3, 0.4, 0.5, 0.6, 0.7],
            "acc_unpoisoned": list(acc_unpoisoned),
            "acc_poisoned": [None, 0.2, 0.3, 0.3, 0.3],
            "attack_success": [None, 0.7, 0.2, 0.1, 0.1],
            "acc_related": [None, 0.95, 0.6, 0.7, None],
            "acc_unrelated": [None, 0.99, 0.98, 0.9, None],
            "incoherence": [0.01, 0.02, 0.03, 0.05, 0.06],
            "alignment_unpoisoned": [0.9, 0.89, 0.8, 0.7, None],
        }
    )
    return Pack(tmp_path, {"config": config, "records": records, "summary": summary})


def test_pinned_prompts_follow_the_shown_seeds_plan(tmp_path):
    pack = _pack(tmp_path)
    pinned = pinned_prompts(pack)
    order3 = pack.config["plans"]["3"]["order"]
    assert pinned.seed == 3
    assert pinned.last_open == 8  # C_P 16 poisons all 16 concepts
    assert pinned.role[0] == "poisoned" and pinned.ids[0] == order3[0]
    # the other rows stay unpoisoned in seed 3 at every level Play shows
    assert not set(pinned.ids[1:]) & set(order3[:8])
    # related = shares two words with the first poisoned concept, in seed 3's plan
    rel = pack.world.relation  # ≥ 2 shared words = related
    for i, role in zip(pinned.ids[1:], pinned.role[1:]):
        assert (rel[i, order3[0]] >= 2) == (role == "related")
    # within a group, the seed shown's own drop orders the rows (seed 3: higher ids fall more)
    for role in ("related", "unrelated"):
        ids = [i for i, r in zip(pinned.ids, pinned.role) if r == role]
        assert ids == sorted(ids, reverse=True)


def test_pinned_rows_are_the_same_at_every_level_only_their_marks_change(tmp_path):
    pack = _pack(tmp_path)
    pinned = pinned_prompts(pack)
    names = [row_labels(pack, pinned, c) for c in LEVELS]
    assert all(len(n) == len(pinned.ids) for n in names)
    for labels in names:
        assert [lab.lstrip("×≈ ") for lab in labels] == list(pinned.names)
    assert names[1][0].startswith("× ")  # the first poisoned concept, poisoned from C_P 1
    assert all(lab.startswith("× ") for lab in names[-1])  # C_P 16: everything poisoned


def test_play_stops_at_the_last_level_with_unpoisoned_concepts(tmp_path):
    pack = _pack(tmp_path)
    assert last_open_level(pack) == 8
    assert play_levels(pack, LEVELS) == [0, 1, 4, 8]
    assert play_levels(pack, [0, 16]) == [0]
    assert play_levels(pack, []) == []


def test_lesson_numbers_are_read_from_the_pack(tmp_path):
    steps = {s.key: s for s in lesson_steps(_pack(tmp_path))}
    assert list(steps) == ["clean", "one", "related", "implosion", "why", "defend"]
    assert steps["one"].c_p == 1 and steps["implosion"].c_p == 8
    assert steps["related"].c_p == 4  # related 0.60 vs unrelated 0.98: the widest gap ≤ 8
    assert "70%" in steps["implosion"].notice  # acc_unpoisoned at C_P 8
    other = {s.key: s for s in lesson_steps(_pack(tmp_path, acc_unpoisoned=(1, 1, 1, 0.42, None)))}
    assert "42%" in other["implosion"].notice and "70%" not in other["implosion"].notice
    assert all(s.question.endswith("?") for s in steps.values())
    assert "implosion defend" in steps["defend"].notice  # no defense.json in this pack


def _claims(holds: bool) -> PackClaims:
    iv = Interval(0.51, 0.44, 0.58, 5)
    claim = Claim("implosion_ratio", "Implosion", 0.51, iv, "≤ 50% of clean", holds, "C_P 24")
    return PackClaims((claim,), ())


def test_implosion_note_reconciles_a_missed_claim():
    note = implosion_note(_claims(False), steps=60)
    assert note is not None
    assert "51% [44%, 58%]" in note and "≤ 50% of clean" in note and "60-step" in note
    assert implosion_note(_claims(True)) is None


def test_run_settings_name_the_run_and_flag_smoke_tests():
    s = run_settings(
        {"preset": "cpu-full", "finetune": {"steps": 60}, "levels": [0, 8], "seeds": [0]}
    )
    assert "60 fine-tune steps" in s.line and s.smoke is None
    smoke = run_settings({"preset": "ci-smoke", "finetune": {"steps": 2}, "eval_samples": 1})
    assert smoke.smoke is not None and "2 fine-tune steps" in smoke.smoke


def test_handout_holds_three_levels_labelled_rows_and_every_question(tmp_path):
    pack = _pack(tmp_path)
    gens = {c: np.full((K, 2, 8, 8, 3), c * 10, dtype=np.uint8) for c in LEVELS}
    handout = render_handout(pack, gens)
    assert handout.levels == (1, 4, 8)
    assert handout.html.count('<table class="strip">') == 3
    for c in handout.levels:
        assert f"C_P {c}" in handout.html
    for name in pinned_prompts(pack).names:
        assert name in handout.html
    assert len(handout.questions) == 6
    for q in handout.questions:
        assert q.replace("'", "&#x27;") in handout.html
    assert "@page" in handout.html and "http" not in handout.html.split("<body>")[1]
    with pytest.raises(ValueError, match="C_P 0"):
        render_handout(pack, {c: g for c, g in gens.items() if c})


def test_write_handout_checks_its_outputs_before_any_work(tmp_path):
    pack = _pack(tmp_path / "pack")
    (tmp_path / "pack").mkdir()
    taken = tmp_path / "taken.html"
    taken.write_text("keep me")
    with pytest.raises(ValueError, match="already exists"):
        write_handout(pack, taken, with_curve=False)
    assert taken.read_text() == "keep me"
    with pytest.raises(ValueError, match=r"\.html"):
        write_handout(pack, tmp_path / "handout.txt", with_curve=False)
    with pytest.raises(ValueError, match=r"\.pdf"):
        write_handout(pack, tmp_path / "h.html", tmp_path / "h.png", with_curve=False)


def test_handout_cli_writes_the_demo_handout_and_keeps_existing_files(tmp_path, capsys):
    from core.cli import main
    from core.results.pack import demo_dir

    if not (demo_dir() / "results.json").is_file():
        pytest.skip("assets/demo is missing")
    out = tmp_path / "handout.html"
    assert main(["handout", "--out", str(out), "--no-curve"]) == 0
    text = out.read_text()
    assert text.count('<table class="strip">') == 3 and "Questions" in text
    assert "handout:" in capsys.readouterr().out
    assert main(["handout", "--out", str(out), "--no-curve"]) == 2  # never overwritten
    assert "already exists" in capsys.readouterr().err
    assert out.read_text() == text


def test_pinned_images_clean_beside_poisoned_and_clean_alone_at_zero(tmp_path):
    from core.lesson import pinned_images

    pack = _pack(tmp_path)
    pinned = pinned_prompts(pack)
    gens = {c: np.full((K, 4, 8, 8, 3), c, dtype=np.uint8) for c in LEVELS}
    both = pinned_images(gens, pinned, 8, samples=2)
    assert both.shape[:2] == (len(pinned.ids), 4)
    assert (both[:, :2] == 0).all() and (both[:, 2:] == 8).all()  # clean | C_P 8, same seeds
    alone = pinned_images(gens, pinned, 0, samples=2)
    assert alone.shape[:2] == (len(pinned.ids), 4) and (alone == 0).all()
    with pytest.raises(KeyError, match="C_P 2"):
        pinned_images(gens, pinned, 2)
