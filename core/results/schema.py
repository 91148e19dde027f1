"""The one schema of a results pack: file and array names, level keys, record and summary types.

Writer (the sweep driver and level runners, :mod:`core.results.write`) and reader
(:mod:`core.results.pack`, :mod:`core.results.runs`) import these names instead of spelling
strings, so a value that crosses the file boundary has one definition.

Layout of a pack folder::

    results.json          ResultsFile: {"config", "records": [LevelRecord], "summary", "complete"}
    levels/cp{C}_seed{S}.npz   one level's arrays (LEVEL_ARRAYS + images, loss, probe_*)
    grids/cp{C}_seed{S}.png    one level's generations grid
    embeddings.npz        per level c: ``{name}_{c}`` for name in LEVEL_ARRAYS, plus concepts,
                          levels, text_concept
    generations.npz       levels and per level ``images_{c}`` (K, m, S, S, 3) uint8
    training.json         {"<c_p>": {"step", "loss", "probe": {"step", "ad", "acc_unpoisoned"}}}
    weights/cp{C}_seed{S}.safetensors   one level's fine-tuned weights (LoRA adapters or the
                          cross-attention projections) and the base they apply to
                          (core.results.weights)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypedDict

RESULTS, EMBEDDINGS, GENERATIONS, TRAINING = (
    "results.json",
    "embeddings.npz",
    "generations.npz",
    "training.json",
)
SCIENCE, DEFENSE = "science.json", "defense.json"  # optional: claims' extras, defend report
LEVELS_DIR, GRIDS_DIR, WEIGHTS_DIR = "levels", "grids", "weights"
PACK_FILES: tuple[str, ...] = (RESULTS, EMBEDDINGS, GENERATIONS, TRAINING)


@dataclass(frozen=True)
class LevelArray:
    """The shape rule of a per-level array of ``embeddings.npz``: ``ndim`` 1 or 2 (a 2-d array
    is embeddings, (rows, d) with d the width of ``text_concept``), the numpy dtype ``kinds`` it
    may have, what its rows count (``"pairs"``: the level's kept training pairs, as many as
    ``image`` has; ``"concepts"``: K), whether it holds concept ids (each in [0, K)), and
    whether every pack must have it (``required=False``: packs written before the array existed,
    the shipped demo among them, still load; the array is checked where present)."""

    ndim: Literal[1, 2]
    kinds: str
    rows: Literal["pairs", "concepts"]
    concept_ids: bool = False
    required: bool = True


# Per-level arrays of embeddings.npz (suffixed ``_{c}``), each with its shape rule: joint-space
# image / text embeddings of the kept training pairs (n, d), the concept each caption names and
# each image shows (n,), whether the pair is poison (n,), and the mean embedding of each concept's
# generations (K, d). The writer copies, the validator checks and ``Pack.level_arrays`` returns
# every array named here.
LEVEL_ARRAYS: dict[str, LevelArray] = {
    "image": LevelArray(2, "f", "pairs"),
    "text": LevelArray(2, "f", "pairs"),
    "caption_concept": LevelArray(1, "iu", "pairs", concept_ids=True),
    "image_concept": LevelArray(1, "iu", "pairs", concept_ids=True),
    "poisoned": LevelArray(1, "b", "pairs"),
    "generated": LevelArray(2, "f", "concepts"),
}

# Pack-wide arrays of embeddings.npz / generations.npz, and the per-level arrays a level file holds
# beside LEVEL_ARRAYS: its generated images (``images_{c}`` in generations.npz), the fine-tune
# loss per step and the training probes (``probe_step``, ``probe_ad``, ``probe_acc_unpoisoned``,
# gathered into training.json).
CONCEPTS, LEVELS, TEXT_CONCEPT = "concepts", "levels", "text_concept"
IMAGES, LOSS, PROBE_PREFIX = "images", "loss", "probe_"

# Per-level metrics a record carries and the summary aggregates (means over seeds).
METRICS: tuple[str, ...] = (
    "ad",
    "ad_feature",
    "ad_structure",
    "acc_unpoisoned",
    "acc_poisoned",
    "attack_success",
    "alignment_unpoisoned",
    "incoherence",
    "acc_related",
    "acc_unrelated",
)

# What ``results.json["summary"]`` aggregates: the metrics above, the AD of the model's own
# generations (mini sweep) and the fine-tune's time.
SUMMARY_METRICS: tuple[str, ...] = (*METRICS, "ad_generated", "finetune_seconds")

_LEVEL_KEY = re.compile(r"^cp(\d+)_seed(\d+)$")


def level_key(c_p: int, seed: int) -> str:
    """``cp{c_p}_seed{seed}``: the stem of a level's files (levels/, grids/, records/)."""
    if c_p < 0 or seed < 0:
        raise ValueError(f"level key: c_p and seed must be ≥ 0, got c_p={c_p}, seed={seed}")
    return f"cp{int(c_p)}_seed{int(seed)}"


def parse_level_key(key: str) -> tuple[int, int]:
    """Inverse of :func:`level_key`: ``"cp4_seed0"`` (or a file name with it as stem) → (4, 0)."""
    m = _LEVEL_KEY.match(Path(key).stem if "." in key else key)
    if m is None:
        raise ValueError(f"level key {key!r}: expected 'cp<C_P>_seed<seed>', e.g. 'cp4_seed0'")
    return int(m.group(1)), int(m.group(2))


def level_file(out: Path, c_p: int, seed: int) -> Path:
    """``out/levels/cp{c_p}_seed{seed}.npz``."""
    return Path(out) / LEVELS_DIR / f"{level_key(c_p, seed)}.npz"


def grid_file(out: Path, c_p: int, seed: int) -> Path:
    """``out/grids/cp{c_p}_seed{seed}.png``."""
    return Path(out) / GRIDS_DIR / f"{level_key(c_p, seed)}.png"


def weights_file(out: Path, c_p: int, seed: int) -> Path:
    """``out/weights/cp{c_p}_seed{seed}.safetensors``: one level's fine-tuned weights."""
    return Path(out) / WEIGHTS_DIR / f"{level_key(c_p, seed)}.safetensors"


def level_array_key(name: str, c_p: int) -> str:
    """Key of a per-level array in embeddings.npz / generations.npz: ``{name}_{c_p}``."""
    return f"{name}_{int(c_p)}"


class LevelRecord(TypedDict, total=False):
    """One (C_P, seed) level in ``results.json["records"]``. Accuracies in [0, 1]; ``ad`` on the
    pack's calibrated scale (``config.ad_scale``); None where a group is empty (no poisoned
    concept at C_P = 0)."""

    c_p: int
    seed: int
    ad: float
    ad_feature: float
    ad_structure: float
    acc_unpoisoned: float | None
    acc_poisoned: float | None
    attack_success: float | None
    alignment_unpoisoned: float | None
    incoherence: float
    incoherence_unpoisoned: float | None
    acc_related: float | None
    acc_unrelated: float | None
    undefined_rate: float
    per_concept_acc: list[float]
    ad_generated: float
    finetune_seconds: float
    finetune_dtype: str  # the fine-tune's compute dtype as it ran: "fp32" | "bf16"
    wall_seconds: float
    n_pairs: int
    n_poison: int  # real sweep: poison pairs added at this level
    final_loss: float  # real sweep: last fine-tune loss


class SummaryRow(TypedDict):
    """``results.json["summary"][metric]``: per level, mean and 95 % t-interval over seeds."""

    c_p: list[int]
    mean: list[float]
    ci_low: list[float]
    ci_high: list[float]
    n: list[int]


class ResultsFile(TypedDict, total=False):
    """``results.json``: config (SweepConfig fields + concepts, poison_order, targets, plans,
    ad_scale), records, summary, complete, metadata (seed, git commit, versions)."""

    config: dict[str, Any]
    records: list[LevelRecord]
    summary: dict[str, SummaryRow]
    complete: bool
    metadata: dict[str, Any]


@dataclass(frozen=True)
class LevelSummary:
    """Means over seeds of one level (what ``implosion runs show`` prints); None where undefined."""

    c_p: int
    n_seeds: int
    ad: float | None
    acc_unpoisoned: float | None
    acc_poisoned: float | None
    incoherence: float | None
    alignment_unpoisoned: float | None
    attack_success: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "c_p": self.c_p,
            "n_seeds": self.n_seeds,
            "ad": self.ad,
            "acc_unpoisoned": self.acc_unpoisoned,
            "acc_poisoned": self.acc_poisoned,
            "incoherence": self.incoherence,
            "alignment_unpoisoned": self.alignment_unpoisoned,
            "attack_success": self.attack_success,
        }


__all__ = [
    "DEFENSE",
    "EMBEDDINGS",
    "GENERATIONS",
    "GRIDS_DIR",
    "LEVELS_DIR",
    "CONCEPTS",
    "IMAGES",
    "LEVELS",
    "LEVEL_ARRAYS",
    "LOSS",
    "PROBE_PREFIX",
    "TEXT_CONCEPT",
    "LevelArray",
    "METRICS",
    "PACK_FILES",
    "RESULTS",
    "SCIENCE",
    "SUMMARY_METRICS",
    "TRAINING",
    "WEIGHTS_DIR",
    "LevelRecord",
    "LevelSummary",
    "ResultsFile",
    "SummaryRow",
    "grid_file",
    "level_array_key",
    "level_file",
    "level_key",
    "parse_level_key",
    "weights_file",
]
