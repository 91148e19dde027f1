"""Folder reader: pairs images with same-stem captions, skips and counts bad files, batches."""

from __future__ import annotations

import numpy as np
import pytest
from fake_embedder import FakeEmbedder, write_dataset
from PIL import Image

from core.metrics import alignment_difficulty, embed_folder, find_pairs
from core.metrics.folder import summarise_skips


def test_pairs_and_embeds_in_batches(tmp_path):
    root = write_dataset(tmp_path / "ds")
    Image.new("L", (8, 8), 128).save(root / "grey.webp")  # greyscale → converted to RGB
    (root / "grey.txt").write_text("a grey thing")
    (root / "notes.md").write_text("not an image")
    emb = FakeEmbedder()
    out = embed_folder(root, emb, batch_size=4, progress=False)
    assert len(out.paths) == 10 and out.image.shape == out.text.shape == (10, 4)
    assert out.image.dtype == np.float32
    assert emb.image_batches == [4, 4, 2] and emb.modes == {"RGB"}
    assert [p.name for p in out.paths] == sorted(p.name for p in out.paths)
    assert out.captions[0] == "a grey thing" and out.captions[1].startswith("a photo of a red")
    assert out.unpaired == [] and out.skipped == []
    r = alignment_difficulty(out.image, out.text, scale=None)
    assert 0 <= r.ad < 0.2


def test_skips_and_counts_bad_files(tmp_path):
    root = write_dataset(tmp_path / "ds", n_per_colour=2)
    (root / "broken.png").write_bytes(b"not a png at all")
    (root / "broken.txt").write_text("a photo of a red square")
    Image.new("RGB", (4, 4)).save(root / "nocaption.jpeg")
    Image.new("RGB", (4, 4)).save(root / "empty.png")
    (root / "empty.txt").write_text("  \n")
    Image.new("RGB", (4, 4)).save(root / "latin1.png")
    (root / "latin1.txt").write_bytes(b"caf\xe9")
    pairs = find_pairs(root)
    assert [p.name for p in pairs.unpaired] == ["nocaption.jpeg"]
    assert {p.name for p, _ in pairs.skipped} == {"empty.png", "latin1.png"}
    out = embed_folder(root, FakeEmbedder(), batch_size=3, progress=False)
    assert len(out.paths) == 6
    reasons = {p.name: why for p, why in out.skipped}
    assert set(reasons) == {"broken.png", "empty.png", "latin1.png"}
    assert "unreadable image" in reasons["broken.png"]
    lines = summarise_skips(out)
    assert any("1 image(s) without a .txt caption" in s for s in lines)
    assert any("3 file(s) skipped" in s for s in lines)


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="is not a directory"):
        find_pairs(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no usable image/caption pairs"):
        embed_folder(tmp_path / "empty", FakeEmbedder(), progress=False)

    class Bad(FakeEmbedder):
        def encode_texts(self, texts):
            return np.zeros((len(texts) + 1, 4))

    root = write_dataset(tmp_path / "ds", n_per_colour=1)
    with pytest.raises(ValueError, match=r"embedder: texts returned shape \(4, 4\) for 3 inputs"):
        embed_folder(root, Bad(), progress=False)
