"""One image loader and one folder rule for every dataset path (issue 13).

``ad --dataset`` (core.metrics.folder) and the real-data loader (core.data.captioned) read the
same pairs from the same folder, sub-folders included, and the same pixels from a 16-bit PNG.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from core.data.captioned import iter_records, load_image
from core.metrics.folder import _load_rgb, find_pairs


def _dataset(root):
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / ".hidden").mkdir()
    ramp = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).astype(np.uint16)  # 0..63000
    Image.fromarray(ramp).save(root / "grey16.png")  # 16-bit grayscale PNG
    (root / "grey16.txt").write_text("a grey ramp")
    Image.new("RGB", (8, 8), (200, 10, 10)).save(root / "sub" / "red.png")
    (root / "sub" / "red.txt").write_text("a red square")
    Image.new("RGB", (8, 8), (10, 10, 200)).save(root / "sub" / "deeper" / "blue.jpg")
    (root / "sub" / "deeper" / "blue.txt").write_text("a blue square")
    Image.new("RGB", (8, 8)).save(root / ".hidden" / "x.png")
    (root / ".hidden" / "x.txt").write_text("hidden")
    return ramp


def test_ad_dataset_and_real_loader_share_folder_and_pixel_rules(tmp_path):
    ramp = _dataset(tmp_path)
    pairs = find_pairs(tmp_path)
    records = list(iter_records(tmp_path))
    assert [p.relative_to(tmp_path).as_posix() for p in pairs.images] == [
        "grey16.png",
        "sub/red.png",
        "sub/deeper/blue.jpg",
    ]
    assert [r.image for r in records] == pairs.images
    assert [r.caption for r in records] == pairs.captions
    # 16-bit: scaled by the bit depth (v / 65535 · 255), not clipped to near-white.
    ad_pixels = np.asarray(_load_rgb(tmp_path / "grey16.png"))
    expected = np.round(ramp.astype(np.float64) * 255 / 65535).astype(np.uint8)
    assert ad_pixels.shape == (8, 8, 3)
    np.testing.assert_array_equal(ad_pixels[..., 0], expected)
    real = load_image(tmp_path / "grey16.png", 8)
    np.testing.assert_allclose((real[0] + 1) * 127.5, expected, atol=1e-3)
    assert ad_pixels.mean() < 200  # near-white was the bug
