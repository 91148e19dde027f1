"""The figure each lesson step refers to, built from the explorer's own figure functions.

Pure functions (arrays and pack in, Plotly figure out); the caller passes what it caches (the
generated images and the graph layout) so nothing heavy is recomputed here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from core.figures.images import generation_grid_figure
from core.figures.palette import BLACK, style
from core.lesson.pinned import PinnedPrompts, pinned_images, row_labels
from core.lesson.steps import LessonStep
from core.results.pack import Pack

SAMPLES = 2  # sampling seeds per side in the strips (clean | poisoned)


def pinned_strip_figure(
    pack: Pack,
    gens: Mapping[int, np.ndarray],
    pinned: PinnedPrompts,
    c_p: int,
    samples: int = SAMPLES,
    title: str | None = None,
) -> go.Figure:
    """The pinned prompts as rows, ``samples`` clean images then the same seeds at ``c_p``."""
    images = pinned_images(dict(gens), pinned, c_p, samples)
    m = images.shape[1] // 2
    cols = [f"clean s{j}" for j in range(m)] + [f"C_P {c_p} s{j}" for j in range(m)]
    fig = generation_grid_figure(
        images,
        row_labels(pack, pinned, c_p),
        cols,
        title=title,
        factor=3,
        col_title=f"clean | C_P {c_p}, same seeds",
    )
    fig.add_vline(x=images.shape[1] // 2 * (images.shape[2] * 3 + 3) + 1.5, line_color=BLACK)
    return fig


def detector_auc_figure(rows: Sequence[Mapping[str, Any]], height: int = 420) -> go.Figure:
    """ROC AUC vs C_P per detector (``defense.json`` rows): dirty-label solid, Nightshade-style
    dashed; 0.5 = chance."""
    from core.defend.figures import DETECTOR_COLOURS, DETECTOR_LABELS

    fig = go.Figure()
    dets = sorted({str(r["detector"]) for r in rows})
    for method, dash in (("dirty-label", "solid"), ("nightshade", "dash")):
        for det in dets:
            pts = sorted(
                (int(r["c_p"]), float(r["auc"]))
                for r in rows
                if r["detector"] == det and r["method"] == method
            )
            if not pts:
                continue
            fig.add_trace(
                go.Scatter(
                    x=[p[0] for p in pts],
                    y=[p[1] for p in pts],
                    mode="lines+markers",
                    line={"color": DETECTOR_COLOURS.get(det, BLACK), "dash": dash, "width": 3},
                    name=DETECTOR_LABELS.get(det, det),
                    legendgroup=det,
                    showlegend=method == "dirty-label",  # one entry per detector (its colour)
                    hovertemplate=f"{DETECTOR_LABELS.get(det, det)} · {method}<br>"
                    "C_P %{x}: AUC %{y:.3f}<extra></extra>",
                )
            )
    fig.add_hline(y=0.5, line={"dash": "dot", "color": BLACK, "width": 1})
    fig.update_xaxes(title="C_P (poisoned concepts)")
    fig.update_yaxes(title="ROC AUC", range=[0, 1.02])
    fig.update_layout(legend={"orientation": "h", "y": -0.25, "font": {"size": 11}})
    return style(fig, "Detectors: dirty-label (solid) vs Nightshade-style (dashed)", height)


def step_figure(
    step: LessonStep,
    pack: Pack,
    pinned: PinnedPrompts,
    gens: Mapping[int, np.ndarray],
    pos: Mapping[str, Any] | None = None,
    height: int = 440,
) -> go.Figure | None:
    """The figure of ``step`` (None when the pack lacks what it needs: no images, no layout, no
    ``defense.json``)."""
    from core.figures.graph import alignment_graph_figure
    from core.figures.trajectory import ad_components_figure, implosion_figure

    if step.figure == "strip":
        if 0 not in gens or step.c_p not in gens:
            return None
        return pinned_strip_figure(pack, gens, pinned, step.c_p)
    if step.figure == "implosion":
        return implosion_figure(
            pack.summary,
            metrics=("acc_unpoisoned", "incoherence"),
            height=height,
            marker_c=step.c_p,
            direct_labels=True,
        )
    if step.figure == "ad":
        return ad_components_figure(pack.summary, height=height, marker_c=step.c_p)
    if step.figure == "graph":
        if pos is None:
            return None
        arrays = pack.level_arrays(step.c_p)
        poisoned = pack.poisoned_at(step.c_p)
        baseline = pack.level_arrays(0)["generated"] if 0 in pack.levels else None
        fig = alignment_graph_figure(
            pos,
            arrays,
            step.c_p,
            pack.concepts,
            poisoned,
            pack.targets,
            knn=0,
            text_concept=pack.embeddings()["text_concept"],
            height=height,
            labels=[i for i in pinned.ids if i not in poisoned][:3],
            distortion="drift" if 0 in pos["generated"] else "arrows",
            baseline=baseline,
        )
        fig.update_layout(showlegend=False)
        return fig
    from core.defend.report import DEFENSE, load_report

    report = load_report(pack.root / DEFENSE)
    if report is None or not report.rows:
        return None
    return detector_auc_figure(report.rows, height)
