"""A level's fine-tuned weights: saved (safetensors, kilobytes), read back as untrusted input, and
put on the base they were trained from to give the fine-tuned UNet again (tiny model, seconds)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from core.analysis.attention import default_comparison, level_model
from core.models.adapter import apply_weights, trained_weights, unet_fingerprint, with_weights
from core.models.ldm import MiniLDM
from core.results.safe_files import BrokenPack
from core.results.weights import (
    FORMAT,
    parse_weights,
    read_level_weights,
    weights_bytes,
    weights_levels,
    weights_rel,
    write_level_weights,
)
from core.training.finetune import FinetuneConfig, encode_images, finetune_unet, make_pairs


@pytest.fixture()
def setup(tiny_model_dir):
    ldm = MiniLDM.from_pretrained(tiny_model_dir)
    d = ldm.world.sample(1, seed=0)
    mean, std = encode_images(ldm, d.images)
    return ldm, make_pairs(ldm, mean, std, np.arange(len(d)), d.captions)


def _save(tmp_path, weights, params, sha, c_p=4, seed=1, rank=0, alpha=0.0):
    data = weights_bytes(
        weights, c_p=c_p, seed=seed, params=params, base_sha256=sha, base="tiny",
        lora_rank=rank, lora_alpha=alpha,
    )  # fmt: skip
    write_level_weights(tmp_path, data, c_p, seed)
    return data


@pytest.mark.parametrize("params", ["lora", "cross-attention"])
def test_saved_weights_rebuild_the_finetuned_unet(setup, tmp_path, params):
    """base + saved weights == the UNet the fine-tune left (LoRA merged), value for value."""
    ldm, data = setup
    base = {k: v.clone() for k, v in ldm.unet.state_dict().items()}
    sha = unet_fingerprint(base)
    cfg = FinetuneConfig(steps=3, batch=4, lr=1e-2, params=params, lora_rank=1)
    r = finetune_unet(ldm, data, cfg, keep_weights=True)
    tuned = {k: v.clone() for k, v in ldm.unet.state_dict().items()}
    assert any(not torch.equal(tuned[k], base[k]) for k in base)
    rank = 1 if params == "lora" else 0
    raw = _save(tmp_path, r["weights"], params, sha, rank=rank, alpha=float(rank))
    if params == "lora":
        assert len(raw) < 20_000  # rank 1: kilobytes
        assert all(".lora_" in k for k in r["weights"])
    assert weights_levels(tmp_path) == [(4, 1)]
    lw = read_level_weights(tmp_path, 4, 1)
    assert (lw.c_p, lw.seed, lw.params, lw.base_sha256) == (4, 1, params, sha)
    ldm.unet.load_state_dict(base)
    rebuilt = level_model(ldm, lw).unet.state_dict()
    for k in base:
        torch.testing.assert_close(rebuilt[k], tuned[k], rtol=0, atol=0, msg=k)
    assert all(torch.equal(ldm.unet.state_dict()[k], base[k]) for k in base)  # base untouched


def test_without_keep_weights_nothing_is_returned(setup):
    ldm, data = setup
    r = finetune_unet(ldm, data, FinetuneConfig(steps=1, batch=2, params="lora", lora_rank=1))
    assert "weights" not in r


def test_weights_of_another_base_are_refused(setup, tmp_path):
    ldm, _ = setup
    w = {k: torch.ones_like(v) for k, v in trained_weights_xattn(ldm).items()}
    _save(tmp_path, w, "cross-attention", "0" * 64)
    with pytest.raises(ValueError, match="another base"):
        level_model(ldm, read_level_weights(tmp_path, 4, 1))


def trained_weights_xattn(ldm):
    unet = ldm.unet
    return {
        n: p.detach().clone()
        for n, p in unet.named_parameters()
        if ".attn2.to_" in n and n.endswith((".weight", ".bias"))
    }


def test_apply_refuses_keys_that_do_not_fit(setup):
    ldm, _ = setup
    before = {k: v.clone() for k, v in ldm.unet.state_dict().items()}
    key = next(iter(trained_weights_xattn(ldm)))
    with pytest.raises(ValueError, match="not a weight"):
        apply_weights(ldm.unet, {"up_blocks.9.attn2.to_q.weight": np.zeros((2, 2))}, "all")
    with pytest.raises(ValueError, match="is \\(2, 2\\)"):
        apply_weights(ldm.unet, {key: np.zeros((2, 2))}, "cross-attention")
    with pytest.raises(ValueError, match="needs lora_A and lora_B"):
        apply_weights(
            ldm.unet, {key.replace(".weight", ".lora_A.weight"): np.zeros((1, 2))}, "lora"
        )
    assert all(torch.equal(ldm.unet.state_dict()[k], v) for k, v in before.items())
    with pytest.raises(ValueError, match="no such trained weights"):
        trained_weights(ldm.unet, "lora")  # no adapters injected


def test_with_weights_leaves_the_base_alone(setup):
    ldm, _ = setup
    w = {k: v + 1 for k, v in trained_weights_xattn(ldm).items()}
    out = with_weights(ldm.unet, w, "cross-attention")
    k = next(iter(w))
    assert torch.equal(out.state_dict()[k], w[k])
    assert not torch.equal(ldm.unet.state_dict()[k], w[k])


# ---------------------------------------------------------------- untrusted files
def _lora_file(tmp_path, **meta):
    a = {
        "mid.attn2.to_q.lora_A.weight": np.ones((1, 4)),
        "mid.attn2.to_q.lora_B.weight": np.ones((4, 1)),
    }
    return weights_bytes(
        a, c_p=4, seed=1, params="lora", base_sha256="a" * 64, base="tiny", lora_rank=1,
        lora_alpha=1.0,
    )  # fmt: skip


def _rewrite(data: bytes, head_fn) -> bytes:
    n = int.from_bytes(data[:8], "little")
    head = json.loads(data[8 : 8 + n])
    head = head_fn(head)
    new = json.dumps(head).encode()
    return len(new).to_bytes(8, "little") + new + data[8 + n :]


def _meta(**kv):
    def fn(h):
        h["__metadata__"].update(kv)
        return h

    return fn


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: d[:5], "shorter than"),
        (lambda d: (10**9).to_bytes(8, "little") + d[8:], "header"),
        (lambda d: d[:-4], "outside the file|tile"),
        (lambda d: _rewrite(d, _meta(format="other/1")), "format"),
        (lambda d: _rewrite(d, _meta(params="everything")), "params"),
        (lambda d: _rewrite(d, _meta(c_p="5")), "file name"),
        (lambda d: _rewrite(d, _meta(lora_rank="-1")), "lora_rank"),
        (lambda d: _rewrite(d, _meta(lora_alpha="nan")), "lora_alpha"),
        (lambda d: _rewrite(d, _meta(base_sha256="x")), "base_sha256"),
        (lambda d: _rewrite(d, lambda h: {k: v for k, v in h.items() if k != "__metadata__"}),
         "__metadata__"),
        (lambda d: _rewrite(d, lambda h: {**h, "../x": h["mid.attn2.to_q.lora_A.weight"]}),
         "dotted module path"),
        (lambda d: _rewrite(d, lambda h: {k: ({**v, "dtype": "I64"} if k != "__metadata__" else v)
                                          for k, v in h.items()}), "dtype"),
        (lambda d: _rewrite(d, lambda h: {k: v for k, v in h.items()
                                          if not k.endswith("lora_B.weight")}), "tile|no "),
        (lambda d: d[:-4] + np.float32(np.nan).tobytes(), "NaN"),
        (lambda d: b"\x00" * 64, "header"),
    ],
)  # fmt: skip
def test_malformed_weights_file_is_broken_with_a_reason(tmp_path, mutate, reason):
    data = mutate(_lora_file(tmp_path))
    (tmp_path / "weights").mkdir()
    (tmp_path / weights_rel(4, 1)).write_bytes(data)
    with pytest.raises(BrokenPack, match=reason) as e:
        read_level_weights(tmp_path, 4, 1)
    assert "weights/cp4_seed1.safetensors" in e.value.reason


def test_good_file_parses_and_links_are_refused(tmp_path):
    data = _lora_file(tmp_path)
    lw = parse_weights(data, "x", None, (4, 1))
    assert lw.params == "lora" and lw.scale == 1.0 and lw.nbytes == 32
    assert (
        json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])["__metadata__"]["format"]
        == FORMAT
    )
    (tmp_path / "weights").mkdir()
    outside = tmp_path / "outside.safetensors"
    outside.write_bytes(data)
    os.symlink(outside, tmp_path / weights_rel(4, 1))
    with pytest.raises(BrokenPack, match="symbolic link"):
        weights_levels(tmp_path)
    with pytest.raises(BrokenPack, match="symbolic link"):
        read_level_weights(tmp_path, 4, 1)


def test_oversized_file_is_refused_before_reading(tmp_path, monkeypatch):
    import core.results.weights as w

    monkeypatch.setattr(w, "MAX_WEIGHTS_BYTES", 100)
    (tmp_path / "weights").mkdir()
    (tmp_path / weights_rel(4, 1)).write_bytes(_lora_file(tmp_path))
    with pytest.raises(BrokenPack, match="over the 100 limit"):
        read_level_weights(tmp_path, 4, 1)


def test_missing_and_stray_files(tmp_path):
    assert weights_levels(tmp_path) == []
    with pytest.raises(FileNotFoundError):
        read_level_weights(tmp_path, 0, 0)
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "notes.txt").write_text("x")
    (tmp_path / "weights" / "cpX_seed0.safetensors").write_text("x")
    (tmp_path / "weights" / "cp8_seed2.safetensors").write_text("x")
    assert weights_levels(tmp_path) == [(8, 2)]


def test_default_comparison_picks_the_highest_open_level():
    saved = [(0, 0), (4, 0), (24, 0), (32, 0), (0, 1), (8, 1)]
    assert default_comparison(saved, 32, 0) == (24, 0)  # 32 of 32 leaves nothing unpoisoned
    assert default_comparison(saved, 32, 1) == (8, 1)
    assert default_comparison(saved, 32, 5) == (24, 0)
    assert default_comparison([(32, 0)], 32, 0) == (32, 0)
    assert default_comparison([(0, 0)], 32, 0) is None
    assert default_comparison([], 32, 0) is None


def test_sweep_pack_carries_the_weights_and_refuses_a_broken_one(tmp_path):
    from PIL import Image

    from core.results.schema import grid_file
    from core.results.synthetic import write_synthetic_demo_pack
    from core.results.write import read_sweep, write_pack

    sweep = write_synthetic_demo_pack(tmp_path / "sweep", n_concepts=8, levels=(0, 4), seeds=(0,))
    for c in (0, 4):  # sweep-pack copies the shown seed's grids
        grid_file(sweep, c, 0).parent.mkdir(exist_ok=True)
        Image.new("RGB", (4, 4)).save(grid_file(sweep, c, 0))
    data = _lora_file(tmp_path)  # C_P 4, seed 1: not a level/seed of this sweep, left behind
    write_level_weights(sweep, data, 4, 1)
    good = (
        _lora_file(tmp_path)
        .replace(b'"c_p":"4"', b'"c_p":"0"')
        .replace(b'"seed":"1"', b'"seed":"0"')
    )
    write_level_weights(sweep, good, 0, 0)
    sizes = write_pack(sweep, tmp_path / "pack")
    assert sizes["weights/cp0_seed0.safetensors"] == len(good)
    assert weights_levels(tmp_path / "pack") == [(0, 0)]
    assert read_level_weights(tmp_path / "pack", 0, 0).c_p == 0
    (sweep / weights_rel(0, 0)).write_bytes(good[:-8])
    with pytest.raises(BrokenPack, match="cp0_seed0.safetensors"):
        read_sweep(sweep)


def test_the_demo_packs_weights_fit_the_shipped_base():
    """assets/demo's weights were trained on assets/base: a retrained base makes them stale (the
    page would refuse them as "another base"); regenerate them with the pack (its README)."""
    from core.io import REPO_ROOT

    demo = REPO_ROOT / "assets" / "demo"
    saved = weights_levels(demo)
    assert (0, 0) in saved and any(c > 0 for c, _ in saved)
    sha = unet_fingerprint(MiniLDM.from_pretrained(REPO_ROOT / "assets" / "base").unet)
    for c, s in saved:
        lw = read_level_weights(demo, c, s)
        assert (lw.params, lw.lora_rank, lw.base_sha256) == ("lora", 1, sha)
