"""Plotly figures of the Defend page (pure functions of arrays and report rows)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.figures.palette import BLACK, BLUE, CLEAN, GREEN, GREY, ORANGE, POISONED, PURPLE, style

DETECTOR_COLOURS = {
    "misalignment": BLUE,
    "structural_outlier": ORANGE,
    "concept_share": GREEN,
    "knn_disagreement": PURPLE,
    "reconstruction": BLACK,
}
DETECTOR_LABELS = {
    "misalignment": "pair misalignment (CLIP-score)",
    "structural_outlier": "structural outlier (D_stru vs concept)",
    "concept_share": "concept AD share",
    "knn_disagreement": "image kNN caption disagreement",
    "reconstruction": "VAE reconstruction inconsistency (pixels)",
}


def roc_figure(curves: Mapping[str, Mapping[str, Any]], fpr_mark: float | None = None) -> go.Figure:
    """One ROC line per detector; ``curves[name]`` has ``fpr``, ``tpr``, ``auc``. A dotted
    vertical line marks ``fpr_mark`` (the chosen operating point)."""
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[0, 1], y=[0, 1], mode="lines", line={"color": GREY, "dash": "dot"}, name="chance"
        )
    )
    for name, c in curves.items():
        fig.add_trace(
            go.Scatter(
                x=list(c["fpr"]),
                y=list(c["tpr"]),
                mode="lines",
                line={"color": DETECTOR_COLOURS.get(name, BLACK), "width": 3, "shape": "hv"},
                name=f"{DETECTOR_LABELS.get(name, name)} · AUC {c['auc']:.3f}",
            )
        )
    if fpr_mark is not None:
        fig.add_vline(x=fpr_mark, line={"color": BLACK, "dash": "dot", "width": 1})
    fig.update_xaxes(title="false-positive rate (clean pairs flagged)", range=[0, 1])
    fig.update_yaxes(title="recall (poisoned pairs flagged)", range=[0, 1.02])
    fig.update_layout(legend={"orientation": "h", "y": -0.25})
    return style(fig, "ROC of the detectors", height=460)


def score_histogram(
    scores: np.ndarray, truth: np.ndarray, threshold: float | None, detector: str
) -> go.Figure:
    """Score distributions of clean vs poisoned pairs (probability density), the threshold as a
    vertical line: everything right of it is dropped."""
    s = np.asarray(scores, dtype=np.float64)
    t = np.asarray(truth, dtype=bool)
    lo, hi = float(s.min()), float(s.max())
    bins = {"start": lo, "end": hi + 1e-9, "size": max((hi - lo) / 60, 1e-9)}
    fig = go.Figure()
    for mask, name, colour in ((~t, "clean", CLEAN), (t, "poisoned", POISONED)):
        fig.add_trace(
            go.Histogram(
                x=s[mask],
                xbins=bins,
                histnorm="probability density",
                name=f"{name} ({int(mask.sum())})",
                marker={"color": colour, "pattern": {"shape": "x" if name == "poisoned" else ""}},
                opacity=0.6,
            )
        )
    if threshold is not None and np.isfinite(threshold):
        fig.add_vline(x=threshold, line={"color": BLACK, "width": 2, "dash": "dash"})
        fig.add_annotation(
            x=threshold, y=1, yref="paper", text="drop →", showarrow=False, xanchor="left"
        )
    fig.update_layout(barmode="overlay")
    fig.update_xaxes(title=f"{DETECTOR_LABELS.get(detector, detector)} score")
    fig.update_yaxes(title="density")
    return style(fig, "Scores of clean and poisoned pairs", height=380)


def defended_figure(rows: list[dict[str, Any]]) -> go.Figure:
    """AD of the training pairs and unpoisoned accuracy vs C_P, attacked (solid) vs defended
    (dashed); ``rows`` from :class:`core.defend.compare.Comparison`."""
    fig = make_subplots(
        rows=1, cols=2, subplot_titles=("AD of the training pairs", "unpoisoned accuracy")
    )
    c = [r["c_p"] for r in rows]
    for col, metric in ((1, "ad"), (2, "acc_unpoisoned")):
        for which, dash, colour in (("attacked", "solid", POISONED), ("defended", "dash", CLEAN)):
            fig.add_trace(
                go.Scatter(
                    x=c,
                    y=[r[f"{metric}_{which}"] for r in rows],
                    mode="lines+markers",
                    line={"color": colour, "dash": dash, "width": 3},
                    name=which,
                    legendgroup=which,
                    showlegend=col == 1,
                ),
                row=1,
                col=col,
            )
    fig.update_xaxes(title="C_P (poisoned concepts)")
    return style(fig, "Attacked vs defended", height=380)
