"""core.analysis.claims: each claim against hand-computed records, science.json, the page panel."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from core.analysis.claims import SCIENCE_FILE, pack_claims, read_science, t_interval
from core.results.pack import Pack, load_pack
from core.world import World, WorldConfig

ROOT = Path(__file__).resolve().parents[1]
NAMES = World(WorldConfig(n_concepts=8)).names  # concept 0 is related to 1, 2, 4 (2 shared words)


def rec(c_p: int, seed: int, acc: float, incoh: float, ad: float, align: float, pc=None) -> dict:
    return {
        "c_p": c_p,
        "seed": seed,
        "ad": ad,
        "acc_unpoisoned": acc,
        "alignment_unpoisoned": align,
        "incoherence_unpoisoned": incoh,
        "incoherence": incoh,
        "per_concept_acc": pc,
        "undefined_rate": 0.01 if c_p == 0 else 0.02,  # 2× clean: never enough on its own
    }


def make_pack(tmp_path: Path, science: dict | None = None) -> Pack:
    """Two seeds (same order: concept 0 first), levels 0, 1, 4, 7, 8."""
    clean = [1.0] * 8
    # C_P 1 poisons concept 0: related 1, 2, 4 lose 0.4 / 0.3; unrelated 3, 5, 6, 7 lose 0.1 / 0.0
    pc1 = {0: [0.2, 0.6, 0.6, 0.9, 0.6, 0.9, 0.9, 0.9], 1: [0.2, 0.7, 0.7, 1.0, 0.7, 1.0, 1.0, 1.0]}
    records = []
    for s, j in ((0, 0.0), (1, 0.02)):
        records += [
            rec(0, s, 0.98 + j / 2, 0.02 + j / 10, 0.30 + j, 0.90 - j, clean),
            rec(1, s, 0.80 + j, 0.03 + j / 10, 0.35 + j, 0.85 - j, pc1[s]),
            rec(4, s, 0.60 + j, 0.05 + j / 10, 0.45 + j, 0.70 - j, [0.5] * 8),
            rec(7, s, 0.40 + j, 0.10 + j / 10, 0.60 + j, 0.50 - j, None),
            rec(8, s, None, 0.20, 0.70 + j, None, None),
        ]
    order = list(range(8))
    cfg = {
        "concepts": NAMES,
        "levels": [0, 1, 4, 7, 8],
        "seeds": [0, 1],
        "poison_order": order,
        "plans": {"0": {"order": order}, "1": {"order": order}},
    }
    root = tmp_path / "pack"
    root.mkdir()
    (root / "results.json").write_text(json.dumps({"config": cfg, "records": records}))
    if science is not None:
        (root / SCIENCE_FILE).write_text(json.dumps(science))
    return load_pack(root)


def test_t_interval_matches_scipy():
    v = [0.2, 0.4, 0.9]
    iv = t_interval(v)
    lo, hi = stats.t.interval(0.95, 2, loc=np.mean(v), scale=stats.sem(v))
    assert iv.mean == pytest.approx(0.5) and iv.n == 3
    assert (iv.low, iv.high) == pytest.approx((lo, hi))
    one = t_interval([0.7, float("nan")])
    assert one.low == one.high == one.mean == 0.7 and one.n == 1
    with pytest.raises(ValueError, match="no finite values"):
        t_interval([float("nan")])


def test_claims_by_hand(tmp_path):
    pc = pack_claims(make_pack(tmp_path))
    assert pc.get("ad_monotone").holds is True
    r = pc.get("r_ad_alignment")
    ad = [0.31, 0.36, 0.46, 0.61]
    al = [0.89, 0.84, 0.69, 0.49]
    assert r.value == pytest.approx(np.corrcoef(ad, al)[0, 1]) and r.holds is True
    imp = pc.get("implosion_ratio")  # largest level with unpoisoned concepts: 7
    ratios = [0.40 / 0.98, 0.42 / 0.99]
    assert "C_P 7" in imp.detail
    assert imp.value == pytest.approx(np.mean(ratios)) and imp.holds is True
    inc = pc.get("incoherence_ratio")
    assert inc.value == pytest.approx(np.mean([0.10 / 0.02, 0.102 / 0.022])) and inc.holds is True
    assert "undefined rate 0.020 vs 0.010 = 2.0× clean" in inc.detail
    # C_P 1: related lose 0.4, 0.3 and unrelated 0.1, 0.0; C_P 4 (every concept 0.5): all equal
    rel = pc.get("related_loss")
    assert rel.value == pytest.approx(0.35 / 0.05) and "C_P 1" in rel.detail
    assert rel.interval is not None and rel.interval.mean == pytest.approx(0.35)
    assert rel.holds is False  # two seeds: the t-intervals (df 1) are wide and overlap
    assert pc.get("longer_training").holds is None and pc.get("nightshade").holds is None
    assert any("not measured" in t for t in pc.limits)
    json.dumps(pc.to_dict())  # JSON-serialisable
    with pytest.raises(KeyError, match="known"):
        pc.get("nope")


def test_science_json_is_read(tmp_path):
    science = {
        "longer_training": {
            "steps": 180,
            "preset_steps": 60,
            "c_p": 24,
            "ratio": 0.8,
            "ci_low": 0.7,
            "ci_high": 0.9,
            "n_seeds": 2,
        },
        "nightshade": {
            "attack_success": 0.0,
            "n_poison": 32,
            "epsilon255": 16,
            "ssim": 0.9,
            "dirty_label_n80": None,
            "latent_gap_closed": 0.2,
        },
        "notes": ["The mini VAE is smooth."],
    }
    pc = pack_claims(make_pack(tmp_path, science))
    lt = pc.get("longer_training")
    assert lt.holds is False and lt.value == 0.8 and lt.interval.high == 0.9
    ns = pc.get("nightshade")
    assert ns.holds is False and "never reached 80" in ns.detail
    assert "closes only 20% of the latent gap" in ns.detail  # the missed claim says why
    assert "The mini VAE is smooth." in pc.limits
    assert any(t.startswith("Implosion holds with longer fine-tuning: missed") for t in pc.limits)


def test_bad_science_json_names_the_file(tmp_path):
    pack = make_pack(tmp_path)
    (pack.root / SCIENCE_FILE).write_text("{oops")
    with pytest.raises(ValueError, match="science.json is not valid JSON"):
        read_science(pack)


def test_synthetic_pack_and_records_without_optional_fields(tmp_path):
    from core.results.synthetic import write_synthetic_demo_pack

    write_synthetic_demo_pack(tmp_path / "syn", n_concepts=16, levels=(0, 2, 4, 8, 16))
    pc = pack_claims(load_pack(tmp_path / "syn"))
    assert {c.key for c in pc.claims} >= {"ad_monotone", "implosion_ratio", "related_loss"}
    json.dumps(pc.to_dict())


def test_panel_renders(tmp_path):
    from streamlit.testing.v1 import AppTest

    pack = make_pack(tmp_path, {"notes": ["A note."]})
    script = tmp_path / "panel.py"
    script.write_text(
        f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
        "from pathlib import Path\n"
        "from pages._claims import render_claims_panel\n"
        f"render_claims_panel(Path({str(pack.root)!r}))\n"
        "from core.results.pack import load_pack\n"
        f"render_claims_panel(load_pack(Path({str(pack.root)!r})))\n"
        "render_claims_panel(None)\n"
        f"render_claims_panel(Path({str(tmp_path / 'missing')!r}))\n"
    )
    at = AppTest.from_file(str(script), default_timeout=60).run()
    assert not at.exception
    # a folder (Home) and a loaded pack (AD trajectory) each give one panel; None and a missing
    # folder give none (a Path's own .root is "/", not the pack)
    assert len(at.expander) == 2 and all("claims hold" in e.label for e in at.expander)
    text = " ".join(m.value for m in at.markdown)
    assert "AD rises" in text and "Honest limits" in text and "A note." in text


def test_undefined_rate_can_carry_the_incoherence_claim():
    from core.analysis.claims import incoherence_ratio

    recs = []
    for s, j in ((0, 0.0), (1, 0.004), (2, 0.008)):
        base = {"seed": s, "acc_unpoisoned": 0.9, "incoherence_unpoisoned": 0.05 + j}
        recs += [
            {**base, "c_p": 0, "undefined_rate": 0.01 + j / 4},
            {**base, "c_p": 4, "undefined_rate": 0.10 + j},
        ]
    c = incoherence_ratio(recs)
    assert c.value == pytest.approx(1.0) and c.holds is True
    assert "undefined rate" in c.detail and "overlap" not in c.detail


def test_related_claim_prefers_a_level_where_it_holds(tmp_path):
    """C_P 2 has the larger related-minus-unrelated gap but its intervals overlap; C_P 1's are
    apart: the claim reports C_P 1 (it holds), not the larger, inconclusive gap."""
    from core.analysis.claims import related_loss

    base = make_pack(tmp_path)
    groups = {c: (base.groups(c, 0)["related"], base.groups(c, 0)["unrelated"]) for c in (1, 2)}
    assert all(g[0] and g[1] for g in groups.values())
    lose = {1: ([0.30, 0.31, 0.32], [0.0, 0.0, 0.01]), 2: ([0.0, 0.9, 0.9], [0.0, 0.0, 0.0])}
    records = []
    for s in range(3):
        records.append(rec(0, s, 1.0, 0.01, 0.3, 0.9, [1.0] * 8))
        for c, (rl, ul) in lose.items():
            pc = [0.0] * 8  # poisoned concepts: not used by the claim
            for j in groups[c][0]:
                pc[j] = 1.0 - rl[s]
            for j in groups[c][1]:
                pc[j] = 1.0 - ul[s]
            records.append(rec(c, s, 0.8, 0.02, 0.4, 0.8, pc))
    order = list(range(8))
    cfg = {
        "concepts": NAMES,
        "levels": [0, 1, 2],
        "seeds": [0, 1, 2],
        "poison_order": order,
        "plans": {str(s): {"order": order} for s in range(3)},
    }
    root = tmp_path / "pack3"
    root.mkdir()
    (root / "results.json").write_text(json.dumps({"config": cfg, "records": records}))
    claim = related_loss(load_pack(root))
    assert claim.holds is True and claim.detail.startswith("C_P 1:")
