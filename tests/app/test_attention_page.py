"""The Cross-attention page under AppTest: a pack whose levels saved their weights (clean level
beside a poisoned one, a broken level shown with its reason) and packs without weights.

The base is the tiny test model; maps are computed for real (2 DDIM steps, seconds)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from tests.app.conftest import page

TIMEOUT = 120


def _lora(ldm, scale: float, seed: int) -> dict[str, np.ndarray]:
    """Rank-1 adapters on every cross-attention projection of ``ldm``'s UNet."""
    from core.models.lora import XATTN_TARGETS

    rng = np.random.default_rng(seed)
    out = {}
    for name, m in ldm.unet.named_modules():
        if any(name.endswith(t) for t in XATTN_TARGETS):
            o, i = m.weight.shape
            out[f"{name}.lora_A.weight"] = rng.normal(0, scale, (1, i)).astype(np.float32)
            out[f"{name}.lora_B.weight"] = rng.normal(0, scale, (o, 1)).astype(np.float32)
    return out


@pytest.fixture()
def weights_pack(tmp_path, tiny_model_dir, monkeypatch):
    """Assets with the tiny model as base and a K=8 demo pack with weights for C_P 0 and 4 of
    seed 0 (and a broken file for C_P 2)."""
    from core.models.adapter import unet_fingerprint
    from core.models.ldm import MiniLDM
    from core.results.synthetic import write_synthetic_demo_pack
    from core.results.weights import weights_bytes, weights_rel, write_level_weights

    assets = tmp_path / "assets"
    assets.mkdir()
    os.symlink(tiny_model_dir, assets / "base")
    demo = write_synthetic_demo_pack(assets / "demo", n_concepts=8, levels=(0, 2, 4), seeds=(0,))
    ldm = MiniLDM.from_pretrained(tiny_model_dir)
    sha = unet_fingerprint(ldm.unet)
    for c_p, scale in ((0, 0.0), (4, 0.5)):
        data = weights_bytes(
            _lora(ldm, scale, c_p), c_p=c_p, seed=0, params="lora", base_sha256=sha,
            base="tiny", lora_rank=1, lora_alpha=1.0,
        )  # fmt: skip
        write_level_weights(demo, data, c_p, 0)
    (demo / weights_rel(2, 0)).write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}")
    monkeypatch.setenv("IMPLOSION_ASSETS", str(assets))
    monkeypatch.setenv("IMPLOSION_RUNS", str(tmp_path / "runs"))
    return demo


def run(**state) -> AppTest:
    at = AppTest.from_file(page("attention"), default_timeout=TIMEOUT)
    for k, v in state.items():
        at.session_state[k] = v
    return at.run()


def test_clean_level_beside_the_chosen_poisoned_level(weights_pack):
    at = run(att_steps=2)
    assert not at.exception, at.exception
    assert at.selectbox(key="att_run_seed").value == 0
    assert at.select_slider(key="att_cp_0").value == 4  # the highest level leaving unpoisoned ones
    assert at.select_slider(key="att_cp_0").options == ["2", "4"]
    prompt = at.selectbox(key="att_c_0_4")
    assert "poisoned (→" in prompt.format_func(prompt.value)  # a poisoned concept by default
    at.button(key="att_go").click().run()
    assert not at.exception, at.exception
    titles = [h.value for h in at.subheader]
    assert titles == ["Clean: C_P 0", "Poisoned: C_P 4"]
    assert not at.error, [e.value for e in at.error]
    assert len(at.get("image")) == 4  # per column: the image, and the concept's 3 words' maps


def test_a_broken_weights_file_is_shown_with_its_reason(weights_pack):
    at = run(att_steps=2)
    at.select_slider(key="att_cp_0").set_value(2).run()
    at.button(key="att_go").click().run()
    assert not at.exception, at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "Maps unavailable" in errors[0]
    assert "cp2_seed0.safetensors" in errors[0]
    assert at.subheader[0].value.startswith("Clean")  # the clean column still draws


def test_a_pack_without_weights_explains_and_shows_the_base(weights_pack):
    import shutil

    shutil.rmtree(weights_pack / "weights")
    at = run(att_steps=2)
    assert not at.exception, at.exception
    assert "saved no fine-tuned weights" in at.info[0].value
    assert "Poison" in at.info[0].value and "implosion sweep" in at.info[0].value
    at.button(key="att_go").click().run()
    assert not at.exception, at.exception
    assert [h.value for h in at.subheader] == ["Base model (clean)"]
    assert not at.error


def test_weights_from_another_base_are_refused_not_applied(weights_pack, tmp_path):
    from core.results.weights import weights_bytes, weights_rel

    data = (weights_pack / weights_rel(4, 0)).read_bytes()
    from core.results.weights import parse_weights

    lw = parse_weights(data, "x", None, (4, 0))
    other = weights_bytes(
        lw.tensors, c_p=4, seed=0, params="lora", base_sha256="b" * 64, base="elsewhere",
        lora_rank=1, lora_alpha=1.0,
    )  # fmt: skip
    (weights_pack / weights_rel(4, 0)).write_bytes(other)
    at = run(att_steps=2)
    at.button(key="att_go").click().run()
    assert not at.exception, at.exception
    assert len(at.error) == 1 and "another base" in at.error[0].value
