"""Image grids as PNG (atomic writes)."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from core.io import atomic_write_bytes


def grid_array(
    images: torch.Tensor | np.ndarray, ncol: int | None = None, pad: int = 2, scale: int = 2
) -> np.ndarray:
    """Tile images (N, 3, S, S) in [-1, 1] (or (N, S, S, 3) uint8) into one (H, W, 3) uint8 array."""
    if isinstance(images, torch.Tensor):
        from core.models.ldm import to_uint8

        arr = to_uint8(images)
    else:
        arr = images
    n, s = arr.shape[0], arr.shape[1]
    ncol = ncol or min(n, 8)
    nrow = math.ceil(n / ncol)
    out = np.full((nrow * (s + pad) + pad, ncol * (s + pad) + pad, 3), 255, np.uint8)
    for i in range(n):
        r, c = divmod(i, ncol)
        out[
            pad + r * (s + pad) : pad + r * (s + pad) + s,
            pad + c * (s + pad) : pad + c * (s + pad) + s,
        ] = arr[i]
    if scale > 1:
        out = out.repeat(scale, 0).repeat(scale, 1)
    return out


def png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def save_grid(images: torch.Tensor | np.ndarray, path: Path, ncol: int | None = None) -> None:
    """Write a grid PNG atomically."""
    atomic_write_bytes(Path(path), png_bytes(grid_array(images, ncol)))
