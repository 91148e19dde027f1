"""Sweep settings: :class:`SweepConfig` (one mini-model sweep), the named presets and the
poisoning plan of a seed. Levels C_P are nested: level C_P poisons the first C_P concepts of the
seed's random order (core/sweep/mini/run.py explains the experiment)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, NamedTuple

from core.defend.config import DefenseConfig
from core.poison.plan import check_levels_and_seeds, poisoning_plan
from core.training.config import FinetuneConfig

POISON_MODES: tuple[str, ...] = ("add", "replace")


@dataclass(frozen=True)
class SweepConfig:
    """One sweep. levels: C_P values (ascending, ≤ K); seeds: one poisoning order each."""

    preset: str = "custom"
    levels: tuple[int, ...] = (0, 1, 2, 4, 8, 16, 24, 32)
    seeds: tuple[int, ...] = (0, 1, 2)
    n_clean_per_concept: int = 64
    poison_ratio: float = 1.0
    # "add": poison pairs join the clean data (a poisoned caption keeps its clean images too);
    # "replace": a poisoned concept's clean pairs are dropped, a pure structure conflict that
    # implodes deeper at the preset length (bench/results/science.md)
    poison_mode: str = "add"
    method: str = "dirty-label"
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    eval_samples: int = 8
    eval_steps: int = 20
    guidance: float = 3.0
    grid_samples: int = 4
    embeddings_per_level: int = 2048
    probe_every: int = 0  # fine-tune steps between training probes (0: none); mini/runner.py
    model: str | None = None
    device: str = "cpu"
    # A run on chosen concepts (Poison setup, `implosion finetune`): the poisoning order replacing
    # each seed's random one (level C_P poisons its first C_P) and optional explicit (A, B) targets;
    # see core.poison.plan.poisoning_plan. None: the seed's random order and targets.
    concepts: tuple[int, ...] | None = None
    targets: tuple[tuple[int, int], ...] | None = None
    # A defended sweep (core/defend): drop the pairs this detector flags at this false-positive
    # rate before each level's fine-tune (core/sweep/mini/runner.py). None: the attack undefended.
    defense: DefenseConfig | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "defense", DefenseConfig.coerce(self.defense))  # dict from JSON
        check_levels_and_seeds(self.levels, self.seeds, "0 4 8 16")
        if self.n_clean_per_concept < 1:
            raise ValueError(f"n_clean_per_concept must be ≥ 1, got {self.n_clean_per_concept}")
        if self.poison_ratio <= 0:
            raise ValueError(f"poison_ratio must be > 0, got {self.poison_ratio}")
        if self.poison_mode not in POISON_MODES:
            raise ValueError(
                f"poison_mode must be one of {', '.join(POISON_MODES)}, got {self.poison_mode!r}"
            )
        if self.method != "dirty-label":
            raise ValueError(f"method: the sweep supports 'dirty-label', got {self.method!r}")
        if self.probe_every < 0:
            raise ValueError(
                f"probe_every must be ≥ 0 (0 turns probes off), got {self.probe_every}"
            )
        if self.eval_samples < 1 or self.grid_samples < 1:
            raise ValueError("eval_samples and grid_samples must be ≥ 1")
        if self.grid_samples > self.eval_samples:
            raise ValueError(
                f"grid_samples ({self.grid_samples}) must be ≤ eval_samples ({self.eval_samples})"
            )
        if self.concepts is not None:
            if not self.concepts or len(set(self.concepts)) != len(self.concepts):
                raise ValueError(
                    f"concepts must be non-empty and distinct, got {list(self.concepts)}"
                )
            if self.levels[-1] > len(self.concepts):
                raise ValueError(
                    f"levels: C_P={self.levels[-1]} exceeds the {len(self.concepts)} chosen "
                    "concepts; choose more concepts or lower levels"
                )
        if self.targets is not None and self.concepts is None:
            raise ValueError("targets: explicit targets need a chosen concept list (concepts)")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> SweepConfig:
        d = dict(d)
        d["finetune"] = FinetuneConfig(**d.get("finetune", {}))
        for k in ("levels", "seeds"):
            if k in d:
                d[k] = tuple(d[k])
        if d.get("concepts") is not None:
            d["concepts"] = tuple(int(c) for c in d["concepts"])
        if d.get("targets") is not None:
            d["targets"] = tuple((int(a), int(b)) for a, b in d["targets"])
        return SweepConfig(**d)


# The CPU presets' attack and fine-tune (bench/results/science.md): poisons replace the
# poisoned captions' clean pairs, three per clean image (a pure structure conflict, with the poisoned
# captions outweighing the clean ones), and the fine-tune trains rank-1 LoRA adapters on the
# cross-attention projections (a text→image path too narrow to memorise each swap on its own).
# With all UNet weights and added poisons, implosion was a transient: unpoisoned accuracy at C_P 24
# went back to 70–80 % of clean with 3× the steps; with this it is 51 % of clean at 60 steps and
# 34 % at 180 (5 seeds), and clean fine-tunes stay at 1.00.
CPU_POISON_RATIO = 3.0
CPU_FINETUNE = FinetuneConfig(steps=60, batch=64, lr=3e-3, params="lora", lora_rank=1)
# The CPU presets' shared recipe (replace poisons ×3, rank-1 LoRA, 32 clean pairs per concept);
# each preset sets its levels, seeds, samples and probe interval.
CPU_RECIPE = SweepConfig(
    n_clean_per_concept=32,
    poison_ratio=CPU_POISON_RATIO,
    poison_mode="replace",
    finetune=CPU_FINETUNE,
    eval_steps=10,
    grid_samples=4,
)

PRESETS: dict[str, SweepConfig] = {
    "ci-smoke": SweepConfig(
        preset="ci-smoke",
        levels=(0, 2),
        seeds=(0,),
        n_clean_per_concept=4,
        finetune=FinetuneConfig(steps=2, batch=8),
        eval_samples=1,
        eval_steps=2,
        grid_samples=1,
        embeddings_per_level=64,
        probe_every=1,
    ),
    "cpu-quick": replace(
        CPU_RECIPE,
        preset="cpu-quick",
        levels=(0, 4, 16, 28, 32),
        seeds=(0, 1, 2),
        eval_samples=4,
        probe_every=20,
    ),
    "cpu-full": replace(
        CPU_RECIPE,
        preset="cpu-full",
        levels=(0, 1, 2, 4, 8, 16, 24, 32),
        seeds=(0, 1, 2, 3, 4),
        eval_samples=8,
        probe_every=10,
    ),
    "gpu-full": SweepConfig(
        preset="gpu-full",
        levels=(0, 1, 2, 4, 8, 16, 24, 32),
        seeds=(0, 1, 2),
        n_clean_per_concept=256,
        finetune=FinetuneConfig(steps=400, batch=256, lr=2e-4),
        eval_samples=16,
        eval_steps=20,
        grid_samples=4,
        probe_every=50,
        device="cuda",
    ),
}


class PresetNote(NamedTuple):
    """What a preset is for and how long it takes (``str()``: "duration: purpose")."""

    duration: str
    purpose: str

    def __str__(self) -> str:
        return f"{self.duration}: {self.purpose}"


# Each preset's description and duration, stated once (the Jobs page, Home and the CLI read it
# here). Durations measured with the whole preset on 2 CPU cores (bench/results/sweep_cpu.md):
# cpu-quick 6 min 36 s, cpu-full 19 min 54 s.
PRESET_NOTES: dict[str, PresetNote] = {
    "ci-smoke": PresetNote("seconds", "tiny model, for tests and smoke runs of the pipeline"),
    "cpu-quick": PresetNote("about 7 min on 2 CPU cores", "the trend, C_P 0–32, 3 seeds"),
    "cpu-full": PresetNote(
        "about 20 min on 2 CPU cores",
        "gpu-full's levels, 5 seeds, 8 judged samples per concept (the demo pack)",
    ),
    "gpu-full": PresetNote(
        "one large GPU", "the faithful experiment (docs/science.md), 400 steps × 256 per level"
    ),
}
if set(PRESET_NOTES) != set(PRESETS):
    raise RuntimeError(f"PRESET_NOTES must describe exactly the presets {sorted(PRESETS)}")


# Worker processes per preset when none are asked for: gpu-full's 24 fine-tunes of a 4 M-parameter
# UNet each leave most of an H200 idle, so 8 run side by side (one process per level).
DEFAULT_WORKERS: dict[str, int] = {"gpu-full": 8}


def preset(name: str, **overrides: Any) -> SweepConfig:
    """A named preset with optional field overrides; unknown names list the valid ones."""
    if name not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {name!r}")
    return replace(PRESETS[name], **{k: v for k, v in overrides.items() if v is not None})


def from_settings(settings: Mapping[str, Any]) -> SweepConfig:
    """The SweepConfig a job's settings describe: every field (``SweepConfig.to_dict()``), or a
    preset name (default ``ci-smoke``) with the fields that differ from it (``finetune`` may give
    only the fine-tune fields that differ)."""
    d = dict(settings)
    if {f.name for f in fields(SweepConfig)} <= d.keys():
        return SweepConfig.from_dict(d)
    name = d.pop("preset", "ci-smoke")
    ft = d.pop("finetune", None)
    sc = preset(name, **d)
    return replace(sc, finetune=replace(sc.finetune, **ft)) if ft else sc


def seed_plan(config: SweepConfig, n_concepts: int, seed: int) -> tuple[list[int], dict[int, int]]:
    """(order, targets) of one seed: core.poison.plan.poisoning_plan (the one definition) with the
    config's chosen concepts and targets, if any."""
    return poisoning_plan(n_concepts, seed, config.concepts, dict(config.targets or ()))
