"""Fixtures for the real-model tests: tiny random SD and SDXL folders, a tiny CLIP, a messy dataset."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="session")
def tiny_sd_dir(tmp_path_factory):
    """A tiny random SD folder (32 px, PNDM scheduler config as SD ships); read-only."""
    from core.models.tiny import build_tiny_sd

    return build_tiny_sd(tmp_path_factory.mktemp("sd") / "tiny-sd", resolution=32)


@pytest.fixture(scope="session")
def tiny_sdxl_dir(tmp_path_factory):
    """A tiny random SDXL base folder (32 px, two text encoders, text_time UNet); read-only."""
    from core.models.tiny import build_tiny_sdxl

    return build_tiny_sdxl(tmp_path_factory.mktemp("sdxl") / "tiny-sdxl", resolution=32)


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory):
    """A tiny random transformers CLIPModel + processor folder; read-only."""
    from core.models.tiny import build_tiny_clip

    return build_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-clip", image_size=32)


def _img(rng, w, h, mode="RGB"):
    arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    return Image.fromarray(arr).convert(mode)


@pytest.fixture(scope="session")
def messy_data(tmp_path_factory):
    """10 image-ish files: RGB PNG/JPG, grayscale, RGBA, CMYK JPEG, a large image, a corrupt
    file, a duplicate name, a caption without image, an image without caption, a non-image."""
    d = tmp_path_factory.mktemp("data") / "messy"
    d.mkdir()
    rng = np.random.default_rng(0)
    items = [
        ("dog_0.png", "RGB", (32, 32), "a photo of a dog"),
        ("dog_1.jpg", "RGB", (48, 36), "a dog on the grass"),
        ("dog_2.png", "L", (32, 32), "a sleepy dog"),
        ("cat_0.png", "RGBA", (32, 32), "a cat sitting"),
        ("cat_1.jpg", "CMYK", (36, 36), "two cats playing"),
        ("cat_2.png", "RGB", (200, 100), "a black cat"),
        ("car.png", "RGB", (32, 32), "a red car"),
        ("car.jpg", "RGB", (32, 32), None),  # duplicate name of car.png
        ("lonely.png", "RGB", (32, 32), None),  # no caption
    ]
    for name, mode, (w, h), cap in items:
        _img(rng, w, h, mode).save(d / name)
        if cap:
            (d / name).with_suffix(".txt").write_text(cap)
    (d / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not really a png")
    (d / "corrupt.txt").write_text("a dog that will not load")
    (d / "orphan.txt").write_text("a caption with no image")
    (d / "notes.md").write_text("not an image")
    return d
