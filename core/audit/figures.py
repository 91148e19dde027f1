"""Plotly figures of an audit, pure functions of its results (tests assert on the traces).

* :func:`overlap_figure`: the overlapping-concept graph: concepts on a circle (fixed order, so the
  layout never jumps), node size ∝ AD share, one edge per listed overlapping pair with width ∝
  the structure disagreement; one edge trace per class (images closer than captions / captions
  closer than images) with ``None`` separators; names outside the circle, spread apart on each
  side so that none prints over another.
* :func:`forecast_figure`: the calibration of one outcome (records, fitted mean and interval over
  the fitted AD range), the audit's prediction with its interval and the measured value if any.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from core.audit.calibration import OutcomeCalibration
from core.audit.result import AuditReport

IMAGE_CLOSER = "#D55E00"  # vermillion: images of the two concepts look alike, captions do not
TEXT_CLOSER = "#0072B2"  # blue: captions alike, images not
NODE = "#444444"


def overlap_figure(report: AuditReport, top: int = 15) -> Any:
    """Concept graph of the ``top`` overlapping pairs (see module doc)."""
    import plotly.graph_objects as go

    pairs = report.overlapping[:top]
    ids = sorted({c for o in pairs for c in (o.a, o.b)})
    names = {o.a: o.names[0] for o in pairs} | {o.b: o.names[1] for o in pairs}
    share = {c.concept: c.share for c in report.concepts}
    pos = {
        c: (
            math.cos(2 * math.pi * i / max(1, len(ids))),
            math.sin(2 * math.pi * i / max(1, len(ids))),
        )
        for i, c in enumerate(ids)
    }
    fig = go.Figure()
    top_d = max((o.disagreement for o in pairs), default=1.0) or 1.0
    for label, colour, keep in (
        ("images closer than captions", IMAGE_CLOSER, lambda o: o.image_sim > o.text_sim),
        ("captions closer than images", TEXT_CLOSER, lambda o: o.image_sim <= o.text_sim),
    ):
        sel = [o for o in pairs if keep(o)]
        for width in (1, 3, 6):  # three widths, each one trace with None separators
            band = [o for o in sel if _band(o.disagreement / top_d) == width]
            xs: list[float | None] = []
            ys: list[float | None] = []
            for o in band:
                xs += [pos[o.a][0], pos[o.b][0], None]
                ys += [pos[o.a][1], pos[o.b][1], None]
            if xs:
                fig.add_trace(
                    go.Scatter(
                        x=xs,
                        y=ys,
                        mode="lines",
                        line={"color": colour, "width": width},
                        name=label,
                        legendgroup=label,
                        showlegend=width == max(_band(o.disagreement / top_d) for o in sel),
                        hoverinfo="skip",
                    )
                )
    mid = [
        (
            (pos[o.a][0] + pos[o.b][0]) / 2,
            (pos[o.a][1] + pos[o.b][1]) / 2,
            f"{o.names[0]} × {o.names[1]}<br>|Δcos| {o.disagreement:.3f}<br>image "
            f"{o.image_sim:+.2f} · caption {o.text_sim:+.2f}",
        )
        for o in pairs
    ]
    if mid:
        fig.add_trace(
            go.Scatter(
                x=[m[0] for m in mid],
                y=[m[1] for m in mid],
                mode="markers",
                marker={"size": 6, "color": "rgba(0,0,0,0.25)"},
                hovertext=[m[2] for m in mid],
                hoverinfo="text",
                showlegend=False,
                name="overlap",
            )
        )
    size = {c: 10 + 300 * share.get(c, 0.0) for c in ids}
    at = _label_places(pos, size)
    leaders: tuple[list[float | None], list[float | None]] = ([], [])
    for c in ids:
        if abs(at[c][1] - LABEL_R * pos[c][1]) > 0.02:  # moved to make room: a leader line
            leaders[0].extend([pos[c][0], at[c][0], None])
            leaders[1].extend([pos[c][1], at[c][1], None])
    if leaders[0]:
        fig.add_trace(
            go.Scatter(
                x=leaders[0],
                y=leaders[1],
                mode="lines",
                line={"color": "rgba(0,0,0,0.25)", "width": 1},
                hoverinfo="skip",
                showlegend=False,
                name="label leader",
            )
        )
    fig.add_trace(
        go.Scatter(
            x=[at[c][0] for c in ids],
            y=[at[c][1] for c in ids],
            mode="text",
            text=[names[c] for c in ids],
            textposition=["middle right" if pos[c][0] >= 0 else "middle left" for c in ids],
            hoverinfo="skip",
            showlegend=False,
            name="concept names",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=[pos[c][0] for c in ids],
            y=[pos[c][1] for c in ids],
            mode="markers",
            marker={
                "size": [size[c] for c in ids],
                "color": NODE,
            },
            hovertext=[f"{names[c]}: {100 * share.get(c, 0.0):.1f} % of AD" for c in ids],
            hoverinfo="text",
            name="concept",
            showlegend=False,
        )
    )
    fig.update_layout(
        xaxis={"visible": False, "range": [-1.5, 1.5]},
        yaxis={"visible": False, "range": [-1.3, 1.3], "scaleanchor": "x"},
        height=520,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        legend={"orientation": "h", "y": -0.05},
        title=f"{len(pairs)} most overlapping concept pairs (width: |Δcos|)",
    )
    return fig


LABEL_R = 1.08  # labels sit just outside the unit circle of nodes
LABEL_GAP = 0.1  # least height between two labels on one side (≈ 17 px of the 520 px figure)
LABEL_TOP = 1.25  # labels stay inside the y range ±1.3


def _label_places(
    pos: dict[int, tuple[float, float]], size: dict[int, float]
) -> dict[int, tuple[float, float]]:
    """Where each node's name goes: outside the circle on the node's side (right half: text to
    the right, left half: to the left), as a pie chart's outside labels. On each side the names
    are spread to at least ``LABEL_GAP`` apart in height, so neighbours near the top and bottom of
    the circle (many concepts) never print over each other; a moved name gets a leader line.
    ``size``: marker diameters in px (a large node pushes its name a little further out)."""
    places: dict[int, tuple[float, float]] = {}
    for right in (True, False):
        side = sorted((c for c in pos if (pos[c][0] >= 0) == right), key=lambda c: pos[c][1])
        ys = [LABEL_R * pos[c][1] for c in side]
        for i in range(1, len(ys)):  # bottom-up: keep at least the gap
            ys[i] = max(ys[i], ys[i - 1] + LABEL_GAP)
        if ys and ys[-1] > LABEL_TOP:  # too high: top-down, then clamp at the bottom
            ys[-1] = LABEL_TOP
            for i in range(len(ys) - 2, -1, -1):
                ys[i] = min(ys[i], ys[i + 1] - LABEL_GAP)
        for c, y in zip(side, ys):
            x = pos[c][0] * LABEL_R + (1 if right else -1) * size[c] / 2 / 170
            places[c] = (x, max(-LABEL_TOP, y))
    return places


def _band(frac: float) -> int:
    return 6 if frac > 0.85 else 3 if frac > 0.6 else 1


def forecast_figure(
    cal: OutcomeCalibration, ad: float, prediction: Any, outcome: str = "acc_unpoisoned"
) -> Any:
    """Records and fit of ``outcome`` vs AD, with the prediction at ``ad`` (see module doc)."""
    import plotly.graph_objects as go

    fit = cal.fits[outcome]
    rec = [r for r in cal.records if r.get(outcome) is not None]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[r["ad"] for r in rec],
            y=[r[outcome] for r in rec],
            mode="markers",
            marker={"color": "#999999", "size": 7},
            name="fitted runs (C_P × seed)",
            hovertext=[f"C_P {r['c_p']}, seed {r['seed']}" for r in rec],
        )
    )
    grid = np.linspace(*fit.ad_range, 60)
    band = [fit.interval(float(a)) for a in grid]
    pct = round(100 * cal.level)
    fig.add_trace(
        go.Scatter(
            x=np.r_[grid, grid[::-1]],
            y=np.r_[[b[2] for b in band], [b[1] for b in band][::-1]],
            fill="toself",
            fillcolor="rgba(0,114,178,0.15)",
            line={"width": 0},
            name=f"{pct} % interval",
            hoverinfo="skip",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=grid, y=[b[0] for b in band], mode="lines", name="fit", line={"color": "#0072B2"}
        )
    )
    low_key, high_key = (
        ("low", "high")
        if outcome == "acc_unpoisoned"
        else (
            "incoherence_low",
            "incoherence_high",
        )
    )
    value = getattr(prediction, outcome) if prediction is not None else None
    if value is not None:
        lo, hi = getattr(prediction, low_key), getattr(prediction, high_key)
        fig.add_trace(
            go.Scatter(
                x=[ad],
                y=[value],
                mode="markers",
                marker={"color": "#D55E00", "size": 14, "symbol": "diamond"},
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [hi - value],
                    "arrayminus": [value - lo],
                },
                name="predicted",
            )
        )
    else:
        fig.add_vline(x=ad, line_dash="dot", annotation_text="outside the fitted range")
    measured = prediction.measured if prediction is not None else None
    if measured and measured.get(outcome) is not None:
        fig.add_trace(
            go.Scatter(
                x=[ad],  # the same pairs; a run's recorded AD may be on its own scale
                y=[measured[outcome]],
                mode="markers",
                marker={"color": "#009E73", "size": 13, "symbol": "star"},
                name="measured",
            )
        )
    fig.update_layout(
        xaxis_title="AD of the training pairs",
        yaxis_title=outcome.replace("_", " "),
        height=420,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
    )
    return fig
