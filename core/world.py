"""The concept world: procedural, seeded images of coloured shapes with captions.

A *concept* is a combination of three attributes shared with other concepts:
``size × colour × shape`` (e.g. "large red star"). Concepts that share a word are *related*
(poisoning "red star" is expected to bleed into "red circle" and "large star"); the relation
table makes that measurable.

Images are rasterised in numpy from signed distance functions, vectorised over the whole batch,
so 30,000 images at 32 px take a couple of seconds.

Shapes: images ``(N, 3, S, S)`` float32 in [-1, 1] (the diffusion convention); labels ``(N,)`` int64
concept ids; attribute ids ``(N, 3)`` int64 (size, colour, shape).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

ALL_COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.90, 0.15, 0.15),
    "green": (0.15, 0.75, 0.20),
    "blue": (0.15, 0.30, 0.95),
    "yellow": (0.95, 0.85, 0.10),
    "magenta": (0.85, 0.20, 0.85),
    "cyan": (0.10, 0.85, 0.90),
    "white": (0.95, 0.95, 0.95),
    "brown": (0.55, 0.35, 0.15),
}
ALL_SHAPES: tuple[str, ...] = (
    "circle",
    "square",
    "triangle",
    "star",
    "cross",
    "ring",
    "diamond",
    "bar",
)
ALL_SIZES: tuple[str, ...] = ("small", "large")
ATTRIBUTES: tuple[str, ...] = ("size", "colour", "shape")

TEMPLATES: tuple[str, ...] = (
    "a photo of a {size} {colour} {shape}",
    "a {size} {colour} {shape} on a plain background",
    "a picture of a {size} {colour} {shape}",
    "a {size} {colour} {shape}",
    "an image showing a {size} {colour} {shape}",
)
IMAGE_SIZES: tuple[int, ...] = (32, 64)


def _grid_for(n_concepts: int) -> tuple[int, int]:
    """Split ``n_concepts = 2 · colours · shapes`` as squarely as possible (colours, shapes ≤ 8)."""
    half = n_concepts // 2
    best: tuple[int, int] | None = None
    for c in range(2, len(ALL_COLOURS) + 1):
        if half % c:
            continue
        s = half // c
        if 2 <= s <= len(ALL_SHAPES) and (best is None or abs(c - s) < abs(best[0] - best[1])):
            best = (c, s)
    if n_concepts % 2 or best is None:
        raise ValueError(
            f"n_concepts={n_concepts} is not supported: it must be 2 × colours × shapes with "
            f"2..8 colours and 2..8 shapes; valid values: {valid_n_concepts()}"
        )
    return best


def valid_n_concepts() -> list[int]:
    """All K the world can build (8 … 128)."""
    return sorted(
        {2 * c * s for c in range(2, len(ALL_COLOURS) + 1) for s in range(2, len(ALL_SHAPES) + 1)}
    )


@dataclass(frozen=True)
class WorldConfig:
    """Configuration of the concept world.

    n_concepts: K, number of concepts (8 … 128, see :func:`valid_n_concepts`).
    image_size: pixels per side, 32 (default) or 64.
    seed: seed of the procedural generator.
    """

    n_concepts: int = 32
    image_size: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.n_concepts, int) or isinstance(self.n_concepts, bool):
            raise ValueError(f"n_concepts must be an integer, got {self.n_concepts!r}")
        _grid_for(self.n_concepts)
        if self.image_size not in IMAGE_SIZES:
            raise ValueError(
                f"image_size={self.image_size} is not supported: use one of {list(IMAGE_SIZES)}"
            )


@dataclass(frozen=True)
class Concept:
    """One concept: index and attribute values."""

    index: int
    size: str
    colour: str
    shape: str

    @property
    def name(self) -> str:
        return f"{self.size} {self.colour} {self.shape}"

    @property
    def words(self) -> tuple[str, str, str]:
        return (self.size, self.colour, self.shape)

    def caption(self, template: int = 0) -> str:
        return TEMPLATES[template % len(TEMPLATES)].format(
            size=self.size, colour=self.colour, shape=self.shape
        )


@dataclass(frozen=True)
class Dataset:
    """A batch of world samples.

    images: (N, 3, S, S) float32 in [-1, 1]; labels: (N,) int64 concept ids;
    captions: N strings; templates: (N,) int64 template ids.
    """

    images: np.ndarray
    labels: np.ndarray
    captions: list[str]
    templates: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __len__(self) -> int:
        return int(self.labels.shape[0])


class World:
    """The procedural concept world for a :class:`WorldConfig`."""

    def __init__(self, config: WorldConfig | None = None) -> None:
        self.config = config or WorldConfig()
        n_col, n_shp = _grid_for(self.config.n_concepts)
        self.colours: tuple[str, ...] = tuple(list(ALL_COLOURS)[:n_col])
        self.shapes: tuple[str, ...] = ALL_SHAPES[:n_shp]
        self.sizes: tuple[str, ...] = ALL_SIZES
        self.concepts: tuple[Concept, ...] = tuple(
            Concept(i, size, colour, shape)
            for i, (size, colour, shape) in enumerate(
                (z, c, s) for z in self.sizes for c in self.colours for s in self.shapes
            )
        )

    # ---------------------------------------------------------------- names and relations
    @property
    def n_concepts(self) -> int:
        return len(self.concepts)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.concepts]

    def index(self, name: str) -> int:
        """Concept id of a name like ``"large red star"``; ValueError lists the valid names."""
        for c in self.concepts:
            if c.name == name.strip().lower():
                return c.index
        raise ValueError(f"unknown concept {name!r}; valid concepts: {', '.join(self.names)}")

    @cached_property
    def attribute_ids(self) -> np.ndarray:
        """(K, 3) int64: per concept, the index of its size, colour and shape."""
        return np.array(
            [
                [self.sizes.index(c.size), self.colours.index(c.colour), self.shapes.index(c.shape)]
                for c in self.concepts
            ],
            dtype=np.int64,
        )

    @cached_property
    def relation(self) -> np.ndarray:
        """(K, K) int64: number of attribute words concept i shares with concept j (diagonal 3)."""
        a = self.attribute_ids
        return (a[:, None, :] == a[None, :, :]).sum(-1).astype(np.int64)

    def related(self, i: int, min_shared: int = 2) -> list[int]:
        """Concepts sharing at least ``min_shared`` attribute words with concept i (i excluded)."""
        return [j for j in range(self.n_concepts) if j != i and self.relation[i, j] >= min_shared]

    @property
    def vocabulary(self) -> list[str]:
        """Every word any caption can contain, sorted."""
        words: set[str] = set()
        for t in TEMPLATES:
            words.update(w.strip(",") for w in t.split() if not w.startswith("{"))
        words.update(ALL_SIZES)
        words.update(ALL_COLOURS)
        words.update(ALL_SHAPES)
        return sorted(words)

    def parse_prompt(self, prompt: str) -> int | None:
        """Concept id named by a prompt, or None when the prompt names no complete concept."""
        words = set(prompt.lower().replace(",", " ").split())
        for c in self.concepts:
            if set(c.words) <= words:
                return c.index
        return None

    # ---------------------------------------------------------------- sampling
    def sample(
        self,
        n_per_concept: int,
        seed: int | None = None,
        concepts: list[int] | None = None,
    ) -> Dataset:
        """Draw ``n_per_concept`` images of each concept (all concepts by default).

        Deterministic for a given (config.seed, seed). Captions cycle through the templates.
        """
        if n_per_concept < 1:
            raise ValueError(f"n_per_concept must be ≥ 1, got {n_per_concept}")
        ids = list(range(self.n_concepts)) if concepts is None else list(concepts)
        rng = np.random.default_rng([self.config.seed, 0 if seed is None else seed + 1])
        labels = np.repeat(np.asarray(ids, dtype=np.int64), n_per_concept)
        templates = rng.integers(0, len(TEMPLATES), size=labels.shape[0])
        images = self.render(labels, rng)
        captions = [self.concepts[k].caption(int(t)) for k, t in zip(labels, templates)]
        return Dataset(images, labels, captions, templates.astype(np.int64))

    def render(self, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Rasterise one image per label: (N, 3, S, S) float32 in [-1, 1]."""
        n, s = labels.shape[0], self.config.image_size
        attrs = self.attribute_ids[labels]
        # Per-image nuisance: position jitter, rotation, colour and background variation.
        radius = np.where(attrs[:, 0] == 0, 0.34, 0.62) * (1 + rng.uniform(-0.08, 0.08, n))
        max_shift = np.clip(0.95 - radius, 0.05, None)
        cx = rng.uniform(-1, 1, n) * max_shift * 0.5
        cy = rng.uniform(-1, 1, n) * max_shift * 0.5
        theta = rng.uniform(-0.25, 0.25, n)
        coords = (np.arange(s, dtype=np.float32) + 0.5) / s * 2 - 1
        yy, xx = np.meshgrid(coords, coords, indexing="ij")
        x = xx[None] - cx[:, None, None].astype(np.float32)
        y = yy[None] - cy[:, None, None].astype(np.float32)
        ct, st = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
        x, y = (ct * x + st * y).astype(np.float32), (-st * x + ct * y).astype(np.float32)
        r = radius[:, None, None].astype(np.float32)
        sdf = np.empty((n, s, s), dtype=np.float32)
        for shape_id, shape in enumerate(self.shapes):
            m = attrs[:, 2] == shape_id
            if m.any():
                sdf[m] = _SDF[shape](x[m], y[m], r[m])
        aa = 1.5 / s  # anti-aliasing width: one and a half pixels
        alpha = np.clip(0.5 - sdf / aa, 0.0, 1.0)[:, None]
        palette = np.array([ALL_COLOURS[c] for c in self.colours], dtype=np.float32)
        fg = palette[attrs[:, 1]] + rng.normal(0, 0.04, (n, 3)).astype(np.float32)
        bg = (
            0.12
            + rng.uniform(-0.06, 0.06, (n, 1)).astype(np.float32)
            + np.zeros((n, 3), np.float32)
        )
        img = alpha * fg[:, :, None, None] + (1 - alpha) * bg[:, :, None, None]
        img += rng.normal(0, 0.015, img.shape).astype(np.float32)
        return (np.clip(img, 0, 1) * 2 - 1).astype(np.float32)


# -------------------------------------------------------------------- signed distance functions
# Each takes x, y: (m, S, S) and r: (m, 1, 1); negative inside. Units: image half-widths.


def _circle(x: np.ndarray, y: np.ndarray, r: np.ndarray) -> np.ndarray:
    return np.sqrt(x * x + y * y) - r


def _square(x: np.ndarray, y: np.ndarray, r: np.ndarray) -> np.ndarray:
    return np.maximum(np.abs(x), np.abs(y)) - 0.85 * r


def _diamond(x: np.ndarray, y: np.ndarray, r: np.ndarray) -> np.ndarray:
    return (np.abs(x) + np.abs(y)) / math.sqrt(2) - 0.75 * r


def _triangle(x: np.ndarray, y: np.ndarray, r: np.ndarray) -> np.ndarray:
    # Upward equilateral triangle, circumradius r, centroid at the origin: the max over its three
    # outward edge normals (down, down-left rotated, down-right rotated) minus the inradius r/2.
    k = math.sqrt(3) / 2
    d = np.maximum(y, np.maximum(-k * x - 0.5 * y, k * x - 0.5 * y))
    return d - 0.5 * r


def _star(x: np.ndarray, y: np.ndarray, r: np.ndarray) -> np.ndarray:
    ang = np.arctan2(y, x)
    rad = np.sqrt(x * x + y * y)
    edge = r * (0.68 + 0.32 * np.cos(5 * (ang + math.pi / 2)))
    return rad - edge


def _cross(x: np.ndarray, y: np.ndarray, r: np.ndarray) -> np.ndarray:
    ax, ay = np.abs(x), np.abs(y)
    arm_w = 0.3 * r
    h = np.maximum(ax - r, ay - arm_w)
    v = np.maximum(ax - arm_w, ay - r)
    return np.minimum(h, v)


def _ring(x: np.ndarray, y: np.ndarray, r: np.ndarray) -> np.ndarray:
    return np.abs(np.sqrt(x * x + y * y) - 0.75 * r) - 0.25 * r


def _bar(x: np.ndarray, y: np.ndarray, r: np.ndarray) -> np.ndarray:
    return np.maximum(np.abs(x) - r, np.abs(y) - 0.32 * r)


_SDF = {
    "circle": _circle,
    "square": _square,
    "triangle": _triangle,
    "star": _star,
    "cross": _cross,
    "ring": _ring,
    "diamond": _diamond,
    "bar": _bar,
}
