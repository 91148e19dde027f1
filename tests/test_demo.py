"""Demo packs: the synthetic writer produces the exact sweep format; loading and grouping."""

from __future__ import annotations

import json
import zipfile
from io import BytesIO

import numpy as np
import pytest

from core.results.pack import find_pack_dir, list_packs, load_pack
from core.results.synthetic import write_synthetic_demo_pack
from core.world import World, WorldConfig

RECORD_KEYS = {
    "c_p", "seed", "ad", "ad_feature", "ad_structure", "acc_unpoisoned", "acc_poisoned",
    "attack_success", "alignment_unpoisoned", "incoherence", "acc_related", "acc_unrelated",
    "finetune_seconds",
}  # fmt: skip


@pytest.fixture(scope="module")
def pack_dir(tmp_path_factory):
    return write_synthetic_demo_pack(
        tmp_path_factory.mktemp("p") / "demo", n_concepts=16, levels=(0, 2, 4, 16)
    )


def test_results_format(pack_dir):
    res = json.loads((pack_dir / "results.json").read_text())
    cfg = res["config"]
    assert set(cfg) >= {"preset", "concepts", "poison_order", "targets", "seeds", "levels"}
    assert len(cfg["concepts"]) == 16 and cfg["levels"] == [0, 2, 4, 16]
    assert sorted(cfg["poison_order"]) == list(range(16))
    assert all(int(k) != v for k, v in cfg["targets"].items())
    assert all(set(r) == RECORD_KEYS for r in res["records"])
    assert len(res["records"]) == 4 * len(cfg["seeds"])
    s = res["summary"]["ad"]
    assert s["c_p"] == [0, 2, 4, 16]
    assert all(lo <= m <= hi for lo, m, hi in zip(s["ci_low"], s["mean"], s["ci_high"]))
    # null where not applicable: no poisoned accuracy without poison, no unpoisoned at C_P = K
    assert all(r["acc_poisoned"] is None for r in res["records"] if r["c_p"] == 0)
    assert all(r["acc_unpoisoned"] is None for r in res["records"] if r["c_p"] == 16)


def test_embeddings_and_generations_format(pack_dir):
    with np.load(pack_dir / "embeddings.npz", allow_pickle=False) as z:
        assert z["concepts"].dtype.kind == "U" and z["concepts"].shape == (16,)
        assert list(z["levels"]) == [0, 2, 4, 16]
        k, d = z["text_concept"].shape
        for c in (0, 2, 4, 16):
            n = z[f"image_{c}"].shape[0]
            assert z[f"image_{c}"].dtype == np.float16 and z[f"text_{c}"].shape == (n, d)
            assert z[f"caption_concept_{c}"].shape == (n,) and z[f"poisoned_{c}"].dtype == bool
            assert z[f"poisoned_{c}"].sum() > 0 if c else z[f"poisoned_{c}"].sum() == 0
            assert z[f"generated_{c}"].shape == (k, d)
    with np.load(pack_dir / "generations.npz", allow_pickle=False) as g:
        assert g["images_0"].dtype == np.uint8 and g["images_0"].shape[:2] == (16, 4)
        assert g["images_0"].shape[-1] == 3


def test_load_pack_and_groups(pack_dir):
    pack = load_pack(pack_dir)
    assert pack.levels == [0, 2, 4, 16]
    assert pack.poisoned_at(2) == pack.poison_order[:2]
    g = pack.groups(2)
    world = World(WorldConfig(n_concepts=16))
    assert sorted(g["poisoned"] + g["related"] + g["unrelated"]) == list(range(16))
    for j in g["related"]:
        assert max(world.relation[j, i] for i in g["poisoned"]) >= 2
    for j in g["unrelated"]:
        assert max(world.relation[j, i] for i in g["poisoned"]) < 2
    a = pack.level_arrays(4)
    assert a["image"].dtype == np.float32
    with pytest.raises(ValueError, match="C_P=3"):
        pack.level_arrays(3)


def test_groups_use_the_packs_own_relation(pack_dir):
    """Real-model packs record their K×K relation (shared keyword); groups must follow it."""
    pack = load_pack(pack_dir)
    k = len(pack.concepts)
    a = pack.poisoned_at(1)[0]
    rel = np.zeros((k, k), dtype=int)
    b = (a + 1) % k
    rel[a, b] = rel[b, a] = 1
    pack.results["config"]["relation"] = rel.tolist()
    g = pack.groups(1)
    assert g["poisoned"] == [a] and g["related"] == [b]
    assert len(g["unrelated"]) == k - 2


def test_missing_pack_message(tmp_path):
    with pytest.raises(FileNotFoundError, match="results.json"):
        load_pack(tmp_path)


def test_list_packs_finds_demo_and_runs(pack_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("IMPLOSION_ASSETS", str(pack_dir.parent))
    runs = tmp_path / "runs"
    write_synthetic_demo_pack(runs / "r1" / "pack", n_concepts=8, levels=(0, 8))
    monkeypatch.setenv("IMPLOSION_RUNS", str(runs))
    packs = list_packs()
    assert packs["demo"] == pack_dir
    assert packs["r1"] == runs / "r1" / "pack"
    assert find_pack_dir(runs / "r1") == runs / "r1" / "pack"


def test_bundle_run(pack_dir):
    from core.results.export import bundle_run

    data = bundle_run(pack_dir)
    names = zipfile.ZipFile(BytesIO(data)).namelist()
    assert "results.json" in names and "training.json" in names
    assert "grids/generations_cp016.png" in names


def test_theory_ad_grows_with_cp():
    from core.analysis.theory import ad_curve, exact_ad, synthetic_pairs

    curve = ad_curve(n_concepts=8, noise=0.5, levels=[0, 2, 4, 8])
    assert np.all(np.diff(curve["ad"]) > 0)
    p = synthetic_pairs(8, 4, 0.5, n_per_concept=4)
    assert p.poisoned.sum() == 16 and p.image.shape == p.text.shape
    # the local fallback matches the worked example of shared/SCIENCE.md
    x = np.array([[1.0, 0.0], [0.5, np.sqrt(0.75)]])
    y = np.array([[1.0, 0.0], [0.1, np.sqrt(0.99)]])
    r = exact_ad(x, y, alpha=0.8)
    assert r["d_stru"] == pytest.approx(0.2)
