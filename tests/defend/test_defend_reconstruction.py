"""The reconstruction-inconsistency detector: its score, its cache arrays (old caches without them
read as unavailable, never a crash) and its rows in the pack's report."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from core.defend.pairs import nightshade_file, reconstruction_level
from core.defend.reconstruction import RECON, Unavailable, reconstruction_scores
from core.defend.report import evaluate_pack, load_report, pack_report
from core.defend.roc import roc
from core.io import atomic_save_npz, default_base
from core.results.pack import load_pack
from core.results.validate import BrokenPack


def write_cache(pack, recon: bool, per_concept: int = 6, seed: int = 0) -> None:
    """A Nightshade cache for every concept the pack poisons: random embeddings; with ``recon``
    the detector's arrays, poisons scoring higher than the clean reference."""
    rng = np.random.default_rng(seed)
    ids = np.repeat(np.asarray(pack.poisoned_at(max(pack.levels)), dtype=np.int64), per_concept)
    d = pack.level_arrays(max(pack.levels))["image"].shape[1]
    arrays = {
        "image": rng.normal(size=(ids.size, d)).astype(np.float16),
        "text": rng.normal(size=(ids.size, d)).astype(np.float16),
        "caption_concept": ids,
    }
    if recon:
        ref = np.repeat(np.arange(len(pack.concepts), dtype=np.int64), per_concept)
        arrays |= {
            "recon_score": (1.0 + 0.1 * rng.normal(size=ids.size)).astype(np.float32),
            "recon_clean_score": (0.5 + 0.1 * rng.normal(size=ref.size)).astype(np.float32),
            "recon_clean_concept": ref,
        }
    atomic_save_npz(nightshade_file(pack, 16 / 255, 60), arrays)


@pytest.fixture
def pack(defend_assets, tmp_path):
    out = tmp_path / "demo"
    shutil.copytree(defend_assets / "demo", out)
    return load_pack(out)


def test_score_is_per_image_and_batch_invariant_on_a_random_vae():
    import torch

    from core.models.config import VAEConfig, build_vae
    from core.world import World, WorldConfig

    torch.manual_seed(0)
    vae = build_vae(VAEConfig(channels=(16, 32)), 32).eval()
    x = World(WorldConfig(n_concepts=8)).sample(3, seed=1).images
    s = reconstruction_scores(vae, x)
    assert s.shape == (24,) and s.dtype == np.float32 and np.isfinite(s).all() and (s >= 0).all()
    np.testing.assert_allclose(reconstruction_scores(vae, x, batch=5), s, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(reconstruction_scores(vae, x[7:8]), s[7:8], rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="images: expected"):
        reconstruction_scores(vae, x[0])


def test_it_separates_nightshade_perturbed_images_on_the_shipped_vae():
    """PGD toward another concept's latent (the Nightshade-style builder) leaves images the shipped
    VAE does not reproduce consistently; clean renders of the same concepts do. (A random VAE has no
    such structure: measured AUC 0.38 on it, so the property is checked on the trained one.)"""
    from diffusers import AutoencoderKL

    from core.poison.builders import nightshade_perturb
    from core.world import World, WorldConfig

    vae = AutoencoderKL.from_pretrained(str(default_base() / "vae"), use_safetensors=True).eval()
    w = World(WorldConfig(n_concepts=32))
    x = w.sample(6, seed=11, concepts=[12, 25]).images
    anchors = w.sample(6, seed=12, concepts=[6, 17]).images
    xp, _ = nightshade_perturb(vae, x, anchors, 16 / 255, 20)
    clean = w.sample(6, seed=13, concepts=[12, 25]).images
    s = np.r_[reconstruction_scores(vae, xp), reconstruction_scores(vae, clean)]
    r = roc(s, np.r_[np.ones(12, bool), np.zeros(12, bool)])
    assert r.auc >= 0.85, r.auc


def test_an_old_cache_without_scores_is_unavailable_with_a_reason(pack):
    with pytest.raises(Unavailable, match="is not in"):
        reconstruction_level(pack, 2, "nightshade")
    write_cache(pack, recon=False)
    with pytest.raises(Unavailable, match="built before the reconstruction detector"):
        reconstruction_level(pack, 2, "nightshade")
    rep = evaluate_pack(pack, methods=["dirty-label", "nightshade"])
    assert "built before" in rep.settings["unavailable"][RECON]
    assert {r["detector"] for r in rep.rows} == {
        "misalignment",
        "structural_outlier",
        "concept_share",
        "knn_disagreement",
    }
    # stored, then answered from the store while the cache still lacks the scores
    _, path, fresh = pack_report(pack, methods=["dirty-label", "nightshade"])
    assert fresh
    again, _, fresh = pack_report(pack, methods=["dirty-label", "nightshade"])
    assert not fresh and RECON in again.settings["unavailable"]
    # once the cache holds them, the stored report no longer covers the request
    write_cache(pack, recon=True)
    rep, _, fresh = pack_report(pack, methods=["dirty-label", "nightshade"])
    assert fresh and "unavailable" not in rep.settings
    stored = load_report(path)
    assert stored is not None and stored.settings == rep.settings


def test_a_removed_cache_makes_the_stored_report_stale(pack):
    """Removing an old cache (the documented way to rebuild it with scores) means the stored
    report's 'unavailable' no longer holds: the next request recomputes instead of answering
    from the store."""
    from core.defend.report import covering, evaluate_settings, still_unavailable

    write_cache(pack, recon=False)
    rep = evaluate_pack(pack, methods=["dirty-label", "nightshade"])
    want = evaluate_settings(pack, methods=["dirty-label", "nightshade"])
    assert still_unavailable(pack, rep.settings) is not None
    assert covering(rep, want, pack) is not None
    nightshade_file(pack, 16 / 255, 60).unlink()
    assert still_unavailable(pack, rep.settings) is None
    assert covering(rep, want, pack) is None
    # a request without Nightshade-style rows builds no cache: the stored report still answers
    dirty = evaluate_settings(pack, methods=["dirty-label"])
    assert covering(rep, dirty, pack) is not None


def test_report_rows_for_both_methods(pack):
    write_cache(pack, recon=True)
    rep = evaluate_pack(pack, detectors=[RECON], methods=["dirty-label", "nightshade"])
    by = {(r["method"], r["c_p"]): r for r in rep.rows}
    assert set(by) == {(m, c) for m in ("dirty-label", "nightshade") for c in (2, 4, 8, 16)}
    # nightshade: the level's poisons (as many as its dirty-label pairs, at most) vs clean refs
    ns = by[("nightshade", 4)]
    assert ns["auc"] > 0.99 and ns["n_poisoned"] == min(4 * 6, ns["n_poisoned"])
    assert ns["n_clean"] == 4 * 6
    # dirty-label: clean images on both sides (targets vs the concepts), disjoint rows
    dl = by[("dirty-label", 4)]
    assert 0.0 < dl["auc"] < 1.0 and dl["n_poisoned"] == 4 * 3 and dl["n_clean"] == 4 * 3


def test_malformed_scores_are_a_broken_pack_not_a_crash(pack):
    write_cache(pack, recon=True)
    path = nightshade_file(pack, 16 / 255, 60)
    z = dict(np.load(path))
    z["recon_score"] = z["recon_score"][:3]
    atomic_save_npz(path, z)
    with pytest.raises(BrokenPack, match="reconstruction scores are malformed"):
        reconstruction_level(pack, 2, "nightshade")
    z.pop("recon_clean_concept")
    atomic_save_npz(path, z)
    with pytest.raises(BrokenPack, match="malformed"):
        reconstruction_level(pack, 2, "nightshade")


@pytest.fixture
def own_assets(tmp_path_factory, monkeypatch):
    """A private assets folder (its pack gets a Nightshade cache the shared one must not see)."""
    from tests.support.packs import write_assets

    assets = write_assets(tmp_path_factory, "recon_assets")
    monkeypatch.setenv("IMPLOSION_ASSETS", str(assets))
    import pages._ui

    monkeypatch.setattr(pages._ui, "route_through_app", lambda: None)
    return assets


@pytest.mark.parametrize("recon", [True, False])
def test_defend_page_shows_both_families_on_nightshade(own_assets, recon):
    import json

    from streamlit.testing.v1 import AppTest

    from tests.support import ROOT

    pack = load_pack(own_assets / "demo")
    write_cache(pack, recon=recon)
    pack_report(pack, methods=["dirty-label", "nightshade"])
    at = AppTest.from_file(str(ROOT / "pages" / "defend.py"), default_timeout=120)
    at.session_state["def_method"] = "nightshade"
    at.run()
    assert not at.exception, at.exception
    roc_names = [t["name"] for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]]
    assert any("VAE reconstruction" in n for n in roc_names) == recon
    text = " ".join(m.value for m in at.markdown)
    assert "Both detector families" in " ".join(h.value for h in at.subheader)
    assert "misses Nightshade-style ones" in text and "LightShed" in text
    assert "VAE reconstruction" in text  # the table's column
    captions = " ".join(c.value for c in at.caption)
    assert ("built before the reconstruction detector" in captions) == (not recon)
