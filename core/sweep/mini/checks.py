"""Checks a sweep (or a Poison-setup fine-tune) passes before it is accepted: the same in the
foreground and in the process that launches a background job, so a job that cannot run is
refused with one line instead of failing later in its worker.

- the grid against the model: every C_P ≤ K, chosen concepts and targets are ids < K (K is read
  from the model folder's ``model.json``, without loading weights);
- memory: a level holds its clean data (every seed's, cached) and its pairs; the estimate
  below is compared with this machine's memory, and a size that would exhaust it is refused
  naming the field and the largest value that fits.

Seeds are capped where every sweep grid is validated (core.poison.plan.check_levels_and_seeds).

Memory of a level (bytes), S the image side, d the joint embedding width:

    M = seeds · K · n_clean · (3·S²·4 + 2·4·(S/4)²·4 + d·4)      clean images, latents, embeddings
      + n_pairs · (PAIR_BYTES + 2·d·8)                            pair lists and AD's float64 copies
    n_pairs = K · n_clean + C_P · round(poison_ratio · n_clean)   (add; replace drops C_P · n_clean)

PAIR_BYTES (Python lists, index arrays and the float32 embeddings of one pair) was measured with
tracemalloc on the shipped base: 651 B per pair for 30,720 pairs (poison_ratio 30, C_P 32).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.sweep.mini.config import SweepConfig
    from core.world import World

PAIR_BYTES = 700  # measured 651 B (module docstring), rounded up
EMBED_DIM = 64  # joint-space width of the mini dual encoder (assets/base/model.json)
MEMORY_SHARE = 0.8  # refuse a level whose data alone would take more than this share of RAM


def machine_memory() -> int:
    """Physical memory of this machine in bytes (sysconf), 0 if unknown."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 0


def _n_poison(config: SweepConfig) -> int:
    return max(1, round(config.poison_ratio * config.n_clean_per_concept))


def level_pairs(config: SweepConfig, n_concepts: int) -> int:
    """Pairs of the largest level: clean pairs plus C_P · n_p poison pairs (replace drops the
    poisoned captions' clean pairs)."""
    c_p = config.levels[-1]
    clean = n_concepts * config.n_clean_per_concept
    if config.poison_mode == "replace":
        clean -= c_p * config.n_clean_per_concept
    return clean + c_p * _n_poison(config)


def level_memory_bytes(config: SweepConfig, n_concepts: int, image_size: int) -> int:
    """Estimated bytes of data a sweep level holds (module docstring): model weights and
    activations are not included, so this is a lower bound."""
    s, d = image_size, EMBED_DIM
    per_image = 3 * s * s * 4 + 2 * 4 * (s // 4) ** 2 * 4 + d * 4
    clean = len(config.seeds) * n_concepts * config.n_clean_per_concept * per_image
    return clean + level_pairs(config, n_concepts) * (PAIR_BYTES + 2 * d * 8)


def _gib(n: float) -> str:
    return f"{n / 2**30:,.1f} GiB" if n < 2**40 else f"{n / 2**40:,.1f} TiB"


def check_memory(
    config: SweepConfig, n_concepts: int, image_size: int, available: int | None = None
) -> None:
    """ValueError if a level's data would take more than :data:`MEMORY_SHARE` of ``available``
    bytes (default: this machine's memory). Names the field that is too large and its cap."""
    from dataclasses import replace

    total = machine_memory() if available is None else available
    if total <= 0:
        return
    limit = MEMORY_SHARE * total
    need = level_memory_bytes(config, n_concepts, image_size)
    if need <= limit:
        return
    c_p = config.levels[-1]
    base = level_memory_bytes(replace(config, poison_ratio=1e-9), n_concepts, image_size)
    per_poison = (PAIR_BYTES + 2 * EMBED_DIM * 8) * max(1, c_p)
    if c_p > 0 and base < limit:
        most = int((limit - base) // per_poison)
        raise ValueError(
            f"poison_ratio: {_n_poison(config):,} poison pairs per concept (budget, "
            f"poison_ratio × n_clean_per_concept) make {level_pairs(config, n_concepts):,} "
            f"pairs at C_P={c_p}, about {_gib(need)} of data; this machine has "
            f"{_gib(total)}: give at most {most:,} poison pairs per concept"
        )
    per_clean = need / max(1, config.n_clean_per_concept)
    most = int(limit // per_clean)
    raise ValueError(
        f"n_clean_per_concept: {config.n_clean_per_concept:,} clean images per concept × "
        f"{len(config.seeds)} seed(s) need about {_gib(need)} of data; this machine has "
        f"{_gib(total)}: give at most {max(1, most):,} (or fewer seeds per sweep)"
    )


def check_against_model(config: SweepConfig, world: World) -> None:
    """ValueError unless the grid fits the model: C_P ≤ K, concept and target ids < K."""
    k = world.n_concepts
    bad = [c for c in config.levels if c > k]
    if bad:
        raise ValueError(
            f"levels: C_P values {bad} exceed K={k} concepts of this model; give C_P ≤ {k}"
        )
    ids = list(config.concepts or ()) + [i for t in config.targets or () for i in t]
    out_of_range = sorted({i for i in ids if not 0 <= i < k})
    if out_of_range:
        raise ValueError(f"concepts: ids {out_of_range} are not concepts of this model (0–{k - 1})")


def check_sweep(config: SweepConfig, available: int | None = None) -> World:
    """Every launch-time check of a mini-model sweep config (module docstring); returns the
    model's world (read from ``model.json``)."""
    from core.sweep.mini.finetune import model_world

    world = model_world(config.model)
    check_against_model(config, world)
    check_memory(config, world.n_concepts, world.config.image_size, available)
    return world
