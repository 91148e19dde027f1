"""The alignment graph: text graph and image graph side by side in one shared 2-D layout.

Left panel: captions (text graph). Right panel: images (image graph), the training pairs that
supervise the text→image mapping (clean in blue, poisoned in dashed vermillion) and arrows from
each caption's text position to where the fine-tuned model actually lands it in image space
(``generated_{c}``), so the distortion caused by poisoning is visible. Both panels share axes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.figures.layout import fit_layout
from core.figures.nodes import add_labels, concept_nodes, drift
from core.figures.palette import CLEAN, GENERATED, IMAGE, POISONED, TEXT, rgba, style

WEBGL_THRESHOLD = 1000  # points per trace above which Scattergl is used
# How the graph shows distortion. "arrows": caption → where the model lands it (length ≠ 0 even
# at C_P = 0). "drift": where the caption landed at C_P = 0 → where it lands now, so the arrows
# start at zero length and grow with C_P. Measured on the demo pack (mean over unpoisoned
# concepts, in units of the layout's extent, C_P 0 → 24): arrows 0.09 → 0.30, drift 0.00 → 0.26,
# tracking the embedding-space drift 1 − cos 0.00 → 0.24; so presenter mode uses "drift".
DISTORTIONS: tuple[str, ...] = ("arrows", "drift")


def _concept_means(x: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Per-concept mean direction, renormalised to unit length (averaging unit vectors shrinks
    them, which would pull image nodes toward the centre of the layout)."""
    out = np.zeros((k, x.shape[1]))
    np.add.at(out, labels, x)
    return out / np.linalg.norm(out, axis=1, keepdims=True).clip(1e-12)


def graph_positions(
    text_concept: np.ndarray,
    levels: Mapping[int, Mapping[str, np.ndarray]],
    method: str = "pca",
    seed: int = 0,
    pair_limit: int | None = 512,
) -> dict[str, Any]:
    """2-D positions of everything the graph draws, from one layout fitted on all levels.

    Args: ``text_concept`` (K, d); ``levels`` c → arrays ``image``, ``text`` (n, d),
    ``image_concept``, ``caption_concept`` (n,), ``generated`` (K, d).
    Each modality is centred on its own mean first (closes the CLIP modality gap).
    Returns {"text_concept": (K, 2), "image_concept": (K, 2), "generated": {c: (K, 2)},
    "pairs": {c: {"image": (m, 2), "text": (m, 2), "index": (m,) rows used}}}.
    """
    k = text_concept.shape[0]
    keys = sorted(levels)
    all_img = np.concatenate([levels[c]["image"] for c in keys])
    all_lab = np.concatenate([levels[c]["image_concept"] for c in keys])
    # Close the modality gap: CLIP-like spaces put all texts in one cone and all images in another,
    # so each modality is centred on its own mean before the shared layout is fitted. Then a clean
    # caption sits next to its images and only poisoned pairs span the map.
    mu_t = text_concept.mean(0)
    mu_v = all_img.mean(0)
    text_concept = text_concept - mu_t
    image_concept = _concept_means(all_img, all_lab.astype(np.int64), k) - mu_v
    blocks: list[np.ndarray] = [text_concept, image_concept]
    blocks += [levels[c]["generated"] - mu_v for c in keys]
    index: dict[int, np.ndarray] = {}
    for c in keys:
        n = levels[c]["image"].shape[0]
        idx = np.arange(n)
        if pair_limit is not None and n > pair_limit:
            idx = np.sort(np.random.default_rng([seed, c]).choice(n, pair_limit, replace=False))
        index[c] = idx
        blocks += [levels[c]["image"][idx] - mu_v, levels[c]["text"][idx] - mu_t]
    ys = fit_layout(blocks, method=method, seed=seed)
    out: dict[str, Any] = {
        "text_concept": ys[0],
        "image_concept": ys[1],
        "generated": {},
        "pairs": {},
    }
    for j, c in enumerate(keys):
        out["generated"][c] = ys[2 + j]
    base = 2 + len(keys)
    for j, c in enumerate(keys):
        out["pairs"][c] = {
            "image": ys[base + 2 * j],
            "text": ys[base + 2 * j + 1],
            "index": index[c],
        }
    return out


def knn_edges(x: np.ndarray, k: int = 2) -> list[tuple[int, int]]:
    """Undirected edges from each row to its k most cosine-similar rows (similarity graph)."""
    z = x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)
    sim = z @ z.T
    np.fill_diagonal(sim, -np.inf)
    nn = np.argsort(-sim, axis=1)[:, :k]
    return sorted({(min(i, int(j)), max(i, int(j))) for i in range(len(x)) for j in nn[i]})


def _segments(pos_a: np.ndarray, pos_b: np.ndarray, pairs: Sequence[tuple[int, int]]) -> tuple:
    """x, y lists of line segments a[i] → b[j] separated by None (one trace per edge class)."""
    xs: list[float | None] = []
    ys: list[float | None] = []
    for i, j in pairs:
        xs += [float(pos_a[i, 0]), float(pos_b[j, 0]), None]
        ys += [float(pos_a[i, 1]), float(pos_b[j, 1]), None]
    return xs, ys


def _scatter(n: int) -> type[go.Scatter] | type[go.Scattergl]:
    return go.Scattergl if n > WEBGL_THRESHOLD else go.Scatter


@dataclass(frozen=True)
class GraphOptions:
    """How :func:`alignment_graph_figure` draws a level (defaults: the Graph page's).

    ``show_pairs``: individual training pairs as points; ``knn``: similarity edges to each node's
    ``knn`` nearest neighbours (needs ``text_concept`` (K, d), the concept prompts' embeddings;
    0: none); ``labels``: concept ids named beside their caption node (the page passes the
    poisoned ones, so a speaker can point at them); ``selected``: one concept named beside its
    caption and its landing point ◆; ``distortion``: "arrows" (caption → landing point) or "drift"
    (landing point at C_P = 0 → now; needs level 0 in the layout); ``baseline`` (K, d): generated
    embeddings at C_P = 0, for the drift numbers in hover and title; ``thumbnails``: optional
    ``{"clean": (K, S, S, 3), "generated": (K, S, S, 3)}`` uint8 drawn beside the nodes
    (:func:`core.figures.nodes.add_thumbnails`); ``label_area``: (width, height) in pixels of
    the text panel's nodes as the page draws them, for placing ``labels`` so they do not overlap
    (:func:`core.figures.nodes.place_labels`)."""

    show_pairs: bool = False
    knn: int = 2
    text_concept: np.ndarray | None = None
    height: int = 620
    thumbnails: Mapping[str, np.ndarray | None] | None = None
    labels: Sequence[int] = ()
    selected: int | None = None
    distortion: str = "arrows"
    baseline: np.ndarray | None = None
    label_area: tuple[float, float] = (210.0, 300.0)

    def __post_init__(self) -> None:
        if self.distortion not in DISTORTIONS:
            raise ValueError(
                f"distortion: unknown {self.distortion!r}; allowed: {', '.join(DISTORTIONS)}"
            )
        if self.knn < 0:
            raise ValueError(f"knn must be ≥ 0 (0: no similarity edges), got {self.knn}")


def alignment_graph_figure(
    pos: Mapping[str, Any],
    arrays: Mapping[str, np.ndarray],
    c_p: int,
    names: Sequence[str],
    poisoned: Sequence[int],
    targets: Mapping[int, int] | None = None,
    options: GraphOptions | None = None,
    **changes: Any,
) -> go.Figure:
    """Text graph | image graph at level ``c_p`` (see module doc), drawn as ``options`` say
    (:class:`GraphOptions`; ``changes``: fields of it to set, e.g. ``knn=0``). One trace per
    edge class. Node traces carry the concept id as ``customdata`` (for click selection).

    ``pos`` from :func:`graph_positions`; ``arrays`` the level's arrays (``caption_concept``,
    ``image_concept``, ``poisoned``, ``image``, ``generated``); ``poisoned`` the concept ids
    poisoned at c_p; ``targets`` each poisoned concept's target (for hover).
    """
    o = replace(options or GraphOptions(), **changes)
    if o.distortion == "drift" and 0 not in pos["generated"]:
        raise ValueError(
            "distortion='drift' needs level C_P = 0 in the layout (the clean baseline); this pack "
            "has none, use distortion='arrows'"
        )
    k = len(names)
    moved = _moved(arrays, o.baseline, k)
    pset = set(int(i) for i in poisoned)
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("Text graph: captions", "Image graph"),
        horizontal_spacing=0.06,
    )
    if o.text_concept is not None and o.knn > 0:
        _similarity_edges(fig, pos, arrays, o.text_concept, o.knn, k)
    _pair_edges(fig, pos, arrays)
    if o.show_pairs:
        _pair_points(fig, pos["pairs"][c_p], arrays, names)
    _distortion(fig, pos, c_p, o.distortion, k)
    concept_nodes(fig, pos, c_p, names, pset, dict(targets or {}), moved)
    add_labels(
        fig,
        pos["text_concept"],
        pos["generated"][c_p],
        names,
        o.labels,
        o.selected,
        pset,
        o.label_area,
    )
    _frame(fig, c_p, k, pset, moved, o.height)
    if o.thumbnails:
        from core.figures.nodes import add_thumbnails

        add_thumbnails(fig, pos, c_p, o.thumbnails.get("clean"), o.thumbnails.get("generated"))
    return fig


def _moved(
    arrays: Mapping[str, np.ndarray], baseline: np.ndarray | None, k: int
) -> np.ndarray | None:
    """Each concept's drift (1 − cos) since C_P = 0, or None without a K-row baseline."""
    if baseline is None or len(baseline) != k:
        return None
    return drift(arrays["generated"], baseline)


def _frame(
    fig: go.Figure, c_p: int, k: int, pset: set[int], moved: np.ndarray | None, height: int
) -> None:
    """Shared bare axes, the title (poisoned count and the unpoisoned concepts' mean drift)."""
    fig.update_xaxes(showticklabels=False, zeroline=False, showgrid=False)
    fig.update_yaxes(showticklabels=False, zeroline=False, showgrid=False)
    fig.update_layout(xaxis2={"matches": "x"}, yaxis2={"matches": "y"})
    title = f"C_P = {c_p}: {len(pset)} of {k} concepts poisoned"
    unpoisoned = [i for i in range(k) if i not in pset]
    if moved is not None and unpoisoned:
        title += f" · unpoisoned drift {float(moved[unpoisoned].mean()):.2f}"
    style(fig, title, height)
    fig.update_layout(hovermode="closest")


def _similarity_edges(
    fig: go.Figure,
    pos: Mapping[str, Any],
    arrays: Mapping[str, np.ndarray],
    text_concept: np.ndarray,
    knn: int,
    k: int,
) -> None:
    """Graph structure: each caption's and each concept's mean image's ``knn`` nearest
    neighbours in the full embedding space, one edge trace per panel."""
    img_hd = _concept_means(arrays["image"], arrays["image_concept"].astype(np.int64), k)
    for col, xy, feats, what, colour in (
        (1, pos["text_concept"], text_concept, "text", TEXT),
        (2, pos["image_concept"], img_hd, "image", IMAGE),
    ):
        xs, ys = _segments(xy, xy, knn_edges(feats, knn))
        line = {"color": rgba(colour, 0.35), "width": 1}
        _edges(fig, xs, ys, f"{what} similarity edge", line, col, legendgroup=f"{what}-sim")


def _edges(
    fig: go.Figure,
    xs: list[float | None],
    ys: list[float | None],
    name: str,
    line: dict[str, Any],
    col: int,
    **extra: Any,
) -> None:
    """One edge class as one line trace (segments separated by None) in panel ``col``."""
    fig.add_trace(
        go.Scatter(x=xs, y=ys, mode="lines", name=name, line=line, hoverinfo="skip", **extra),
        1,
        col,
    )


def _pair_edges(fig: go.Figure, pos: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
    """Training-pair edges in the image panel: caption concept's text position → the concept its
    image shows; clean pairs solid, poisoned ones dashed vermillion."""
    cap = arrays["caption_concept"].astype(np.int64)
    img = arrays["image_concept"].astype(np.int64)
    flag = arrays["poisoned"].astype(bool)
    for mask, label, line in (
        (~flag, "clean", {"color": rgba(CLEAN, 0.55), "width": 1.5}),
        (flag, "poisoned", {"color": POISONED, "width": 2.5, "dash": "dash"}),
    ):
        pairs = sorted({(int(a), int(b)) for a, b in zip(cap[mask], img[mask])})
        xs, ys = _segments(pos["text_concept"], pos["image_concept"], pairs)
        _edges(fig, xs, ys, f"{label} training pair ({int(mask.sum())})", line, 2)


def _pair_points(
    fig: go.Figure,
    pp: Mapping[str, np.ndarray],
    arrays: Mapping[str, np.ndarray],
    names: Sequence[str],
) -> None:
    """Individual training pairs (a sample, ``pos["pairs"][c_p]``): captions in the text panel,
    images in the image panel, clean and poisoned apart."""
    cap = arrays["caption_concept"].astype(np.int64)
    img = arrays["image_concept"].astype(np.int64)
    flag = arrays["poisoned"].astype(bool)
    idx = pp["index"]
    for panel, key, cls in ((1, "text", "caption"), (2, "image", "image")):
        for is_p, colour, symbol, label in (
            (False, CLEAN, "circle", "clean"),
            (True, POISONED, "x", "poisoned"),
        ):
            m = flag[idx] == is_p
            if not m.any():
                continue
            hover = [
                f"{label} pair: caption “{names[cap[i]]}” ↔ image of “{names[img[i]]}”"
                for i in idx[m]
            ]
            fig.add_trace(
                _scatter(int(m.sum()))(
                    x=pp[key][m, 0],
                    y=pp[key][m, 1],
                    mode="markers",
                    name=f"{label} {cls} (one pair)",
                    marker={"color": rgba(colour, 0.45), "size": 5, "symbol": symbol},
                    text=hover,
                    hoverinfo="text",
                    legendgroup=f"pair-{label}-{cls}",
                ),
                1,
                panel,
            )


def _distortion(fig: go.Figure, pos: Mapping[str, Any], c_p: int, distortion: str, k: int) -> None:
    """Arrows from each caption's text position (or, for "drift", from where it landed at
    C_P = 0, drawn ◇) to where its generations land now."""
    start = pos["generated"][0] if distortion == "drift" else pos["text_concept"]
    xs, ys = _segments(start, pos["generated"][c_p], [(i, i) for i in range(k)])
    sizes = [0, 11, 0] * k
    if distortion == "drift":
        fig.add_trace(
            go.Scatter(
                x=start[:, 0],
                y=start[:, 1],
                mode="markers",
                name="where the caption landed at C_P = 0 ◇",
                marker={"symbol": "diamond-open", "size": 10, "color": rgba(GENERATED, 0.6)},
                hoverinfo="skip",
            ),
            1,
            2,
        )
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=ys,
            mode="lines+markers",
            name="drift since C_P = 0 (longer = more distorted)"
            if distortion == "drift"
            else "caption → generated (learned mapping)",
            line={"color": rgba(GENERATED, 0.8), "width": 2 if distortion == "drift" else 1.5},
            marker={"symbol": "arrow", "angleref": "previous", "size": sizes, "color": GENERATED},
            hoverinfo="skip",
        ),
        1,
        2,
    )
