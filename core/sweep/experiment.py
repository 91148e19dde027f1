"""A single poisoning run (job kind ``finetune``): poison chosen concepts, fine-tune, judge.

Config (all optional but ``concepts``)::

    {"concepts": ["large red star", ...] | [ids], "method": "dirty-label" | "nightshade",
     "targets": "random" | "nearest" | "farthest" | {"large red star": "small blue ring"},
     "budget": 1.0 (ratio) | 16 (count), "mode": "add" | "substitute", "epsilon": 0.063,
     "steps": 200, "batch": 64, "lr": 2e-4, "params": "all" | "cross-attention",
     "n_clean_per_concept": 32, "probe_every": 25, "eval_samples": 4, "model": path, "seed": 0}

Writes probe grids (fixed seeds; rows: poisoned, related, unrelated concepts) to ``samples/``,
resumable checkpoints (UNet weights + optimizer + step) and, at the end, the fine-tuned model in
``<run>/model`` (loadable with MiniLDM.from_pretrained) and the metrics in ``result.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from core.evaluate.judged import evaluate_model
from core.metrics import alignment_difficulty
from core.models.ldm import MiniLDM
from core.poison.builders import PoisonConfig, build_poison
from core.results.grid import save_grid
from core.training.finetune import FinetuneConfig, encode_images, finetune_unet, make_pairs
from core.world import World


def resolve_concepts(world: World, items: list[Any], field: str = "concepts") -> tuple[int, ...]:
    """Concept names or ids → ids (ValueError lists valid names)."""
    out = []
    for it in items:
        if isinstance(it, int) and not isinstance(it, bool):
            if not 0 <= it < world.n_concepts:
                raise ValueError(f"{field}: id {it} out of range 0..{world.n_concepts - 1}")
            out.append(it)
        else:
            out.append(world.index(str(it)))
    return tuple(out)


def poison_config(world: World, cfg: dict[str, Any]) -> PoisonConfig:
    concepts = resolve_concepts(world, list(cfg.get("concepts") or []))
    targets: Any = cfg.get("targets", "random")
    if isinstance(targets, dict):
        targets = tuple(
            (resolve_concepts(world, [a], "targets")[0], resolve_concepts(world, [b], "targets")[0])
            for a, b in targets.items()
        )
    pc = PoisonConfig(
        concepts=concepts,
        method=cfg.get("method", "dirty-label"),
        targets=targets,
        budget=cfg.get("budget", 1.0),
        mode=cfg.get("mode", "add"),
        epsilon=cfg.get("epsilon", 16 / 255),
        steps=cfg.get("pgd_steps", 60),
        seed=cfg.get("seed", 0),
    )
    pc.validate(world)
    return pc


def probe_concepts(world: World, poisoned: tuple[int, ...]) -> dict[str, list[int]]:
    """Up to 3 poisoned, 3 related (≥ 2 shared words) and 3 unrelated concepts for probes."""
    pois = list(poisoned)[:3]
    rel = [
        i
        for i in range(world.n_concepts)
        if i not in poisoned and max(world.relation[i, j] for j in poisoned) >= 2
    ]
    unrel = [i for i in range(world.n_concepts) if i not in poisoned and i not in rel]
    return {"poisoned": pois, "related": rel[:3], "unrelated": unrel[:3]}


def run_job(config: dict[str, Any], ctx: Any) -> dict[str, Any]:
    from core.io import default_base

    torch.set_num_threads(max(1, torch.get_num_threads()))
    model_dir = Path(config["model"]) if config.get("model") else default_base()
    ldm = MiniLDM.from_pretrained(model_dir, ctx.device if ctx.device.startswith("cuda") else "cpu")
    world = ldm.world
    pc = poison_config(world, config)
    ft = FinetuneConfig(
        steps=int(config.get("steps", 200)),
        batch=int(config.get("batch", 64)),
        lr=float(config.get("lr", 2e-4)),
        params=config.get("params", "all"),
        seed=int(config.get("seed", 0)),
    )
    n_clean = int(config.get("n_clean_per_concept", 32))
    probe_every = max(1, int(config.get("probe_every", 25)))
    ctx.progress(0, ft.steps, message="building poison")
    clean = world.sample(n_clean, seed=10_000 + ft.seed)
    poison = build_poison(world, pc, n_clean, vae=ldm.vae, device=ldm.device)
    drop = np.zeros(len(clean), dtype=bool)
    for a, n in poison.substitute.items():
        drop[np.flatnonzero(clean.labels == a)[:n]] = True
    images = np.concatenate([clean.images[~drop], poison.images])
    captions = [c for c, d in zip(clean.captions, drop) if not d] + poison.captions
    mean, std = encode_images(ldm, images)
    data = make_pairs(ldm, mean, std, np.arange(len(captions)), captions)
    # AD before/after poisoning, in the dual encoder's joint space
    x = ldm.image_embeds(torch.from_numpy(images)).cpu().numpy()
    y = ldm.text_embeds(captions).cpu().numpy()
    n_kept = int((~drop).sum())
    ad_clean = alignment_difficulty(x[:n_kept], y[:n_kept], scale=None)
    ad_poisoned = alignment_difficulty(x, y, scale=None)
    probes = probe_concepts(world, pc.concepts)
    probe_ids = [i for g in probes.values() for i in g]
    start, opt_state = 0, None
    if (ck := ctx.latest_checkpoint()) is not None:
        ldm.unet.load_state_dict(load_file(str(ck / "unet.safetensors")))
        opt_state = torch.load(ck / "optimizer.pt", weights_only=True)
        start = int((ck / "step.txt").read_text())

    def save_ckpt(step: int, opt: dict[str, Any]) -> None:
        def writer(p: Path) -> None:
            p.mkdir()
            save_file(
                {k: v.contiguous() for k, v in ldm.unet.state_dict().items()},
                str(p / "unet.safetensors"),
            )
            torch.save(opt, p / "optimizer.pt")
            (p / "step.txt").write_text(str(step))

        ctx.save_checkpoint(f"step-{step:06d}", writer, keep=2)

    def probe(step: int) -> None:
        prompts = [world.concepts[i].caption(0) for i in probe_ids for _ in range(4)]
        imgs = ldm.sample(prompts, seed=0, steps=10)
        save_grid(imgs, ctx.samples_dir / f"step-{step:06d}.png", ncol=4)
        ldm.unet.train()

    chunk = probe_every
    step = start
    result: dict[str, Any] = {}
    while step < ft.steps:
        end = min(ft.steps, step + chunk)
        r = finetune_unet(
            ldm,
            data,
            FinetuneConfig(**{**ft.to_dict(), "steps": end}),
            on_step=lambda s, t, lo: ctx.progress(s, ft.steps, loss=lo),
            should_stop=ctx.should_stop,
            start_step=step,
            optimizer_state=opt_state,
        )
        opt_state, step = r.pop("optimizer"), r["steps"]
        save_ckpt(step, opt_state)
        probe(step)
        if step < end:  # stopped or cancelled
            return {"stopped_at": step}
        result = r
    ldm.unet.eval()
    ctx.progress(ft.steps, ft.steps, message="evaluating")
    ev = evaluate_model(ldm, int(config.get("eval_samples", 4)), seed=0, steps=10)
    ldm.save_pretrained(Path(ctx.run_dir) / "model", extra={"poison": config})
    return {
        "ad_clean": ad_clean.to_dict(),
        "ad_poisoned": ad_poisoned.to_dict(),
        "poison": {
            "targets": {world.names[a]: world.names[b] for a, b in poison.targets.items()},
            **poison.report,
        },
        "probes": {g: [world.names[i] for i in ids] for g, ids in probes.items()},
        "accuracy": ev["accuracy"],
        "per_concept": ev["per_concept"],
        "incoherence": ev["incoherence"],
        "alignment": ev["alignment"],
        "finetune": result,
    }
