"""One place names every run kind (core/jobs/labels.py): what the picker, Compare and Jobs say."""

from __future__ import annotations

from core.jobs.labels import pack_name, run_label


def test_every_kind_says_what_it_is():
    assert run_label("demo") == "Demo pack"
    assert run_label("finetune", {"name": "large red star + small blue circle"}) == (
        "Fine-tune: large red star + small blue circle"
    )
    assert run_label("sweep", {"preset": "cpu-full"}) == "cpu-full sweep"
    assert run_label("sweep", None, {"preset": "cpu-quick"}) == "cpu-quick sweep"
    job = {"pack": "/repo/assets/demo", "detector": "misalignment", "fpr": 0.05}
    assert run_label("defended-sweep", job) == "Defended sweep of demo (misalignment, 5 % FPR)"
    # a defended sweep's pack (no job): its recorded defense names the attacked pack
    pack = {"preset": "cpu-full", "defense": {"detector": "knn", "fpr": 0.01,
                                              "attacked": "/runs/20260101-x/sweep"}}  # fmt: skip
    assert run_label("sweep", None, pack) == "Defended sweep of 20260101-x (knn, 1 % FPR)"
    assert run_label("real-sweep", {"model": "/models/sd15"}) == "Real sweep: sd15"
    assert run_label("real-finetune", {"model": "/models/sd15/"}) == "Real fine-tune: sd15"
    budget = {
        "concept": "large red star",
        "target": "small blue circle",
        "counts": [1],
        "methods": [],
    }
    assert run_label("budget", budget) == "Budget sweep: large red star → small blue circle"
    assert run_label(None, None, None) == "run"


def test_pack_names():
    assert pack_name("/x/assets/demo") == "demo"
    assert pack_name("/runs/abc/pack") == "abc" and pack_name("/runs/my-sweep") == "my-sweep"


def test_labels_two_runs_share_end_with_their_own_id():
    from core.jobs.labels import distinct

    labels = {
        "demo": "Demo pack · 2026-12-07 23:17",
        "20260101-000000-sweep-aaaaaa": "cpu-quick sweep · 2026-01-01 00:00",
        "20260101-000001-sweep-bbbbbb": "cpu-quick sweep · 2026-01-01 00:00",
        "x-1": "run",
        "y-1": "run",
    }
    out = distinct(labels)
    assert out["demo"] == labels["demo"]  # a label of its own is left alone
    assert out["20260101-000000-sweep-aaaaaa"] == "cpu-quick sweep · 2026-01-01 00:00 · aaaaaa"
    assert out["x-1"] == "run · x-1"  # the suffixes repeat too: the whole id
    assert len(set(out.values())) == len(out)
