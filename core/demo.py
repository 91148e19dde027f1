"""Result packs: the shipped demo pack and sweep outputs, loaded for the explorer.

A *pack* is a folder with the sweep's outputs (format below); ``assets/demo`` ships one so the
app can be played without training, and :func:`write_synthetic_demo_pack` writes a synthetic one
with the same format for tests.

- ``results.json``: {"config": {"preset", "concepts" (K names), "poison_order" (concept ids; the
  poisoned set at level c is the first c), "targets" {"src": tgt}, "seeds", "levels"},
  "records": [{"c_p", "seed", "ad", "ad_feature", "ad_structure", "acc_unpoisoned", ...}],
  "summary": {metric: {"c_p", "mean", "ci_low", "ci_high"}}}
- ``embeddings.npz``: ``concepts`` (K,), ``levels`` (L,), ``text_concept`` (K, d) and per level c:
  ``image_{c}``, ``text_{c}`` (n, d), ``caption_concept_{c}``, ``image_concept_{c}`` (n,) int,
  ``poisoned_{c}`` (n,) bool, ``generated_{c}`` (K, d).
- ``generations.npz``: ``levels`` and per level ``images_{c}`` (K, m, S, S, 3) uint8.
- ``training.json`` (optional): {"<c_p>": {"step", "loss", "ad"}}.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from core.io import assets_dir, atomic_write_json, atomic_write_with, runs_dir
from core.theory import exact_ad
from core.world import World, WorldConfig

RESULTS, EMBEDDINGS, GENERATIONS, TRAINING = (
    "results.json",
    "embeddings.npz",
    "generations.npz",
    "training.json",
)
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
# Sub-folders of a run directory where a sweep job may have written its pack.
PACK_SUBDIRS: tuple[str, ...] = ("", "sweep", "pack", "out", "results")


def demo_dir() -> Path:
    """The shipped demo pack (``<assets>/demo``; ``IMPLOSION_ASSETS`` moves assets)."""
    return assets_dir() / "demo"


def find_pack_dir(folder: Path) -> Path | None:
    """The pack folder inside a run directory or pack folder, or None if it has no results."""
    for sub in PACK_SUBDIRS:
        d = Path(folder) / sub if sub else Path(folder)
        if (d / RESULTS).is_file():
            return d
    return None


def list_packs() -> dict[str, Path]:
    """Packs the app can open: ``"demo"`` (if shipped) and every run with results, newest first."""
    out: dict[str, Path] = {}
    if (demo_dir() / RESULTS).is_file():
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

    def groups(self, c_p: int) -> dict[str, list[int]]:
        """Concepts at level c_p split into poisoned / related / unrelated. A pack that records
        its own K×K ``relation`` (the real-model sweep: shared keyword or co-occurring caption)
        uses it; mini-world packs use :attr:`core.world.World.relation` (≥ 2 shared words)."""
        k = len(self.concepts)
        pois = self.poisoned_at(c_p)
        if "relation" in self.config:
            rel = np.asarray(self.config["relation"], dtype=np.int64) * 2
        else:
            rel = self.world.relation if k in _valid_k() else np.eye(k, dtype=np.int64) * 3
        related = [j for j in range(k) if j not in pois and any(rel[j, i] >= 2 for i in pois)]
        unrelated = [j for j in range(k) if j not in pois and j not in related]
        return {"poisoned": pois, "related": related, "unrelated": unrelated}

    # ------------------------------------------------------------ arrays
    def embeddings(self) -> dict[str, np.ndarray]:
        """All arrays of ``embeddings.npz`` (float16 converted to float32)."""
        if not self._emb:
            path = self.root / EMBEDDINGS
            if not path.is_file():
                raise FileNotFoundError(
                    f"{path.name} is not in {self.root} yet: a sweep writes it when it completes. "
                    "Wait for the sweep to finish (see Jobs), resume it, or open another pack."
                )
            with np.load(path, allow_pickle=False) as z:
                for key in z.files:
                    a = z[key]
                    self._emb[key] = a.astype(np.float32) if a.dtype == np.float16 else a
        return self._emb

    def level_arrays(self, c_p: int) -> dict[str, np.ndarray]:
        """Arrays of one level: image, text, caption_concept, image_concept, poisoned, generated."""
        e = self.embeddings()
        names = ("image", "text", "caption_concept", "image_concept", "poisoned", "generated")
        missing = [f"{n}_{c_p}" for n in names if f"{n}_{c_p}" not in e]
        if missing:
            raise ValueError(
                f"level C_P={c_p} is not in {self.root / EMBEDDINGS} (missing {missing})"
            )
        return {n: e[f"{n}_{c_p}"] for n in names}

    def generations(self) -> dict[int, np.ndarray]:
        """Level → (K, m, S, S, 3) uint8 images (identical seeds across levels)."""
        path = self.root / GENERATIONS
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing; this pack has no generated images")
        with np.load(path, allow_pickle=False) as z:
            return {int(c): z[f"images_{int(c)}"] for c in z["levels"]}


def _valid_k() -> set[int]:
    from core.world import valid_n_concepts

    return set(valid_n_concepts())


def load_pack(folder: Path) -> Pack:
    """Load ``results.json`` (+ ``training.json``) of a pack folder or run directory.

    Raises FileNotFoundError / ValueError with a message that says what to do.
    """
    root = find_pack_dir(Path(folder))
    if root is None:
        raise FileNotFoundError(
            f"no {RESULTS} in {folder}; if this is the demo, restore it with `git checkout assets/` "
            'or write a synthetic one with `python -c "from core.demo import '
            f"write_synthetic_demo_pack as w; w('{folder}')\"`"
        )
    try:
        results = json.loads((root / RESULTS).read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{root / RESULTS} is not valid JSON ({e}); re-run the sweep") from e
    if "config" not in results or "concepts" not in results["config"]:
        raise ValueError(f"{root / RESULTS} has no config.concepts; is it a sweep result?")
    training = None
    if (root / TRAINING).is_file():
        try:
            training = json.loads((root / TRAINING).read_text())
        except json.JSONDecodeError:
            training = None
    return Pack(root, results, training)


# ---------------------------------------------------------------- synthetic pack (tests, dev)


def _ci(values: np.ndarray) -> tuple[float, float, float]:
    """Mean and 95 % normal-approximation CI of a 1-D sample."""
    m = float(values.mean())
    if values.size < 2:
        return m, m, m
    h = 1.96 * float(values.std(ddof=1)) / np.sqrt(values.size)
    return m, m - h, m + h


def summarise(records: list[dict[str, Any]], levels: list[int]) -> dict[str, dict[str, list[Any]]]:
    """Per metric: mean and 95 % CI over seeds at each level (levels with no value skipped)."""
    out: dict[str, dict[str, list[Any]]] = {}
    for m in METRICS:
        s: dict[str, list[Any]] = {"c_p": [], "mean": [], "ci_low": [], "ci_high": []}
        for c in levels:
            vals = np.array(
                [r[m] for r in records if r["c_p"] == c and r.get(m) is not None], dtype=float
            )
            if vals.size:
                mean, lo, hi = _ci(vals)
                s["c_p"].append(c)
                s["mean"].append(mean)
                s["ci_low"].append(lo)
                s["ci_high"].append(hi)
        out[m] = s
    return out


def write_synthetic_demo_pack(
    dir: Path | str,
    n_concepts: int = 32,
    levels: tuple[int, ...] = (0, 1, 2, 4, 8, 16, 24, 32),
    seed: int = 0,
    seeds: tuple[int, ...] = (0, 1, 2),
    n_per_concept: int = 12,
    dim: int = 32,
    samples: int = 4,
) -> Path:
    """Write a synthetic pack in the exact sweep format (for tests and development).

    Embeddings: concept vectors are sums of attribute-word vectors (so related concepts are close);
    poisoned concepts get dirty-label pairs (caption i, image of target i); generated embeddings
    drift toward targets and collapse toward the mean as C_P grows (implosion). Images are world
    renders blended toward the target and toward grey noise the same way.
    """
    root = Path(dir)
    root.mkdir(parents=True, exist_ok=True)
    world = World(WorldConfig(n_concepts=n_concepts))
    k = world.n_concepts
    rng = np.random.default_rng(seed)
    levels = tuple(sorted({int(c) for c in levels if 0 <= c <= k}))
    word_vecs = rng.normal(size=(3, 8, dim))
    attrs = world.attribute_ids
    base = sum(word_vecs[a, attrs[:, a]] for a in range(3))
    t_concept = _unit(base + 0.3 * rng.normal(size=(k, dim)))
    v_concept = _unit(base + 0.5 * rng.normal(size=(k, dim)))
    order = [int(i) for i in rng.permutation(k)]
    targets = {}
    for i in order:
        choices = [j for j in range(k) if j != i]
        targets[i] = int(choices[int(rng.integers(len(choices)))])
    arrays: dict[str, np.ndarray] = {
        "concepts": np.array(world.names),
        "levels": np.array(levels, dtype=np.int64),
        "text_concept": t_concept.astype(np.float16),
    }
    records: list[dict[str, Any]] = []
    clean = world.sample(samples, seed=seed)
    clean_img = _to_uint8(clean.images).reshape(k, samples, *clean.images.shape[2:], 3)
    gens: dict[str, np.ndarray] = {"levels": np.array(levels, dtype=np.int64)}
    mean_v = _unit(v_concept.mean(0, keepdims=True))
    for c in levels:
        pois = order[:c]
        cap = np.repeat(np.arange(k), n_per_concept)
        img = cap.copy()
        for i in pois:
            cap = np.concatenate([cap, np.full(n_per_concept, i)])
            img = np.concatenate([img, np.full(n_per_concept, targets[i])])
        flag = np.arange(cap.size) >= k * n_per_concept
        r = np.random.default_rng([seed, c])
        x = _unit(v_concept[img] + 0.35 * r.normal(size=(img.size, dim)))
        y = _unit(t_concept[cap] + 0.25 * r.normal(size=(cap.size, dim)))
        frac = c / k
        gen = v_concept.copy()
        for i in pois:
            gen[i] = 0.4 * v_concept[i] + 0.6 * v_concept[targets[i]]
        gen = _unit(
            gen * (1 - 0.8 * frac) + 0.8 * frac * mean_v + 0.25 * frac * r.normal(size=gen.shape)
        )
        arrays |= {
            f"image_{c}": x.astype(np.float16),
            f"text_{c}": y.astype(np.float16),
            f"caption_concept_{c}": cap.astype(np.int64),
            f"image_concept_{c}": img.astype(np.int64),
            f"poisoned_{c}": flag,
            f"generated_{c}": gen.astype(np.float16),
        }
        gens[f"images_{c}"] = _degrade(clean_img, pois, targets, frac, r)
        ad = exact_ad(x, y, alpha=0.8)
        for s in seeds:
            j = np.random.default_rng([seed, c, s]).normal(0, 0.01, size=8)
            unp = max(0.0, 0.88 - 0.7 * frac**2 + j[0])
            records.append(
                {
                    "c_p": c,
                    "seed": s,
                    "ad": ad["ad"] + j[1] * 0.3,
                    "ad_feature": ad["d_fea"] + j[2] * 0.3,
                    "ad_structure": ad["d_stru"] + j[3] * 0.3,
                    "acc_unpoisoned": unp if c < k else None,
                    "acc_poisoned": max(0.0, 0.95 - 0.6 * frac + j[4]) if c else None,
                    "attack_success": max(0.0, 0.05 + 0.1 * frac + j[5]) if c else None,
                    "alignment_unpoisoned": (0.3 - 0.15 * frac + j[6]) if c < k else None,
                    "incoherence": 0.1 + 0.7 * frac**1.5 + abs(j[7]),
                    "acc_related": max(0.0, unp - 0.1 * frac) if 0 < c < k else None,
                    "acc_unrelated": unp if 0 < c < k else None,
                    "finetune_seconds": 30.0 + r.uniform(0, 5),
                }
            )
    config = {
        "preset": "synthetic",
        "concepts": world.names,
        "poison_order": order,
        "targets": {str(i): targets[i] for i in order},
        "seeds": list(seeds),
        "levels": list(levels),
    }
    results = {"config": config, "records": records, "summary": summarise(records, list(levels))}
    training = {
        str(c): {
            "step": list(range(0, 401, 50)),
            "loss": [float(0.2 + 0.1 * np.exp(-s / 100) + 0.05 * c / k) for s in range(0, 401, 50)],
            "ad": [float(0.3 + 0.3 * (c / k) * s / 400) for s in range(0, 401, 50)],
        }
        for c in levels
    }
    _save_npz(root / EMBEDDINGS, arrays)
    _save_npz(root / GENERATIONS, gens)
    atomic_write_json(root / TRAINING, training)
    atomic_write_json(root / RESULTS, results)  # last: marks a complete pack
    return root


def _unit(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=-1, keepdims=True).clip(1e-12)


def _to_uint8(images: np.ndarray) -> np.ndarray:
    """(N, 3, S, S) in [-1, 1] → (N, S, S, 3) uint8."""
    return ((images.transpose(0, 2, 3, 1) + 1) * 127.5).round().clip(0, 255).astype(np.uint8)


def _degrade(
    clean: np.ndarray, pois: list[int], targets: dict[int, int], frac: float, r: np.random.Generator
) -> np.ndarray:
    """Synthetic generations: poisoned concepts blend toward their target; everything blurs
    toward colours and shapes never seen in training as C_P grows."""
    out: np.ndarray = clean.astype(np.float64)
    for i in pois:
        out[i] = 0.35 * out[i] + 0.65 * clean[targets[i]]
    hue = np.array([200.0, 110.0, 40.0], dtype=np.float32)  # an "undefined" orange-brown
    out = (1 - 0.7 * frac) * out + 0.7 * frac * (hue + 40 * r.normal(size=out.shape))
    return out.clip(0, 255).astype(np.uint8)


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    def writer(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)  # type: ignore[arg-type]

    atomic_write_with(path, writer)


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
    "Pack",
    "demo_dir",
    "find_pack_dir",
    "list_models",
    "list_packs",
    "load_pack",
    "summarise",
    "write_synthetic_demo_pack",
]
