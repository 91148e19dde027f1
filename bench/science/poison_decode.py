"""Does a Nightshade-style poison *decode* to its target concept? (the gate's downstream question)

The encoder gate (``vae_v2.py``) asks how much of the latent gap to an anchor of another concept
a bounded pixel change closes. What the attack needs is narrower: the fine-tuned model learns the
poison's latent for the source caption, so the poison works when that latent *decodes to the
target concept*. This script measures that on a VAE trained by ``vae_v2.py``:

1. a 64-px judge (the base's ``Judge``, trained here on textured-world images and their
   reconstructions through this VAE, as ``train-base`` does; cached under the VAE's run folder);
2. for held-out sources (world seed 90,000, cycling through the concepts), each toward a held-out
   anchor of a random other concept, PGD (``nightshade_perturb``, 200 sign steps) at each budget;
3. the judge's verdict on the poison image itself (should still read as the source: stealth)
   and on D(E(poison)) (target = the attack carries; source = it does not), with Wilson 95 %
   intervals, beside the gap closed and SSIM.

Rows are appended to ``--out`` (nothing overwritten).

    nice -n 10 python bench/science/poison_decode.py --vae build/science/vae_v2/c16-l4-kl0-full64
"""

from __future__ import annotations

import argparse
import json
import math
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
from core.models.judge import Judge, judge_scores  # noqa: E402
from core.poison.builders import nightshade_perturb  # noqa: E402
from core.training.common import batches, warmup_cosine  # noqa: E402
from core.world import World, WorldConfig  # noqa: E402

HELD_OUT_SEED = 90_000


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def wilson(k: int, n: int) -> tuple[float, float]:
    """Wilson 95 % interval of a proportion k / n."""
    if n == 0:
        return (0.0, 1.0)
    z = 1.96
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (round(max(0.0, c - h), 4), round(min(1.0, c + h), 4))


@torch.no_grad()
def reconstruct(vae: Any, x: torch.Tensor, sample: bool = False) -> torch.Tensor:
    out = []
    for i in range(0, x.shape[0], 128):
        d = vae.encode(x[i : i + 128]).latent_dist
        out.append(vae.decode(d.sample() if sample else d.mean).sample.clamp(-1, 1))
    return torch.cat(out)


def train_judge(
    world: World, vae: Any, path: Path, steps: int, batch: int, width: int
) -> tuple[Judge, dict[str, Any]]:
    """The base's judge recipe (real images + one reconstruction each), cached at ``path``."""
    if (path / "model.safetensors").exists():
        info = json.loads((path / "train.json").read_text())
        return Judge.load(path), info
    t0 = time.time()
    data = world.sample(100, seed=0)
    x = torch.from_numpy(data.images)
    attrs = torch.from_numpy(world.attribute_ids)[torch.from_numpy(data.labels)]
    pool = torch.cat([x, reconstruct(vae, x, sample=True)])
    pool_attrs = torch.cat([attrs, attrs])
    judge = Judge(len(world.sizes), len(world.colours), len(world.shapes), width).train()
    opt = torch.optim.AdamW(judge.parameters(), lr=2e-3, weight_decay=0.01)
    sched = warmup_cosine(opt, steps)
    g = torch.Generator().manual_seed(0)
    nxt = batches(pool.shape[0], batch, g)
    loss_v = float("nan")
    for step in range(steps):
        idx = nxt()
        loss = judge.loss(pool[idx], pool_attrs[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        loss_v = float(loss.detach())
        if (step + 1) % 100 == 0:
            print(f"judge step {step + 1} loss {loss_v:.3f} load {_load()}", flush=True)
    judge.eval()
    held = world.sample(8, seed=HELD_OUT_SEED + 7)
    hx = torch.from_numpy(held.images)
    table = torch.from_numpy(world.attribute_ids)
    truth = torch.from_numpy(held.labels)
    with torch.no_grad():
        acc = float((judge_scores(judge, hx, table).predicted == truth).float().mean())
        acc_rec = float(
            (judge_scores(judge, reconstruct(vae, hx), table).predicted == truth).float().mean()
        )
    info = {
        "steps": steps,
        "batch": batch,
        "width": width,
        "final_loss": round(loss_v, 4),
        "heldout_accuracy": round(acc, 4),
        "heldout_recon_accuracy": round(acc_rec, 4),
        "seconds": round(time.time() - t0, 1),
        "load_end": _load(),
    }
    judge.save(path)
    atomic_write_json(path / "train.json", info)
    print(f"judge: {info}", flush=True)
    return judge, info


def verdicts(pred: torch.Tensor, src: np.ndarray, tgt: np.ndarray) -> dict[str, Any]:
    p = pred.numpy()
    n = len(p)
    k_t, k_s = int((p == tgt).sum()), int((p == src).sum())
    return {
        "target": round(k_t / n, 4),
        "target_ci": wilson(k_t, n),
        "source": round(k_s / n, 4),
        "source_ci": wilson(k_s, n),
        "neither": round((n - k_t - k_s) / n, 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--vae", type=Path, help="a vae_v2.py run folder")
    src.add_argument("--model", type=Path, help="a train-base model folder (its judge too)")
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--pgd-steps", type=int, default=200)
    ap.add_argument("--eps255", type=float, nargs="+", default=[8, 16, 32])
    ap.add_argument("--judge-steps", type=int, default=800)
    ap.add_argument("--judge-batch", type=int, default=64)
    ap.add_argument("--judge-width", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--target",
        choices=["random", "same-colour", "same-colour-size"],
        default="random",
        help="which other concept each poison aims at: any, or one sharing colour (and size)",
    )
    ap.add_argument("--out", type=Path, default=Path("bench/results/world_v2_poison_decode.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.model:  # a train-base model: its own VAE, world and judge
        from core.models.ldm import MiniLDM

        ldm = MiniLDM.from_pretrained(args.model)
        world, vae, judge = ldm.world, ldm.vae.eval(), ldm.judge.eval()
        judge_info: dict[str, Any] = {"model": str(args.model), "judge": "the base's own"}
    else:
        a = json.loads((args.vae / "args.json").read_text())
        cfg = VAEConfig(
            channels=tuple(json.loads(a["channels"])),
            latent_channels=int(a["latent"]),
            layers_per_block=int(a["layers"]),
        )
        world = World(
            WorldConfig(
                image_size=64,
                style="textured",
                texture=float(a["texture"]),
                noise=float(a.get("noise", 0.02)),
            )
        )
        vae = build_vae(cfg, 64)
        vae.load_state_dict(load_file(str(args.vae / "vae.safetensors")))
        vae.eval()
        judge, judge_info = train_judge(
            world, vae, args.vae / "judge64", args.judge_steps, args.judge_batch, args.judge_width
        )
    table = torch.from_numpy(world.attribute_ids)

    rng = np.random.default_rng(HELD_OUT_SEED)
    k = world.n_concepts
    src_c = np.arange(args.images) % k
    tgt_c = (src_c + rng.integers(1, k, args.images)) % k
    if args.target != "random":  # the attacker's choice: a target sharing these attributes
        a = world.attribute_ids
        share = {"same-colour": [1], "same-colour-size": [0, 1]}[args.target]
        for i, c in enumerate(src_c):
            cand = [j for j in range(k) if j != c and all(a[j, f] == a[c, f] for f in share)]
            tgt_c[i] = cand[int(rng.integers(len(cand)))]
    src = world.render(src_c, np.random.default_rng([HELD_OUT_SEED, 1]))
    anc = world.render(tgt_c, np.random.default_rng([HELD_OUT_SEED, 2]))
    with torch.no_grad():
        clean = {
            "source_image": verdicts(
                judge_scores(judge, torch.from_numpy(src), table).predicted, src_c, tgt_c
            ),
            "source_decoded": verdicts(
                judge_scores(judge, reconstruct(vae, torch.from_numpy(src)), table).predicted,
                src_c,
                tgt_c,
            ),
            "anchor_decoded": verdicts(
                judge_scores(judge, reconstruct(vae, torch.from_numpy(anc)), table).predicted,
                src_c,
                tgt_c,
            ),
        }
    print(f"clean: {clean}", flush=True)
    rows = []
    for e in args.eps255:
        t, load = time.time(), _load()
        poison, r = nightshade_perturb(vae, src, anc, 2 * e / 255, args.pgd_steps, batch=64)
        px = torch.from_numpy(poison)
        with torch.no_grad():
            on_image = verdicts(judge_scores(judge, px, table).predicted, src_c, tgt_c)
            dec = judge_scores(judge, reconstruct(vae, px), table)
        row = {
            "eps255": e,
            "gap_closed": round(r["latent_distance_reduction"], 4),
            "ssim": round(r["ssim"], 4),
            "poison_image": on_image,
            "poison_decoded": verdicts(dec.predicted, src_c, tgt_c),
            "decoded_undefined_rate": round(float(dec.undefined.float().mean()), 4),
            "seconds": round(time.time() - t, 1),
            "load_before": load,
            "load_after": _load(),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    out = json.loads(args.out.read_text()) if args.out.exists() else {"rows": []}
    out["rows"].append(
        {
            "vae": str(args.vae or args.model),
            "judge": judge_info,
            "images": args.images,
            "target": args.target,
            "pgd_steps": args.pgd_steps,
            "clean": clean,
            "budgets": rows,
            "metadata": run_metadata(0),
        }
    )
    atomic_write_json(args.out, out)


if __name__ == "__main__":
    main()
