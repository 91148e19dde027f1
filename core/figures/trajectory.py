"""Curves over C_P (AD and implosion metrics with 95 % CI bands), contributions, loss curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.figures.palette import (
    BLACK,
    BLUE,
    CLEAN,
    LEVEL_DASHES,
    METRIC_COLOURS,
    METRIC_DASH,
    METRIC_LABELS,
    ORANGE,
    POISONED,
    VERMILLION,
    integer_ticks,
    level_colours,
    rgba,
    step_ticks,
    style,
)

Summary = Mapping[str, Mapping[str, Sequence[Any]]]
IMPLOSION_METRICS: tuple[str, ...] = (
    "acc_unpoisoned",
    "alignment_unpoisoned",
    "incoherence",
    "acc_poisoned",
    "attack_success",
)
SYMBOLS = ("circle", "square", "diamond", "triangle-up", "x", "cross", "star")
LEVEL_AXIS = "C_P (poisoned concepts)"


def _levels_of(*summaries: Summary) -> list[int]:
    """Every C_P value of every metric of the summaries (for integer ticks)."""
    return sorted({int(c) for s in summaries for m in s.values() for c in m.get("c_p", [])})


def mark_level(fig: go.Figure, c_p: int | None, annotate: bool = True) -> go.Figure:
    """A dotted vertical line at ``c_p`` on every C_P axis of ``fig`` (the level on show), with
    its value written once beside it (``annotate``; stacked panels would repeat it per panel)."""
    if c_p is not None:
        fig.add_vline(x=c_p, line_dash="dot", line_width=2.5, line_color=POISONED)
        if annotate:
            fig.add_annotation(
                x=c_p,
                y=1,
                yref="y domain",
                text=f"C_P = {c_p}",
                showarrow=False,
                xanchor="left",
                yanchor="top",
                font={"color": POISONED},
            )
    return fig


def label_lines(fig: go.Figure) -> go.Figure:
    """Write each line's name at its last point instead of a legend (readable in a narrow
    column and from the back of a room); CI bands stay unlabelled."""
    for t in fig.data:
        if t.mode != "lines+markers" or not t.name or len(t.x) == 0:
            continue
        fig.add_annotation(
            x=t.x[-1],
            y=t.y[-1],
            xref=t.xaxis,
            yref=t.yaxis,
            text=t.name.split(",")[0].split(" (")[0],  # "accuracy", "incoherence", "AD"
            showarrow=False,
            xanchor="right",
            yanchor="bottom",
            yshift=6,
            font={"color": t.line.color},
        )
    fig.update_layout(showlegend=False)
    return fig


def _band(
    fig: go.Figure, s: Mapping[str, Sequence[Any]], colour: str, name: str, **rc: Any
) -> None:
    """CI band (legend-linked to its line) as one closed polygon."""
    x = list(s["c_p"])
    lo, hi = list(s.get("ci_low") or []), list(s.get("ci_high") or [])
    if len(lo) != len(x) or len(hi) != len(x) or any(v is None for v in lo + hi):
        return
    fig.add_trace(
        go.Scatter(
            x=x + x[::-1],
            y=hi + lo[::-1],
            mode="lines",
            fill="toself",
            fillcolor=rgba(colour, 0.18),
            line={"width": 0},
            hoverinfo="skip",
            showlegend=False,
            legendgroup=name,
            name=f"{name} 95 % CI",
        ),
        **rc,
    )


def _mean_trace(
    fig: go.Figure,
    s: Mapping[str, Sequence[Any]],
    name: str,
    colour: str,
    dash: str,
    i: int,
    **rc: Any,
) -> None:
    """Mean over seeds vs C_P with its CI band (legend-linked): one metric of one summary."""
    _band(fig, s, colour, name, **rc)
    fig.add_trace(
        go.Scatter(
            x=list(s["c_p"]),
            y=list(s["mean"]),
            mode="lines+markers",
            name=name,
            legendgroup=name,
            line={"color": colour, "width": 3, "dash": dash},
            marker={"size": 9, "symbol": SYMBOLS[i % len(SYMBOLS)]},
            hovertemplate=f"{name}<br>C_P = %{{x}}<br>%{{y:.3f}}<extra></extra>",
        ),
        **rc,
    )


def _line(
    fig: go.Figure, summary: Summary, metric: str, i: int = 0, label: str | None = None, **rc: Any
) -> bool:
    s = summary.get(metric)
    if not s or not s.get("c_p"):
        return False
    name = label or METRIC_LABELS.get(metric, metric)
    colour = METRIC_COLOURS.get(metric, BLACK)
    _mean_trace(fig, s, name, colour, METRIC_DASH.get(metric, "solid"), i, **rc)
    return True


def ad_components_figure(
    summary: Summary, height: int = 430, marker_c: int | None = None
) -> go.Figure:
    """AD, D_fea and D_stru vs C_P, mean over seeds with 95 % CI bands (integer C_P ticks);
    ``marker_c`` draws a dotted line at that level."""
    fig = go.Figure()
    for i, m in enumerate(("ad", "ad_feature", "ad_structure")):
        _line(fig, summary, m, i)
    fig.update_xaxes(title=LEVEL_AXIS, **integer_ticks(_levels_of(summary)))
    fig.update_yaxes(title="value")
    style(fig, "Alignment difficulty grows with C_P", height)
    return mark_level(fig, marker_c)


def implosion_figure(
    summary: Summary,
    metrics: Sequence[str] = IMPLOSION_METRICS,
    height: int = 640,
    marker_c: int | None = None,
    direct_labels: bool = False,
) -> go.Figure:
    """Top: AD with CI; bottom: implosion metrics; one shared C_P axis (integer ticks);
    ``marker_c`` draws a dotted line at that level on both panels; ``direct_labels`` names each
    line at its end instead of a legend."""
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        row_heights=[0.4, 0.6],
        subplot_titles=("Alignment difficulty (AD)", "Implosion metrics"),
    )
    _line(fig, summary, "ad", 0, row=1, col=1)
    for i, m in enumerate(metrics):
        _line(fig, summary, m, i + 1, row=2, col=1)
    fig.update_xaxes(**integer_ticks(_levels_of(summary)))
    fig.update_xaxes(title=LEVEL_AXIS, row=2, col=1)
    fig.update_yaxes(title="AD", row=1, col=1)
    fig.update_yaxes(title="rate", range=[-0.02, 1.02], row=2, col=1)
    style(fig, "AD and implosion on the same C_P axis", height)
    if direct_labels:
        label_lines(fig)
    return mark_level(fig, marker_c, annotate=False)


def concept_contributions_figure(
    shares: Sequence[Mapping[str, Any]],
    names: Sequence[str],
    poisoned: Sequence[int],
    top: int = 20,
    height: int | None = None,
) -> go.Figure:
    """Horizontal stacked bars: each concept's α·D_fea and (1−α)·D_stru share of AD.

    ``shares``: [{"label": concept id, "feature": f, "structure": s, "alpha": α}], as from
    ``core.metrics.per_concept``. Poisoned concepts are marked “×” in their label, not only by colour.
    """
    pset = set(int(p) for p in poisoned)
    rows = sorted(
        shares, key=lambda r: r["alpha"] * r["feature"] + (1 - r["alpha"]) * r["structure"]
    )[-top:]
    labels = [("× " if int(r["label"]) in pset else "") + names[int(r["label"])] for r in rows]
    fea = [r["alpha"] * r["feature"] for r in rows]
    stru = [(1 - r["alpha"]) * r["structure"] for r in rows]
    edge = [VERMILLION if int(r["label"]) in pset else BLACK for r in rows]
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            y=labels,
            x=fea,
            orientation="h",
            name="α·D_fea share",
            marker_color=BLUE,
            marker_line={"color": edge, "width": 2},
        )
    )
    fig.add_trace(
        go.Bar(
            y=labels,
            x=stru,
            orientation="h",
            name="(1−α)·D_stru share",
            marker_color=ORANGE,
            marker_pattern_shape="/",
            marker_line={"color": edge, "width": 2},
        )
    )
    fig.update_layout(barmode="stack")
    fig.update_xaxes(title="contribution to AD")
    return style(
        fig, "Per-concept contributions (× = poisoned)", height or max(360, 26 * len(rows) + 140)
    )


def theory_figure(curve: Mapping[str, Sequence[float]], marker_c: int | None = None) -> go.Figure:
    """AD, D_fea, D_stru of the synthetic sandbox vs C_P (one seed, exact)."""
    summary = {
        "ad": {"c_p": curve["c_p"], "mean": curve["ad"]},
        "ad_feature": {"c_p": curve["c_p"], "mean": curve["d_fea"]},
        "ad_structure": {"c_p": curve["c_p"], "mean": curve["d_stru"]},
    }
    fig = ad_components_figure(summary, height=420, marker_c=marker_c)
    fig.update_layout(title_text="Theory sandbox: AD vs C_P on synthetic embeddings")
    return fig


def compare_figure(
    summaries: Mapping[str, Summary], metric: str = "ad", marker_c: int | None = None
) -> go.Figure:
    """One metric vs C_P for several packs/runs (line style and marker differ per run)."""
    palette = [BLACK, BLUE, VERMILLION, ORANGE, CLEAN, "#009E73", "#CC79A7"]
    dashes = ["solid", "dash", "dot", "dashdot", "longdash"]
    fig = go.Figure()
    for i, (label, summ) in enumerate(summaries.items()):
        s = summ.get(metric)
        if not s or not s.get("c_p"):
            continue
        _mean_trace(fig, s, label, palette[i % len(palette)], dashes[i % len(dashes)], i)
    fig.update_xaxes(title=LEVEL_AXIS, **integer_ticks(_levels_of(*summaries.values())))
    fig.update_yaxes(title=METRIC_LABELS.get(metric, metric))
    style(fig, f"Compare runs: {METRIC_LABELS.get(metric, metric)}", 460)
    return mark_level(fig, marker_c)


def loss_curve_figure(
    steps: Sequence[float], losses: Sequence[float | None], title: str = "Training loss"
) -> go.Figure:
    """Loss vs step (points without a loss are skipped)."""
    pts = [(s, v) for s, v in zip(steps, losses) if v is not None]
    fig = go.Figure(
        go.Scatter(
            x=[p[0] for p in pts],
            y=[p[1] for p in pts],
            mode="lines",
            name="loss",
            line={"color": BLUE, "width": 2.5},
        )
    )
    fig.update_xaxes(title="step", **step_ticks([p[0] for p in pts]))
    fig.update_yaxes(title="loss")
    return style(fig, title, 320)


def training_steps_figure(
    training: Mapping[str, Mapping[str, Any]], levels: Sequence[int], smooth: int = 5
) -> go.Figure:
    """Over fine-tuning steps, one line per C_P (few distinct colour-blind-safe colours, light to
    dark as C_P grows, each level with its own dash; C_P also in the legend and hover): the AD of the model's own generations and the judged accuracy of
    unpoisoned concepts at the probe steps (``training[c]["probe"]``), and the training loss
    (moving average over ``smooth`` steps). Packs without probes get the loss panel only."""
    levels = [c for c in levels if str(c) in training]
    has_probe = any("probe" in training[str(c)] for c in levels)
    rows = (
        ["AD of the model's generations", "accuracy, unpoisoned concepts", "training loss"]
        if has_probe
        else ["training loss"]
    )
    fig = make_subplots(
        rows=len(rows), cols=1, shared_xaxes=True, subplot_titles=rows, vertical_spacing=0.08
    )
    colours = level_colours(levels)
    order = {c: i for i, c in enumerate(sorted(levels))}
    steps: list[float] = []
    for c, colour in zip(levels, colours):
        t = training[str(c)]
        name, shown = f"C_P = {c}", False
        panels: list[tuple[Sequence[Any], Sequence[Any]]] = []
        if has_probe:
            probe = t.get("probe") or {}
            panels += [
                (probe.get("step", []), probe.get("ad", [])),
                (probe.get("step", []), probe.get("acc_unpoisoned", [])),
            ]
        loss = list(t.get("loss", []))
        k = max(1, smooth)
        avg = [
            sum(loss[max(0, i - k + 1) : i + 1]) / len(loss[max(0, i - k + 1) : i + 1])
            for i in range(len(loss))
        ]
        panels.append((t.get("step", list(range(1, len(loss) + 1))), avg))
        for row, (x, y) in enumerate(panels, start=1):
            pts = [(a, b) for a, b in zip(x, y) if b is not None]
            if not pts:
                continue
            fig.add_trace(
                go.Scatter(
                    x=[p[0] for p in pts],
                    y=[p[1] for p in pts],
                    mode="lines+markers" if row < len(panels) else "lines",
                    name=name,
                    legendgroup=name,
                    showlegend=not shown,
                    line={
                        "color": colour,
                        "width": 2.5,
                        "dash": LEVEL_DASHES[order[c] % len(LEVEL_DASHES)]
                        if len(levels) > 1
                        else "solid",
                    },
                    marker={"size": 6},
                    hovertemplate=f"{name}<br>step %{{x}}<br>%{{y:.3f}}<extra></extra>",
                ),
                row=row,
                col=1,
            )
            shown = True
            steps += [float(p[0]) for p in pts]
    fig.update_xaxes(**step_ticks(steps))
    fig.update_xaxes(title="fine-tuning step", row=len(rows), col=1)
    return style(fig, "Over fine-tuning steps", 260 * len(rows) + 120)
