"""A tiny deterministic stand-in for core.models.dual's embedder (4-D embeddings)."""

from __future__ import annotations

import zlib

import numpy as np

COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}


class FakeEmbedder:
    def __init__(self):
        self.image_batches: list[int] = []
        self.modes: set[str] = set()

    def encode_images(self, images):
        self.image_batches.append(len(images))
        self.modes.update(im.mode for im in images)
        out = [
            np.r_[np.asarray(im, dtype=np.float32).mean(axis=(0, 1)) / 255, 0.5] for im in images
        ]
        return np.stack(out).astype(np.float32)

    def encode_texts(self, texts):
        out = []
        for t in texts:
            rgb = next((c for w, c in COLOURS.items() if w in t), (80, 80, 80))
            jitter = (zlib.crc32(t.encode()) % 100) / 1000
            out.append(np.r_[np.array(rgb) / 255, 0.5 + jitter])
        return np.stack(out).astype(np.float32)


def write_dataset(root, n_per_colour=3):
    """PNG/JPEG images of solid colours with matching captions; returns the folder."""
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    k = 0
    for name, rgb in COLOURS.items():
        for i in range(n_per_colour):
            suffix, mode = [(".png", "RGB"), (".jpg", "RGB"), (".PNG", "RGBA")][i % 3]
            im = Image.new(mode, (8, 8), rgb if mode == "RGB" else (*rgb, 255))
            im.save(root / f"img_{k:03d}{suffix}")
            (root / f"img_{k:03d}.txt").write_text(f"a photo of a {name} square {i}\n")
            k += 1
    return root
