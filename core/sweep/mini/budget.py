"""Poison-count sweep on one concept: how many samples each method needs (the paper's
claim that few Nightshade-style poisons do what many dirty-label ones do).

For each method (dirty-label, Nightshade-style) and poison count N_p, fine-tune the clean base on
clean pairs plus N_p poison pairs for one concept A (target B) and measure attack success: the
share of A's generations the judge reads as B. Writes ``budget.json`` atomically after every run
(resumable) with per-run records and, per method, the smallest N_p reaching ``success_level``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.evaluate.judged import generate_concepts, score_generations
from core.io import atomic_write_json, ensure_writable_dir, run_metadata
from core.models.ldm import MiniLDM
from core.poison.builders import PoisonConfig, build_poison
from core.training.finetune import FinetuneConfig, encode_images, finetune_unet, make_pairs


@dataclass(frozen=True)
class BudgetSweepConfig:
    concept: str = "large red circle"
    target: str = "small blue square"
    counts: tuple[int, ...] = (2, 5, 10, 20, 40)
    methods: tuple[str, ...] = ("nightshade", "dirty-label")
    n_clean_per_concept: int = 32
    epsilon: float = 16 / 255
    pgd_steps: int = 60
    anchors: str = "natural"  # natural images of B, or "generated" by the base for B's prompt
    finetune: FinetuneConfig = field(
        default_factory=lambda: FinetuneConfig(steps=60, batch=64, lr=5e-4)
    )
    eval_samples: int = 16
    eval_steps: int = 10
    success_level: float = 0.8
    seed: int = 0
    model: str | None = None

    def __post_init__(self) -> None:
        if not self.counts or any(c < 1 for c in self.counts):
            raise ValueError(f"counts must be positive poison counts, got {list(self.counts)}")
        bad = [m for m in self.methods if m not in ("nightshade", "dirty-label")]
        if bad:
            raise ValueError(f"methods: unknown {bad}; use nightshade and/or dirty-label")
        if self.anchors not in ("natural", "generated"):
            raise ValueError(f"anchors must be 'natural' or 'generated', got {self.anchors!r}")
        if not 0 < self.epsilon <= 0.5:
            raise ValueError(
                f"epsilon must be in (0, 0.5] ([-1, 1] pixel units), got {self.epsilon}"
            )
        if self.concept == self.target:
            raise ValueError("target: equals the poisoned concept; pick a different target")


def run_budget_sweep(
    config: BudgetSweepConfig,
    out: Path,
    on_progress: Callable[[int, int, str], None] | None = None,
) -> dict[str, Any]:
    from core.io import default_base

    out = ensure_writable_dir(Path(out), "out")
    ldm = MiniLDM.from_pretrained(Path(config.model) if config.model else default_base())
    world = ldm.world
    a, b = world.index(config.concept), world.index(config.target)
    base = {k: v.clone() for k, v in ldm.unet.state_dict().items()}
    clean = world.sample(config.n_clean_per_concept, seed=20_000 + config.seed)
    path = out / "budget.json"
    res: dict[str, Any] = {
        "config": _cfg(config),
        "records": [],
        "metadata": run_metadata(config.seed),
    }
    if path.exists():
        import json

        prev = json.loads(path.read_text())
        if prev.get("config") != res["config"]:
            raise ValueError(
                f"out: {path} holds a different budget sweep; choose a new --out folder"
            )
        res = prev
    done = {(r["method"], r["count"]) for r in res["records"]}
    anchor_fn = _generated_anchors(ldm, config.seed) if config.anchors == "generated" else None
    total = len(config.methods) * len(config.counts)
    for method in config.methods:
        for n_p in config.counts:
            if on_progress is not None:
                on_progress(len(res["records"]), total, f"{method} N_p={n_p}")
            if (method, n_p) in done:
                continue
            ldm.unet.load_state_dict(base)
            pc = PoisonConfig(
                concepts=(a,),
                method=method,  # type: ignore[arg-type]
                targets=((a, b),),
                budget=int(n_p),
                epsilon=config.epsilon,
                steps=config.pgd_steps,
                seed=config.seed,
            )
            poison = build_poison(
                world,
                pc,
                config.n_clean_per_concept,
                vae=ldm.vae,
                device=ldm.device,
                anchor_images=anchor_fn,
            )
            images = np.concatenate([clean.images, poison.images])
            caps = clean.captions + poison.captions
            mean, std = encode_images(ldm, images)
            data = make_pairs(ldm, mean, std, np.arange(len(caps)), caps)
            ft = finetune_unet(ldm, data, config.finetune)
            gen = generate_concepts(
                ldm, [a], config.eval_samples, seed=config.seed, steps=config.eval_steps
            )
            sc = score_generations(ldm, gen)
            pred = np.asarray(sc["predicted"])
            res["records"].append(
                {
                    "method": method,
                    "count": n_p,
                    "attack_success": float((pred == b).mean()),
                    "accuracy": float((pred == a).mean()),
                    "poison_report": poison.report,
                    "finetune_seconds": ft["seconds"],
                }
            )
            res["summary"] = summarize_budget(res["records"], config.success_level)
            atomic_write_json(path, res)
    res["summary"] = summarize_budget(res["records"], config.success_level)
    atomic_write_json(path, res)
    if on_progress is not None:
        on_progress(total, total, "done")
    return res


def _generated_anchors(ldm: MiniLDM, seed: int) -> Callable[[int, int], np.ndarray]:
    """Anchors as Nightshade picks them: the base model's own generations for B's prompt
    (20 DDIM steps, CFG 3), computed before any fine-tuning and cached per (B, n)."""
    base = {k: v.clone() for k, v in ldm.unet.state_dict().items()}
    cache: dict[tuple[int, int], np.ndarray] = {}

    def anchors(b: int, n: int) -> np.ndarray:
        if (b, n) not in cache:
            live = {k: v.clone() for k, v in ldm.unet.state_dict().items()}
            ldm.unet.load_state_dict(base)
            prompt = ldm.world.concepts[b].caption(0)
            cache[b, n] = ldm.sample([prompt] * n, seed=seed + 77).cpu().numpy()
            ldm.unet.load_state_dict(live)
        return cache[b, n]

    return anchors


def summarize_budget(records: list[dict[str, Any]], level: float) -> dict[str, Any]:
    """Per method: smallest count with attack_success ≥ level (None if never), and the ratio."""
    need: dict[str, int | None] = {}
    for m in sorted({r["method"] for r in records}):
        ok = sorted(
            r["count"] for r in records if r["method"] == m and r["attack_success"] >= level
        )
        need[m] = ok[0] if ok else None
    ns, dl = need.get("nightshade"), need.get("dirty-label")
    return {
        "samples_needed": need,
        "success_level": level,
        "ratio_nightshade_to_dirty": (ns / dl) if ns and dl else None,
    }


def _cfg(config: BudgetSweepConfig) -> dict[str, Any]:
    import json

    return json.loads(json.dumps(asdict(config)))
