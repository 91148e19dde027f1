"""The concept world: procedural, seeded images of coloured shapes with captions.

A *concept* is a combination of three attributes shared with other concepts:
``size × colour × shape`` (e.g. "large red star"). Concepts that share a word are *related*
(poisoning "red star" is expected to bleed into "red circle" and "large star"); the relation
table makes that measurable.

Images are rasterised in numpy from signed distance functions, vectorised over the whole batch,
so 30,000 images at 32 px take a few seconds. Two styles:

* ``flat``: one flat-coloured shape on a dark grey background (the fast world of the tests).
* ``textured``: the same concepts drawn with detail an image encoder must keep and a viewer can
  see fail: a pattern printed on the shape (stripes, checks or dots), bevel shading and a drop
  shadow, a tinted patterned background, a lighting gradient and sensor noise. None of these
  nuisances is named by a caption, so concepts still relate only through their three words.

Shapes: images ``(N, 3, S, S)`` float32 in [-1, 1] (the diffusion convention); labels ``(N,)`` int64
concept ids; attribute ids ``(N, 3)`` int64 (size, colour, shape).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

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
STYLES: tuple[str, ...] = ("flat", "textured")
MAX_TEXTURE = 2.0
MAX_NOISE = 0.1


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
    style: ``flat`` (default) or ``textured`` (patterns, shading, backgrounds, lighting; meant
        for 64 px).
    texture: strength of the textured style's patterns and lighting, 0 … 2 (1 = as designed; 0
        keeps shading and backgrounds but no patterns). Only the textured style reads it.
    noise: standard deviation of the textured style's per-pixel sensor noise, in [0, 1] pixel
        units, 0 … 0.1 (0.02 as designed; 0 = noiseless images, same draws otherwise).
    """

    n_concepts: int = 32
    image_size: int = 32
    seed: int = 0
    style: str = "flat"
    texture: float = 1.0
    noise: float = 0.02

    def __post_init__(self) -> None:
        if not isinstance(self.n_concepts, int) or isinstance(self.n_concepts, bool):
            raise ValueError(f"n_concepts must be an integer, got {self.n_concepts!r}")
        _grid_for(self.n_concepts)
        if self.image_size not in IMAGE_SIZES:
            raise ValueError(
                f"image_size={self.image_size} is not supported: use one of {list(IMAGE_SIZES)}"
            )
        if self.style not in STYLES:
            raise ValueError(f"style={self.style!r} is not supported: use one of {list(STYLES)}")
        if not (isinstance(self.texture, (int, float)) and 0 <= self.texture <= MAX_TEXTURE):
            raise ValueError(f"texture={self.texture!r} must be a number in [0, {MAX_TEXTURE}]")
        if not (isinstance(self.noise, (int, float)) and 0 <= self.noise <= MAX_NOISE):
            raise ValueError(f"noise={self.noise!r} must be a number in [0, {MAX_NOISE}]")


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
        if self.config.style == "textured":
            return _render_textured(self, labels, rng)
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


# -------------------------------------------------------------------- the textured style
_CHUNK = 1024  # images rasterised at once: bounds the temporaries (~50 MB each at 64 px)


def _render_textured(world: World, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The ``textured`` style: (N, 3, S, S) float32 in [-1, 1]; coordinates in image half-widths.

    Per image: shape placement as the flat style (wider rotation), fill = colour × bevel shading ×
    (1 + a · pattern) with a pattern of period 5–10 px at 64 px (stripes, checks or dots, turning
    with the shape); background = tinted grey × low-frequency blotches + a fine grating, darkened
    by the shape's soft drop shadow; the whole image × a linear lighting ramp, plus sensor noise.
    Pattern, blotch, grating and ramp amplitudes scale with ``config.texture``.
    """
    n, s, k = labels.shape[0], world.config.image_size, float(world.config.texture)
    attrs = world.attribute_ids[labels]
    # Every per-image parameter is drawn here, in one fixed order (determinism per rng state).
    radius = np.where(attrs[:, 0] == 0, 0.34, 0.62) * (1 + rng.uniform(-0.08, 0.08, (n,)))
    max_shift = np.clip(0.95 - radius, 0.05, None)
    cx = rng.uniform(-1, 1, (n,)) * max_shift * 0.5
    cy = rng.uniform(-1, 1, (n,)) * max_shift * 0.5
    theta = rng.uniform(-0.4, 0.4, (n,))
    palette = np.array([ALL_COLOURS[c] for c in world.colours])
    fg = palette[attrs[:, 1]] + rng.normal(0, 0.04, (n, 3))
    pattern = rng.integers(0, 3, (n,))  # 0 stripes, 1 checks, 2 dots
    p_freq = rng.uniform(20.0, 40.0, (n,))  # radians per half-width: period 2π/f · S/2 px
    p_angle = rng.uniform(0, math.pi, (n,))
    p_amp = 0.25 * k * rng.uniform(0.6, 1.0, (n,))
    bg = rng.uniform(0.12, 0.42, (n, 1)) + rng.normal(0, 0.06, (n, 3))
    blot_f = rng.uniform(2.0, 6.0, (n, 2))
    blot_phase = rng.uniform(0, 2 * math.pi, (n, 2))
    grate_f = rng.uniform(25.0, 45.0, (n,))
    grate_angle = rng.uniform(0, math.pi, (n,))
    light_angle = rng.uniform(0, 2 * math.pi, (n,))
    light = 0.3 * k * rng.uniform(0.0, 1.0, (n,))

    coords = (np.arange(s, dtype=np.float32) + 0.5) / s * 2 - 1
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    out = np.empty((n, 3, s, s), dtype=np.float32)
    aa = 1.5 / s

    def col(v: np.ndarray) -> np.ndarray:  # per-image scalars → (m, 1, 1) float32
        return v[:, None, None].astype(np.float32)

    def shape_sdf(m: slice, ox: np.ndarray, oy: np.ndarray) -> tuple[np.ndarray, ...]:
        ct, st = col(np.cos(theta[m])), col(np.sin(theta[m]))
        x0, y0 = xx[None] - col(cx[m] + ox), yy[None] - col(cy[m] + oy)
        x, y = ct * x0 + st * y0, -st * x0 + ct * y0
        r = col(radius[m])
        sdf = np.empty(x.shape, dtype=np.float32)
        for shape_id, shape in enumerate(world.shapes):
            sel = attrs[m, 2] == shape_id
            if sel.any():
                sdf[sel] = _SDF[shape](x[sel], y[sel], r[sel])
        return sdf, x, y, r

    for i in range(0, n, _CHUNK):
        m = slice(i, min(n, i + _CHUNK))
        sdf, x, y, r = shape_sdf(m, np.zeros(1), np.zeros(1))
        alpha = np.clip(0.5 - sdf / aa, 0.0, 1.0)
        # Drop shadow: the same shape moved away from the light, with a soft edge.
        off = 0.07 * np.stack([-np.cos(light_angle[m]), -np.sin(light_angle[m])])
        shadow_sdf = shape_sdf(m, off[0], off[1])[0]
        shadow = np.clip(0.5 - shadow_sdf / (6 * aa), 0.0, 1.0)
        bevel = 0.78 + 0.22 * np.clip(-sdf / (0.3 * r), 0.0, 1.0)
        ca, sa = col(np.cos(p_angle[m])), col(np.sin(p_angle[m]))
        f = col(p_freq[m])
        u, v = f * (ca * x + sa * y), f * (-sa * x + ca * y)
        pid = col(pattern[m])
        pat = np.where(
            pid == 0,
            np.sin(u),
            np.where(
                pid == 1, np.tanh(3 * np.sin(u)) * np.tanh(3 * np.sin(v)), np.cos(u) * np.cos(v)
            ),
        )
        shade = bevel * (1 + col(p_amp[m]) * pat)
        bf, bp = blot_f[m], blot_phase[m]
        blot = 0.5 * (
            np.sin(col(bf[:, 0]) * xx[None] + col(bp[:, 0]))
            + np.sin(col(bf[:, 1]) * yy[None] + col(bp[:, 1]))
        )
        ga, gs = col(np.cos(grate_angle[m])), col(np.sin(grate_angle[m]))
        grate = np.sin(col(grate_f[m]) * (ga * xx[None] + gs * yy[None]))
        ground = (1 + 0.25 * k * blot + 0.12 * k * grate) * (1 - 0.45 * shadow)
        la, ls = col(np.cos(light_angle[m])), col(np.sin(light_angle[m]))
        ramp = 1 + col(light[m]) * (la * xx[None] + ls * yy[None]) / math.sqrt(2)
        fg_c = fg[m].astype(np.float32)[:, :, None, None]
        bg_c = bg[m].astype(np.float32)[:, :, None, None]
        a4 = alpha[:, None]
        img = (a4 * fg_c * shade[:, None] + (1 - a4) * bg_c * ground[:, None]) * ramp[:, None]
        img += rng.normal(0, world.config.noise, img.shape).astype(np.float32)
        out[m] = np.clip(img, 0, 1) * 2 - 1
    return out


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


def model_world(model: str | Path | None = None) -> World:
    """The concept world of a model folder (read from its ``model.json``; default: the shipped
    base), so K and the concept names always come from the chosen model."""
    import json

    from core.io import default_base

    folder = Path(model) if model else default_base()
    meta = folder / "model.json"
    if not meta.is_file():
        raise ValueError(
            f"model: {folder} has no model.json; give a folder written by `implosion train-base` "
            "(or restore the shipped base with `git checkout assets/`)"
        )
    try:
        return World(WorldConfig(**json.loads(meta.read_text())["world"]))
    except (KeyError, TypeError, json.JSONDecodeError) as e:
        raise ValueError(f"model: {meta} is not a model description ({e})") from e
