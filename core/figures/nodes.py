"""Alignment-graph nodes: the concept node traces (captions, mean images, landing points), and
as things to look at, thumbnails at node positions, the concept a click selected, and a
per-concept card (caption, images, where its caption lands).

Plotly hover labels cannot show images, so the graph offers the equivalent two ways: small
``layout.images`` next to the nodes (a clean training image at each caption, the generated image
at each "where the caption lands" diamond), and a side panel for a clicked node built from
:func:`concept_card`. Pure functions: numpy in, dicts / figure updates out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from core.figures.images import png_data_uri
from core.figures.palette import BLACK, GENERATED, IMAGE, POISONED, TEXT, rgba

THUMB_FRACTION = 0.075  # thumbnail side as a fraction of the layout's larger extent


def reference_images(
    names: Sequence[str], image_size: int = 32, seed: int = 0
) -> np.ndarray | None:
    """One clean training image per concept from the procedural world: (K, S, S, 3) uint8.

    None when ``names`` are not the world's concepts in world order (e.g. a real-model pack),
    so callers fall back to generated images.
    """
    from core.world import World, WorldConfig, valid_n_concepts

    k = len(names)
    if k not in valid_n_concepts():
        return None
    try:
        world = World(WorldConfig(n_concepts=k, image_size=image_size))
    except ValueError:
        return None
    if world.names != [str(n) for n in names]:
        return None
    x = world.sample(1, seed=seed).images  # (K, 3, S, S) float32 in [-1, 1], concept order
    return ((x.transpose(0, 2, 3, 1) + 1) * 127.5).round().clip(0, 255).astype(np.uint8)


def thumbnail_size(pos: Mapping[str, Any], c_p: int) -> float:
    """Thumbnail side in layout units: a fixed fraction of the extent of everything drawn."""
    pts = np.concatenate([pos["text_concept"], pos["image_concept"], pos["generated"][c_p]])
    extent = float((pts.max(0) - pts.min(0)).max())
    return THUMB_FRACTION * (extent if extent > 0 else 1.0)


def thumbnail_images(
    points: np.ndarray, images: np.ndarray, panel: int, size: float
) -> list[dict[str, Any]]:
    """``layout.images`` entries placing ``images[i]`` (S, S, 3 uint8) beside ``points[i]``.

    Each picture sits just above-right of its node (corner at the node), under the traces, so the
    node's colour, ×-marker and name label stay visible. ``panel`` is the subplot column (1 text, 2 image graph).
    """
    if len(points) != len(images):
        raise ValueError(f"{len(points)} points but {len(images)} images; need one per point")
    ax = "" if panel == 1 else str(panel)
    gap = 0.12 * size
    return [
        {
            "source": png_data_uri(img),
            "xref": f"x{ax}",
            "yref": f"y{ax}",
            "x": float(p[0]) + gap,
            "y": float(p[1]) + gap,
            "sizex": size,
            "sizey": size,
            "xanchor": "left",
            "yanchor": "bottom",
            "sizing": "contain",
            # under the traces: node markers and the names of poisoned nodes stay readable
            "layer": "below",
            "opacity": 1.0,
        }
        for p, img in zip(points, images)
    ]


def add_thumbnails(
    fig: go.Figure,
    pos: Mapping[str, Any],
    c_p: int,
    clean: np.ndarray | None = None,
    generated: np.ndarray | None = None,
) -> go.Figure:
    """Put thumbnails at the nodes of an :func:`~core.figures.graph.alignment_graph_figure`.

    ``clean`` (K, S, S, 3): a clean image per concept, drawn at each caption (text graph) —
    what the caption means. ``generated`` (K, S, S, 3): what the model generates for each caption
    at this C_P, drawn at the "where the caption lands" diamonds (image graph) — what it learned.
    Without ``generated``, the clean images go at the image-concept nodes instead.
    """
    size = thumbnail_size(pos, c_p)
    images: list[dict[str, Any]] = []
    if clean is not None:
        images += thumbnail_images(pos["text_concept"], clean, 1, size)
    if generated is not None:
        images += thumbnail_images(pos["generated"][c_p], generated, 2, size)
    elif clean is not None:
        images += thumbnail_images(pos["image_concept"], clean, 2, size)
    fig.update_layout(images=list(fig.layout.images) + images)
    return fig


def drift(generated: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """Per-concept 1 − cos(generated_c, generated_0): how far each caption's landing point moved
    in embedding space since C_P = 0. (K, d), (K, d) → (K,) float64 in [0, 2]."""
    a = np.asarray(generated, dtype=np.float64)
    b = np.asarray(baseline, dtype=np.float64)
    na = np.linalg.norm(a, axis=1).clip(1e-12)
    nb = np.linalg.norm(b, axis=1).clip(1e-12)
    return 1.0 - (a * b).sum(1) / (na * nb)


def add_labels(
    fig: go.Figure,
    text_pos: np.ndarray,
    landing_pos: np.ndarray,
    names: Sequence[str],
    labels: Sequence[int],
    selected: int | None,
    poisoned: set[int],
    area: tuple[float, float] = (210.0, 300.0),
) -> go.Figure:
    """Write concept names beside nodes a speaker points at: every id in ``labels`` beside its
    caption (text graph, panel 1) and ``selected`` also beside where its caption lands ◆ (image
    graph, panel 2). Poisoned names start with “× ”. ``*_pos``: (K, 2) positions; ``area``: the
    text panel's node area in pixels (:func:`place_labels`)."""
    k = len(names)
    named = sorted({int(i) for i in [*labels, *([] if selected is None else [selected])]})
    named = [i for i in named if 0 <= i < k]
    for col, xy, where, ids in (
        (1, text_pos, "top center", named),
        (2, landing_pos, "bottom center", [i for i in named if i == selected]),
    ):
        if not ids:
            continue
        text = [("× " if i in poisoned else "") + names[i] for i in ids]
        fig.add_trace(
            go.Scatter(
                x=xy[ids, 0],
                y=xy[ids, 1],
                mode="text",
                text=text,
                textposition=place_labels(xy[ids], text, xy, area) if len(ids) > 1 else where,
                textfont={"size": 16, "color": BLACK},
                cliponaxis=False,
                hoverinfo="skip",
                showlegend=False,
                name="labels",
            ),
            1,
            col,
        )
    return fig


LABEL_POSITIONS = ("top center", "bottom center", "middle right", "middle left")


def place_labels(
    xy: np.ndarray,
    text: Sequence[str],
    frame: np.ndarray,
    panel_px: tuple[float, float] = (210.0, 300.0),
    font_px: float = 16.0,
) -> list[str]:
    """A Plotly ``textposition`` per label so that labels overlap as little as the four places
    beside their node allow (a few passes of local search): each label's box is estimated from its
    length in a ``font_px`` font on a panel of ``panel_px`` (width, height) pixels that spans
    ``frame``'s points (all nodes drawn there), so it works in any data units."""
    lo, span = frame.min(0), np.ptp(frame, 0)
    span = np.where(span > 0, span, 1.0)
    pts = (xy - lo) / span * np.asarray(panel_px)  # pixels, y up
    # Measured in Chromium at 1280 px (text boxes' getBoundingClientRect): the node frame spans
    # ~205 × 295 px, a 16-px label ~0.45 em per character and 17 px high, its edge at the node;
    # ``pad`` keeps a few pixels between labels.
    char_w, line_h, gap, pad = 0.45 * font_px, 1.1 * font_px, 0.0, 4.0
    out = ["top center"] * len(text)

    def box(i: int, where: str) -> tuple[float, float, float, float]:
        w, (x, y) = char_w * len(text[i]), pts[i]
        if where == "top center":
            return (x - w / 2, y + gap, x + w / 2, y + gap + line_h)
        if where == "bottom center":
            return (x - w / 2, y - gap - line_h, x + w / 2, y - gap)
        if where == "middle right":
            return (x + gap, y - line_h / 2, x + gap + w, y + line_h / 2)
        return (x - gap - w, y - line_h / 2, x - gap, y + line_h / 2)

    def overlap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
        dx = min(a[2], b[2]) - max(a[0], b[0]) + pad
        dy = min(a[3], b[3]) - max(a[1], b[1]) + pad
        return max(dx, 0.0) * max(dy, 0.0)

    def outside(a: tuple[float, ...]) -> float:
        """Area past the panel's free margins (the neighbouring panel, the title, the legend)."""
        w, h = panel_px
        ox = max(0.0, -60.0 - a[0]) + max(0.0, a[2] - (w + 30.0))
        oy = max(0.0, -20.0 - a[1]) + max(0.0, a[3] - (h + 20.0))
        return ox * (a[3] - a[1]) + oy * (a[2] - a[0])

    # Local search: each label in turn moves to its least-overlapping place given all the others
    # (ties keep the earlier place in LABEL_POSITIONS, so free labels stay above their node).
    for _ in range(4):
        changed = False
        for i in sorted(range(len(text)), key=lambda j: -pts[j, 1]):
            others = [box(j, out[j]) for j in range(len(text)) if j != i]
            costs = [
                sum(overlap(box(i, w), b) for b in others) + outside(box(i, w))
                for w in LABEL_POSITIONS
            ]
            best = LABEL_POSITIONS[int(np.argmin(costs))]
            changed |= best != out[i]
            out[i] = best
        if not changed:
            break
    return out


def selected_concept(points: Sequence[Mapping[str, Any]] | None) -> int | None:
    """Concept id of the first selected node (its ``customdata``), from a Plotly selection event's
    ``points`` (``st.plotly_chart(on_select=...)``). None when no node was selected (edges and
    pair markers carry no concept id)."""
    for p in points or ():
        cd = p.get("customdata")
        if isinstance(cd, list | tuple):
            cd = cd[0] if cd else None
        if isinstance(cd, int | float) and not isinstance(cd, bool):
            return int(cd)
    return None


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True).clip(1e-12)


def concept_card(
    arrays: Mapping[str, np.ndarray],
    i: int,
    names: Sequence[str],
    poisoned: Sequence[int],
    targets: Mapping[int, int] | None = None,
) -> dict[str, Any]:
    """What the side panel says about concept ``i`` at one level.

    ``arrays``: the level's arrays (``image`` (n, d), ``image_concept``, ``caption_concept``,
    ``poisoned`` (n,), ``generated`` (K, d)). Returns name, caption, poisoned flag and target,
    counts of clean / poisoned training pairs captioned with ``i``, ``alignment`` = cos(generated
    embedding of caption i, mean embedding of real images of i), and ``lands_on`` = the concept
    whose mean image embedding is most cosine-similar to the generated one, with that cosine.
    """
    k = len(names)
    if not 0 <= i < k:
        raise ValueError(f"concept id {i} out of range; {k} concepts (0 … {k - 1})")
    labels = arrays["image_concept"].astype(np.int64)
    means = np.zeros((k, arrays["image"].shape[1]))
    np.add.at(means, labels, arrays["image"])
    has_images = np.bincount(labels, minlength=k) > 0
    means = _unit(means)
    gen = _unit(np.asarray(arrays["generated"][i], dtype=np.float64))
    sims = means @ gen
    sims[~has_images] = -np.inf
    nearest = int(np.argmax(sims))
    cap = arrays["caption_concept"].astype(np.int64) == i
    flag = arrays["poisoned"].astype(bool)
    tgt = (targets or {}).get(i)
    pois = i in {int(p) for p in poisoned}
    return {
        "id": i,
        "name": str(names[i]),
        "caption": f"a photo of a {names[i]}",
        "poisoned": pois,
        "target": str(names[tgt]) if pois and tgt is not None else None,
        "clean_pairs": int((cap & ~flag).sum()),
        "poisoned_pairs": int((cap & flag).sum()),
        "alignment": float(sims[i]) if has_images[i] else None,
        "lands_on": str(names[nearest]),
        "lands_on_cos": float(sims[nearest]),
    }


def _nodes(
    fig: go.Figure,
    pos: np.ndarray,
    ids: list[int],
    text: list[str],
    col: int,
    *,
    name: str,
    colour: str,
    symbol: str,
    size: int = 12,
    outline: bool = True,
    showlegend: bool = True,
) -> None:
    """Concept nodes at ``pos`` (n, 2) in panel ``col``; ``customdata`` carries the concept ids
    (click selection) and the legend group is the trace name (one toggle per node class)."""
    marker: dict[str, Any] = {"color": colour, "size": size, "symbol": symbol}
    if outline:
        marker["line"] = {"color": BLACK, "width": 1}
    fig.add_trace(
        go.Scatter(
            x=pos[:, 0],
            y=pos[:, 1],
            mode="markers",
            name=name,
            showlegend=showlegend,
            marker=marker,
            text=text,
            customdata=ids,
            hoverinfo="text",
            legendgroup=name,
        ),
        1,
        col,
    )


def concept_nodes(
    fig: go.Figure,
    pos: Mapping[str, Any],
    c_p: int,
    names: Sequence[str],
    pset: set[int],
    targets: Mapping[int, int],
    moved: np.ndarray | None,
) -> None:
    """Caption nodes (clean ■, poisoned ×; faint copies in the image panel, where the caption
    should land), concept image means ● and where each caption lands ◆."""
    k = len(names)
    tpos = pos["text_concept"]

    def node_text(i: int) -> str:
        s = f"<b>{names[i]}</b><br>caption: “a photo of a {names[i]}”"
        if i in pset:
            t = targets.get(i)
            s += "<br>POISONED" + (f" → target “{names[t]}”" if t is not None else "")
        return s

    clean_ids = [i for i in range(k) if i not in pset]
    pois_ids = sorted(pset)
    for ids, label, colour, symbol in (
        (clean_ids, "caption (clean concept)", TEXT, "square"),
        (pois_ids, "caption (poisoned concept) ×", POISONED, "x"),
    ):
        if ids:
            text = [node_text(i) for i in ids]
            _nodes(fig, tpos[ids], ids, text, 1, name=label, colour=colour, symbol=symbol)
            _nodes(
                fig,
                tpos[ids],
                ids,
                text,
                2,
                name=label,
                colour=rgba(colour, 0.3),
                symbol=symbol,
                size=9,
                outline=False,
                showlegend=False,
            )
    _nodes(
        fig,
        pos["image_concept"],
        list(range(k)),
        [f"<b>images of {n}</b>" for n in names],
        2,
        name="image concept (mean image)",
        colour=IMAGE,
        symbol="circle",
    )
    _nodes(
        fig,
        pos["generated"][c_p],
        list(range(k)),
        [
            f"generated from “{names[i]}”<br>caption: “a photo of a {names[i]}” (C_P = {c_p})"
            + ("" if moved is None else f"<br>moved {moved[i]:.2f} (1 − cos) since C_P = 0")
            for i in range(k)
        ],
        2,
        name="where the caption lands ◆",
        colour=GENERATED,
        symbol="diamond",
        size=10,
    )
