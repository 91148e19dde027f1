"""How far can a bounded perturbation move the mini VAE's latent? (issue 4, claim (d))

For 16 images of a source concept and 16 anchors of the target (natural images of the target, or
the base model's own generations of it), run Nightshade-style PGD at several L∞ budgets and report
the share of the latent distance closed and the SSIM to the original. Writes
bench/results/nightshade_eps.json.

    python bench/nightshade_eps.py [--steps 60 200]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.commands.base import default_base  # noqa: E402
from core.io import atomic_write_json, run_metadata  # noqa: E402
from core.models.ldm import MiniLDM  # noqa: E402
from core.poison.builders import nightshade_perturb  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, nargs="+", default=[60])
    ap.add_argument(
        "--eps255",
        type=float,
        nargs="+",
        default=[16, 32, 64, 128],
        help="L∞ budgets in 1/255 of the [-1, 1] range",
    )
    ap.add_argument("--out", type=Path, default=Path("bench/results/nightshade_eps.json"))
    args = ap.parse_args()
    ldm = MiniLDM.from_pretrained(default_base())
    w = ldm.world
    a, b = w.index("large red circle"), w.index("small blue square")
    x = w.sample(16, seed=1, concepts=[a]).images
    anchors = {
        "natural": w.sample(16, seed=2, concepts=[b]).images,
        "generated": ldm.sample([w.concepts[b].caption(0)] * 16, seed=3).numpy(),
    }
    rows = []
    for name, anc in anchors.items():
        for e in args.eps255:
            for steps in args.steps:
                t0 = time.time()
                _, r = nightshade_perturb(ldm.vae, x, anc, e / 255, steps)
                rows.append(
                    {
                        "anchors": name,
                        "eps255": e,
                        "pgd_steps": steps,
                        "seconds": round(time.time() - t0, 1),
                        **r,
                    }
                )
                print(
                    f"{name:9s} ε={e:5.0f}/255 steps={steps:3d} latent gap closed "
                    f"{r['latent_distance_reduction']:.3f}  SSIM {r['ssim']:.3f}",
                    flush=True,
                )
    atomic_write_json(
        args.out,
        {"source": w.names[a], "target": w.names[b], "rows": rows, "metadata": run_metadata(0)},
    )


if __name__ == "__main__":
    main()
