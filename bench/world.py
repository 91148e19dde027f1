"""Benchmark: time to render 30,000 concept-world images (prints and writes bench/results/world.json)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from core.world import World, WorldConfig


def main() -> None:
    out = {}
    for size in (32, 64):
        w = World(WorldConfig(image_size=size))
        t = time.perf_counter()
        d = w.sample(30_000 // w.n_concepts + 1, seed=0)
        out[f"{size}px"] = {"images": len(d), "seconds": round(time.perf_counter() - t, 2)}
        print(f"{size} px: {len(d)} images in {out[f'{size}px']['seconds']} s")
    Path("bench/results").mkdir(parents=True, exist_ok=True)
    Path("bench/results/world.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
