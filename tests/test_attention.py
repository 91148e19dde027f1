"""Cross-attention maps on a tiny random model (CPU, seconds)."""

from __future__ import annotations

import numpy as np
import pytest

from core.analysis.attention import RecordingAttnProcessor, cross_attention_maps
from core.models.config import ModelConfig
from core.models.ldm import MiniLDM
from core.world import WorldConfig


@pytest.fixture(scope="module")
def ldm():
    return MiniLDM.build(WorldConfig(n_concepts=8), ModelConfig.tiny()).eval()


def test_maps_shapes_and_tokens(ldm):
    before = {k: type(v) for k, v in ldm.unet.attn_processors.items()}
    image, tokens, maps = cross_attention_maps(ldm, "a photo of a large red circle", steps=2)
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8
    assert tokens[-3:] == ["large", "red", "circle"]
    assert maps.shape == (len(tokens), 32, 32) and maps.dtype == np.float32
    assert np.isfinite(maps).all() and (maps >= 0).all() and (maps <= 1).all()
    # processors are restored afterwards
    assert {k: type(v) for k, v in ldm.unet.attn_processors.items()} == before
    assert not any(isinstance(p, RecordingAttnProcessor) for p in ldm.unet.attn_processors.values())


def test_recorder_does_not_change_the_image(ldm):
    from core.models.ldm import to_uint8

    plain = to_uint8(ldm.sample(["a small blue square"], seed=3, steps=2))[0]
    image, _, _ = cross_attention_maps(ldm, "a small blue square", seed=3, steps=2)
    assert np.abs(plain.astype(int) - image.astype(int)).max() <= 1


def test_attention_sums_to_one_over_all_tokens(ldm):
    from core.analysis.attention import prompt_tokens

    tokens, positions = prompt_tokens(ldm, "a large red circle")
    assert len(tokens) == len(positions) == 4
    store: dict = {"sum": None, "count": 0}
    procs = {
        n: RecordingAttnProcessor(store, 32) if n.endswith("attn2.processor") else p
        for n, p in ldm.unet.attn_processors.items()
    }
    original = dict(ldm.unet.attn_processors)
    ldm.unet.set_attn_processor(procs)
    try:
        ldm.sample(["a large red circle"], steps=1)
    finally:
        ldm.unet.set_attn_processor(original)
    total = (store["sum"] / store["count"]).sum(0).numpy()
    np.testing.assert_allclose(total, 1.0, atol=1e-4)  # softmax over all 16 key positions
