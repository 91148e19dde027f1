"""CLIP alignment and zero-shot attack success: hand-computed cases and a tiny random CLIP."""

from __future__ import annotations

import numpy as np
import pytest

from core.evaluate.clip import attack_success, clip_alignment, evaluate_attack


class _Fixed:
    """Embedder with fixed unit vectors: images by index, texts by a lookup."""

    def __init__(self, images: np.ndarray, texts: dict[str, list[float]]) -> None:
        self.images, self.texts = images, texts

    def encode_images(self, images):
        return self.images[np.asarray(images)]

    def encode_texts(self, texts):
        return np.asarray([self.texts[t] for t in texts], dtype=np.float32)


def test_hand_computed():
    imgs = np.array([[1, 0], [0, 1], [0.6, 0.8]], dtype=np.float32)
    texts = {"a photo of a dog": [1, 0], "a photo of a cat": [0, 1], "x": [0.6, 0.8]}
    emb = _Fixed(imgs, texts)
    s = clip_alignment(emb, [0, 1, 2], ["a photo of a dog", "a photo of a dog", "x"])
    np.testing.assert_allclose(s, [1.0, 0.0, 1.0], atol=1e-6)
    r = attack_success(emb, [0, 1, 2], ["dog", "cat"], source="dog", target="cat")
    # image 2 is closer to cat (0.8 > 0.6)
    assert r == {
        "attack_success": pytest.approx(2 / 3),
        "source_accuracy": pytest.approx(1 / 3),
        "n": 3,
    }
    with pytest.raises(ValueError, match="not among the concepts"):
        attack_success(emb, [0], ["dog"], source="dog", target="cat")
    with pytest.raises(ValueError, match="one per image"):
        clip_alignment(emb, [0, 1], ["x"])


def test_tiny_clip_end_to_end(tiny_sd_dir, tiny_clip_dir):
    from core.models.dual import ClipEmbedder
    from core.models.sd import load_sd

    emb = ClipEmbedder(tiny_clip_dir)
    r = evaluate_attack(load_sd(tiny_sd_dir), emb, ["dog", "cat", "car"], "dog", "cat",
                        samples=2, steps=1, guidance=2.0)  # fmt: skip
    assert set(r["alignment"]) == {"dog", "cat", "car"}
    assert all(-1 <= v <= 1 for v in r["alignment"].values())
    assert 0 <= r["attack_success"] <= 1 and r["n"] == 2
    assert r["attack_success"] + r["source_accuracy"] <= 1
