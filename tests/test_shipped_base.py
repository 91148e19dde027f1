"""The shipped clean base in assets/base: loads, stays within size limits, and is accurate."""

import json

import pytest

from core.cli import main
from core.io import REPO_ROOT
from core.models.ldm import MiniLDM

BASE = REPO_ROOT / "assets" / "base"


def test_shipped_base_loads_and_fits_size_limits():
    files = [p for p in BASE.rglob("*") if p.is_file()]
    assert max(p.stat().st_size for p in files) <= 16 * 2**20
    assert sum(p.stat().st_size for p in files) <= 40 * 2**20
    ldm = MiniLDM.from_pretrained(BASE)
    assert ldm.world.n_concepts >= 32
    assert not list(BASE.rglob("*.bin")) and not list(BASE.rglob("*.pt"))


def test_shipped_base_generates_the_prompted_concept():
    from core.evaluate.judged import evaluate_model

    ldm = MiniLDM.from_pretrained(BASE)
    names = ["large red star", "small blue circle"]
    r = evaluate_model(
        ldm, samples_per_concept=2, steps=10, concepts=[ldm.world.index(n) for n in names]
    )
    assert r["accuracy"] >= 0.75


@pytest.mark.slow
def test_eval_base_meets_the_bar(capsys):
    assert main(["eval-base", "--json"]) == 0
    r = json.loads(capsys.readouterr().out.strip())
    assert r["samples_per_concept"] == 16 and len(r["per_concept"]) == 32
    assert r["accuracy"] >= 0.90
