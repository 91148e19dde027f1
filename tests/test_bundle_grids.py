"""Run bundles carry one labelled grid per C_P: no near-duplicate per-(C_P, seed) set beside it,
and every grid says its level, each row's concept (and whether it is poisoned) and its columns."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from core.figures.export import labelled_grid
from core.figures.images import compose_grid
from core.results.export import bundle_run
from core.results.pack import load_pack

DEMO = Path(__file__).resolve().parents[1] / "assets" / "demo"


def test_labelled_grid_adds_a_title_and_row_labels():
    images = np.zeros((3, 2, 8, 8, 3), dtype=np.uint8)
    plain = compose_grid(images, factor=2)
    out = labelled_grid(images, ["a", "b (poisoned)", "c"], "C_P = 1", "samples")
    assert out.shape[0] > plain.shape[0] and out.shape[1] > plain.shape[1]
    margin = out[40:, : out.shape[1] - plain.shape[1]]
    assert (margin < 128).any()  # text drawn beside the rows
    assert (out[:20] < 128).any()  # the title line


def test_bundle_has_one_labelled_grid_per_level_and_no_duplicates():
    z = zipfile.ZipFile(io.BytesIO(bundle_run(DEMO)))
    grids = sorted(n for n in z.namelist() if n.startswith("grids/"))
    levels = load_pack(DEMO).levels
    assert grids == [f"grids/generations_cp{c:03d}.png" for c in sorted(levels)]
    img = np.asarray(Image.open(io.BytesIO(z.read(grids[-1]))))
    k = len(load_pack(DEMO).concepts)
    plain = compose_grid(load_pack(DEMO).generations()[levels[-1]], factor=2)
    assert img.shape[0] == plain.shape[0] + 40 and img.shape[1] > plain.shape[1]
    assert k == load_pack(DEMO).generations()[levels[-1]].shape[0]
