"""Result packs: the shipped demo pack and sweep outputs, loaded for the explorer.

A *pack* is a folder with the sweep's outputs (format below); ``assets/demo`` ships one so the
app can be played without training, and :func:`core.results.synthetic.write_synthetic_demo_pack`
writes a synthetic one with the same format for tests.

- ``results.json``: {"config": {"preset", "concepts" (K names), "poison_order" (concept ids; the
  poisoned set at level c is the first c), "targets" {"src": tgt}, "seeds", "levels"},
  "records": [{"c_p", "seed", "ad", "ad_feature", "ad_structure", "acc_unpoisoned", ...}],
  "summary": {metric: {"c_p", "mean", "ci_low", "ci_high"}}}
- ``embeddings.npz``: ``concepts`` (K,), ``levels`` (L,), ``text_concept`` (K, d) and per level c:
  ``image_{c}``, ``text_{c}`` (n, d), ``caption_concept_{c}``, ``image_concept_{c}`` (n,) int,
  ``poisoned_{c}`` (n,) bool, ``generated_{c}`` (K, d).
- ``generations.npz``: ``levels`` and per level ``images_{c}`` (K, m, S, S, 3) uint8.
- ``training.json`` (optional): {"<c_p>": {"step", "loss", "probe": {"step", "ad",
  "acc_unpoisoned"}}}: the fine-tune loss per step and, at probe steps, the AD of the model's
  own generations and the judged accuracy of unpoisoned concepts (core/sweep/mini/runner.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from core.io import assets_dir, runs_dir
from core.poison.plan import RELATED_MIN_SHARED, plan_level
from core.results.schema import (
    DEFENSE,
    EMBEDDINGS,
    GENERATIONS,
    GRIDS_DIR,
    LEVEL_ARRAYS,
    LEVELS,
    METRICS,
    RESULTS,
    SCIENCE,
    TRAINING,
    level_array_key,
)
from core.results.validate import (
    BrokenPack,
    check_defense,
    check_embedding_headers,
    check_embeddings,
    check_folder,
    check_generation_headers,
    check_generation_levels,
    check_generations,
    check_results,
    check_science,
    check_training,
    exists,
    is_index_array,
    npz_headers,
    read_json,
    read_npz,
)
from core.world import World, WorldConfig

# Sub-folders of a run directory where a sweep job may have written its pack.
PACK_SUBDIRS: tuple[str, ...] = ("", "sweep", "pack", "out", "results")


def demo_dir() -> Path:
    """The shipped demo pack (``<assets>/demo``; ``IMPLOSION_ASSETS`` moves assets)."""
    return assets_dir() / "demo"


def find_pack_dir(folder: Path) -> Path | None:
    """The pack folder inside a run directory or pack folder, or None if it has no results.
    A ``results.json`` that is a link counts (reading it is refused: the pack shows as broken)."""
    for sub in PACK_SUBDIRS:
        d = Path(folder) / sub if sub else Path(folder)
        if exists(d, RESULTS):
            return d
    return None


def list_packs() -> dict[str, Path]:
    """Packs the app can open: ``"demo"`` (if shipped) and every run with results, newest first."""
    out: dict[str, Path] = {}
    if exists(demo_dir(), RESULTS):
        out["demo"] = demo_dir()
    root = runs_dir()
    if root.is_dir():
        for run in sorted((p for p in root.iterdir() if p.is_dir()), reverse=True):
            d = find_pack_dir(run)
            if d is not None and not run.name.startswith("."):
                out[run.name] = d
    return out


@dataclass
class Pack:
    """A loaded pack. Arrays are read lazily from the npz files and cached on first access."""

    root: Path
    results: dict[str, Any]
    training: dict[str, Any] | None = None
    _emb: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------ config
    @property
    def config(self) -> dict[str, Any]:
        return dict(self.results.get("config", {}))

    @property
    def concepts(self) -> list[str]:
        return [str(c) for c in self.config.get("concepts", [])]

    @property
    def levels(self) -> list[int]:
        return [int(c) for c in self.config.get("levels", [])]

    @property
    def poison_order(self) -> list[int]:
        return [int(i) for i in self.config.get("poison_order", [])]

    @property
    def targets(self) -> dict[int, int]:
        return {int(k): int(v) for k, v in self.config.get("targets", {}).items()}

    @property
    def summary(self) -> dict[str, dict[str, list[Any]]]:
        return dict(self.results.get("summary", {}))

    @property
    def records(self) -> list[dict[str, Any]]:
        return list(self.results.get("records", []))

    def poisoned_at(self, c_p: int) -> list[int]:
        """Concept ids poisoned at level ``c_p`` (the first c_p of ``poison_order``)."""
        return self.poison_order[:c_p]

    @cached_property
    def world(self) -> World:
        return World(WorldConfig(n_concepts=len(self.concepts)))

    @property
    def shown_seed(self) -> int:
        """The seed whose generations, embeddings and grids the pack holds (the first seed)."""
        seeds = self.config.get("seeds") or [0]
        return int(seeds[0])

    def seed_plan(self, seed: int) -> tuple[list[int], dict[int, int]] | None:
        """(poisoning order, targets) of one seed (``config["plans"]``; the shown seed falls back
        to ``poison_order`` / ``targets``), or None when the pack records no plan for it."""
        plan = (self.config.get("plans") or {}).get(str(int(seed)))
        if plan is not None:
            targets = {int(a): int(b) for a, b in (plan.get("targets") or {}).items()}
            return [int(i) for i in plan["order"]], targets
        if int(seed) == self.shown_seed:
            return self.poison_order, self.targets
        return None

    def groups(self, c_p: int, seed: int | None = None) -> dict[str, list[int]]:
        """Concepts at level c_p split into poisoned / related / unrelated in one seed's plan
        (default: the shown seed, whose pictures the pages draw; each seed poisons its own set).
        A pack that records its own K×K ``relation`` (the real-model sweep: shared keyword or
        co-occurring caption) uses it; mini-world packs use :attr:`core.world.World.relation`
        (≥ 2 shared words). ValueError when the pack records no plan for ``seed``."""
        k = len(self.concepts)
        seed = self.shown_seed if seed is None else int(seed)
        plan = self.seed_plan(seed)
        if plan is None:
            raise ValueError(f"seed {seed}: this pack records no poisoning plan for it")
        order, targets = plan
        if "relation" in self.config:  # real: shared keyword or caption (bool)
            rel, rmin = np.asarray(self.config["relation"], dtype=np.int64), 1
        elif k in _valid_k():  # mini world: ≥ 2 shared attribute words
            rel, rmin = self.world.relation, RELATED_MIN_SHARED
        else:
            rel, rmin = None, RELATED_MIN_SHARED
        lv = plan_level(
            k, c_p, seed, relation=rel, related_min=rmin, order=order or None, targets=targets
        )
        return lv.groups()

    # ------------------------------------------------------------ arrays
    def embeddings(self) -> dict[str, np.ndarray]:
        """All arrays of ``embeddings.npz`` (float16 converted to float32), read through the
        validating reader (core.results.validate): BrokenPack for a crafted or corrupt file."""
        if not self._emb:
            if not exists(self.root, EMBEDDINGS):
                raise FileNotFoundError(
                    f"{EMBEDDINGS} is not in {self.root} yet: a sweep writes it when it completes. "
                    "Wait for the sweep to finish (see Jobs), resume it, or open another pack."
                )
            k = len(self.concepts)
            arrays = read_npz(
                self.root, EMBEDDINGS, lambda h: check_embedding_headers(h, k, self.root)
            )
            check_embeddings(arrays, k, self.root)
            loaded = {
                key: a.astype(np.float32) if a.dtype == np.float16 else a
                for key, a in arrays.items()
            }
            # filled whole, then published: sessions sharing a cached Pack never see half of it
            self._emb = loaded
        return self._emb

    def level_arrays(self, c_p: int) -> dict[str, np.ndarray]:
        """Arrays of one level by name: every array of :data:`core.results.schema.LEVEL_ARRAYS`
        (image, text, caption_concept, image_concept, poisoned, generated, and any added there;
        one added with ``required=False`` only where this pack has it)."""
        e = self.embeddings()
        keys = {n: level_array_key(n, c_p) for n in LEVEL_ARRAYS}
        missing = [k for n, k in keys.items() if k not in e and LEVEL_ARRAYS[n].required]
        if missing:
            raise ValueError(
                f"level C_P={c_p} is not in {self.root / EMBEDDINGS} (missing {missing})"
            )
        return {n: e[k] for n, k in keys.items() if k in e}

    def generations(self) -> dict[int, np.ndarray]:
        """Level → (K, m, S, S, 3) uint8 images (identical seeds across levels)."""
        if not exists(self.root, GENERATIONS):
            raise FileNotFoundError(
                f"{self.root / GENERATIONS} is missing; this pack has no generated images"
            )
        k = len(self.concepts)
        arrays = read_npz(
            self.root, GENERATIONS, lambda h: check_generation_headers(h, k, self.root)
        )
        return check_generations(arrays, k, self.root)


def _valid_k() -> set[int]:
    from core.world import valid_n_concepts

    return set(valid_n_concepts())


def load_pack(folder: Path) -> Pack:
    """Load a pack folder or run directory through the validating reader.

    ``results.json`` and ``training.json`` are checked against the schema and the array headers
    of ``embeddings.npz`` / ``generations.npz`` against it (core.results.validate); the arrays
    themselves are read on first use. FileNotFoundError when there is no pack; BrokenPack (a
    ValueError) naming the file and what is wrong otherwise.
    """
    root = find_pack_dir(Path(folder))
    if root is None:
        raise FileNotFoundError(
            f"no {RESULTS} in {folder}; if this is the demo, restore it with `git checkout assets/` "
            'or write a synthetic one with `python -c "from core.results.synthetic import '
            f"write_synthetic_demo_pack as w; w('{folder}')\"`"
        )
    results = check_results(read_json(root, RESULTS), root)
    k = len(results["config"]["concepts"])
    training = None
    if exists(root, TRAINING):
        training = check_training(read_json(root, TRAINING), root)
    if exists(root, EMBEDDINGS):  # headers, and the small index arrays (ids within K)
        index = read_npz(
            root, EMBEDDINGS, lambda h: check_embedding_headers(h, k, root), is_index_array
        )
        check_embeddings(index, k, root)
    if exists(root, GENERATIONS):  # headers, and every listed level has its images
        headers = npz_headers(root, GENERATIONS)
        check_generation_headers(headers, k, root)
        levels = read_npz(root, GENERATIONS, keys=lambda key: key == LEVELS)[LEVELS]
        check_generation_levels(levels, headers, k, root)
    check_folder(root, GRIDS_DIR)  # no links among the PNG grids (bundles and packs copy them)
    for rel, check in ((SCIENCE, check_science), (DEFENSE, check_defense)):
        if exists(root, rel):  # what the claims panel and the Defend page read
            check(read_json(root, rel), root, rel)
    return Pack(root, results, training)


def list_models(max_depth: int = 4) -> dict[str, Path]:
    """Model folders (with ``model.json``) the app can sample from: the shipped base
    (``<assets>/base``) and any under the runs directory (fine-tuned checkpoints)."""
    out: dict[str, Path] = {}
    base = assets_dir() / "base"
    if (base / "model.json").is_file():
        out["shipped base (clean)"] = base
    root = runs_dir()
    if root.is_dir():
        for path in sorted(root.glob("**/model.json"), reverse=True):
            rel = path.parent.relative_to(root)
            if len(rel.parts) <= max_depth and not any(p.startswith(".") for p in rel.parts):
                out[f"run: {rel}"] = path.parent
    return out


__all__ = [
    "METRICS",
    "BrokenPack",
    "Pack",
    "demo_dir",
    "find_pack_dir",
    "list_models",
    "list_packs",
    "load_pack",
]
