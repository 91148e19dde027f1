"""Is a *pattern* difference easier to poison than a colour or shape difference? (next step 1)

The encoder gate fails in this world because concepts differ by colour, size and shape, which a
trained encoder reads as smooth local means. Natural concepts differ in mid/high-frequency
structure. Before redesigning the world around a pattern attribute, measure it on a trained VAE:
sources and anchors of the **same concept**, drawn with different patterns (stripes, checks,
dots: the textured style draws one at random per image; here it is forced), PGD toward the anchor
as in the gate, and the share of the latent gap closed — beside the same VAE's gap closed toward
other concepts (the gate's protocol), so the two are compared on one encoder in one run.

    nice -n 5 python3 bench/science/pattern_gap.py --vae build/science/vae_v2/c16-l4-kl0-full64

Rows are appended to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from core.io import atomic_write_json, run_metadata  # noqa: E402
from core.models.config import VAEConfig, build_vae  # noqa: E402
from core.poison.builders import nightshade_perturb  # noqa: E402
from core.world import World, WorldConfig  # noqa: E402

HELD_OUT_SEED = 90_000


class ForcedPattern:
    """A numpy Generator whose pattern draw (``integers(0, 3, (n,))``, the textured style's only
    draw of that form) returns ``pattern``; every other draw is the wrapped generator's."""

    def __init__(self, rng: np.random.Generator, pattern: np.ndarray) -> None:
        self._rng, self._pattern = rng, pattern

    def integers(self, low: Any, high: Any = None, size: Any = None, **kw: Any) -> Any:
        if low == 0 and high == 3 and size == (len(self._pattern),):
            self._rng.integers(low, high, size)  # keep the stream in step
            return self._pattern.copy()
        return self._rng.integers(low, high, size, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._rng, name)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--vae", type=Path, required=True, help="a vae_v2.py run folder")
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--eps255", type=float, nargs="+", default=[8, 16])
    ap.add_argument("--pgd-steps", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("bench/results/world_v2_pattern_gap.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    a = json.loads((args.vae / "args.json").read_text())
    cfg = VAEConfig(
        channels=tuple(json.loads(a["channels"])),
        latent_channels=int(a["latent"]),
        layers_per_block=int(a["layers"]),
    )
    world = World(WorldConfig(image_size=64, style="textured", texture=float(a["texture"])))
    vae = build_vae(cfg, 64)
    vae.load_state_dict(load_file(str(args.vae / "vae.safetensors")))
    vae.eval()

    n, k = args.images, world.n_concepts
    rng = np.random.default_rng(HELD_OUT_SEED)
    src_c = np.arange(n) % k
    p_src = rng.integers(0, 3, n)
    p_anc = (p_src + rng.integers(1, 3, n)) % 3  # a different pattern
    other_c = (src_c + rng.integers(1, k, n)) % k
    src = world.render(src_c, ForcedPattern(np.random.default_rng([HELD_OUT_SEED, 1]), p_src))  # type: ignore[arg-type]
    anchors = {
        "same concept, other pattern": world.render(
            src_c,
            ForcedPattern(np.random.default_rng([HELD_OUT_SEED, 2]), p_anc),  # type: ignore[arg-type]
        ),
        "same concept, same pattern": world.render(
            src_c,
            ForcedPattern(np.random.default_rng([HELD_OUT_SEED, 2]), p_src),  # type: ignore[arg-type]
        ),
        "other concept (the gate)": world.render(
            other_c,
            ForcedPattern(np.random.default_rng([HELD_OUT_SEED, 2]), p_src),  # type: ignore[arg-type]
        ),
    }
    rows = []
    for name, anc in anchors.items():
        for e in args.eps255:
            t, load = time.time(), round(os.getloadavg()[0], 2)
            _, r = nightshade_perturb(vae, src, anc, 2 * e / 255, args.pgd_steps, batch=64)
            row = {
                "anchor": name,
                "eps255": e,
                "gap_closed": round(r["latent_distance_reduction"], 4),
                "latent_distance_before": round(r["latent_distance_before"], 4),
                "ssim": round(r["ssim"], 4),
                "seconds": round(time.time() - t, 1),
                "load_before": load,
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    out = json.loads(args.out.read_text()) if args.out.exists() else {"rows": []}
    out["rows"].append(
        {"vae": str(args.vae), "images": n, "budgets": rows, "metadata": run_metadata(0)}
    )
    atomic_write_json(args.out, out)


if __name__ == "__main__":
    main()
