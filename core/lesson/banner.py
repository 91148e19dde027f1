"""What a run is, in one line: the settings every explorer page names above its figures, and a
warning when the run is a smoke test whose numbers say nothing about implosion."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Below these a run checks the pipeline, not the science: ci-smoke's 2 fine-tune steps, 4 clean
# pairs per concept and 1 judged sample per concept.
SMOKE_PRESETS = ("ci-smoke",)
MIN_STEPS = 10
MIN_CLEAN = 8
MIN_EVAL = 2


@dataclass(frozen=True)
class RunSettings:
    """``line``: the settings as one sentence; ``smoke``: why the run is a smoke test, or None."""

    line: str
    smoke: str | None


def _levels(levels: list[int]) -> str:
    if len(levels) > 4:
        return f"C_P {levels[0]}…{levels[-1]} ({len(levels)} levels)"
    return "C_P " + ", ".join(map(str, levels))


def run_settings(config: dict[str, Any], concepts: list[str] | None = None) -> RunSettings:
    """The settings of a pack's ``results.json["config"]`` (preset, fine-tune, poisons, levels,
    seeds, targets) as one line, and the smoke-test reason when there is one."""
    ft = config.get("finetune") or {}
    steps = ft.get("steps")
    parts: list[str] = []
    if config.get("preset"):
        parts.append(f"preset {config['preset']}")
    if steps is not None:
        how = ft.get("params")
        named = {"lora": f"LoRA rank {ft.get('lora_rank')}", "all": "all weights"}
        what = named.get(str(how), str(how or ""))
        lr = f", lr {ft['lr']:g}" if isinstance(ft.get("lr"), (int, float)) else ""
        parts.append(f"{steps} fine-tune steps" + (f" ({what}{lr})" if what else ""))
    if config.get("method"):
        mode = config.get("poison_mode")
        ratio = config.get("poison_ratio")
        extra = f", {mode} ×{ratio:g}" if mode and isinstance(ratio, (int, float)) else ""
        parts.append(f"{config['method']} poisons{extra}")
    levels = [int(c) for c in config.get("levels") or []]
    if levels:
        parts.append(_levels(levels))
    seeds = config.get("seeds") or []
    if seeds:
        parts.append(f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''}")
    order = [int(i) for i in config.get("poison_order") or []]
    names = concepts or [str(c) for c in config.get("concepts") or []]
    if levels and len(levels) <= 2 and order and names:
        top = order[: max(levels)]
        shown = [names[i] for i in top[:3] if 0 <= i < len(names)]
        more = f" + {len(top) - 3} more" if len(top) > 3 else ""
        parts.append("poisoned: " + " + ".join(shown) + more)
    elif len(seeds) > 1:
        parts.append("each seed poisons its own concepts")
    smoke = None
    n_clean = config.get("n_clean_per_concept")
    n_eval = config.get("eval_samples")
    why = []
    if config.get("preset") in SMOKE_PRESETS:
        why.append(f"preset {config['preset']}")
    if isinstance(steps, int) and steps < MIN_STEPS:
        why.append(f"{steps} fine-tune steps")
    if isinstance(n_clean, int) and n_clean < MIN_CLEAN:
        why.append(f"{n_clean} clean pairs per concept")
    if isinstance(n_eval, int) and n_eval < MIN_EVAL:
        why.append(f"{n_eval} judged sample per concept")
    if why:
        smoke = (
            "Smoke-test run (" + ", ".join(why) + "): it checks that the pipeline works; its "
            "numbers and images say nothing about implosion. Open the demo for the lesson."
        )
    return RunSettings(" · ".join(parts) or "settings not recorded", smoke)
