"""Okabe–Ito colours and a shared layout style legible on a projector."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio

# Okabe & Ito (2008), "Color Universal Design": distinguishable under common colour blindness.
BLACK = "#000000"
ORANGE = "#E69F00"
SKY = "#56B4E9"
GREEN = "#009E73"
YELLOW = "#F0E442"
BLUE = "#0072B2"
VERMILLION = "#D55E00"
PURPLE = "#CC79A7"
GREY = "#999999"

POISONED = VERMILLION  # always paired with a dashed line or an × marker
CLEAN = BLUE
RELATED = ORANGE
UNRELATED = GREEN
TEXT = BLUE
IMAGE = GREEN
GENERATED = PURPLE

METRIC_COLOURS: dict[str, str] = {
    "ad": BLACK,
    "ad_feature": BLUE,
    "ad_structure": ORANGE,
    "acc_unpoisoned": BLUE,
    "acc_poisoned": VERMILLION,
    "attack_success": PURPLE,
    "alignment_unpoisoned": GREEN,
    "incoherence": ORANGE,
    "acc_related": SKY,
    "acc_unrelated": GREEN,
}
METRIC_DASH: dict[str, str] = {
    "acc_poisoned": "dash",
    "attack_success": "dot",
    "incoherence": "dashdot",
    "ad_structure": "dash",
    "ad_feature": "dot",
}
METRIC_LABELS: dict[str, str] = {
    "ad": "AD",
    "ad_feature": "D_fea (feature term)",
    "ad_structure": "D_stru (structure term)",
    "acc_unpoisoned": "accuracy, unpoisoned concepts",
    "acc_poisoned": "accuracy, poisoned concepts",
    "attack_success": "attack success (→ target)",
    "alignment_unpoisoned": "text–image alignment, unpoisoned",
    "incoherence": "incoherence (judge entropy)",
    "acc_related": "accuracy, related concepts",
    "acc_unrelated": "accuracy, unrelated concepts",
}

FONT_SIZE = 16  # every figure text is at least this (ticks, legend, hover, subplot titles)
PRESENTER_FONT_SIZE = 20  # presenter mode: read from the back of a lecture hall
# Few, distinct, colour-blind-safe colours for C_P levels, light to dark (Okabe–Ito order).
LEVEL_COLOURS: tuple[str, ...] = (SKY, BLUE, ORANGE, VERMILLION, BLACK)
LEVEL_DASHES: tuple[str, ...] = ("dot", "dash", "dashdot", "longdash", "solid")


def rgba(hex_colour: str, alpha: float) -> str:
    """``#RRGGBB`` → ``rgba(r, g, b, alpha)`` (for CI bands)."""
    h = hex_colour.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r}, {g}, {b}, {alpha})"


@functools.cache
def _white_template() -> go.layout.Template:
    """``plotly_white`` as a template object, looked up once: given by name, plotly rebuilds and
    validates the whole template on every ``update_layout``; an object is only copied (about 3×
    less CPU; styling was a third of a profiled C_P step on the Story page)."""
    return pio.templates["plotly_white"]


def style(fig: go.Figure, title: str | None = None, height: int | None = None) -> go.Figure:
    """Apply the shared style: white template, ≥ 16 px text, legend at the bottom, readable hover.

    The legend is anchored to the bottom of the whole figure (``yref="container"``) and the bottom
    margin grows to fit it (plotly's margin auto-expansion), so a wide export has no empty band
    and a narrow column still fits a legend that wraps to several rows.
    """
    fig.update_layout(
        template=_white_template(),
        font={"size": FONT_SIZE, "family": "Arial, Helvetica, sans-serif", "color": "#111111"},
        title={"text": title, "font": {"size": FONT_SIZE + 4}} if title else None,
        legend={
            "orientation": "h",
            "yref": "container",
            "yanchor": "bottom",
            "y": 0.0,
            "x": 0,
            "font": {"size": FONT_SIZE},
        },
        hoverlabel={"font_size": FONT_SIZE},
        margin={"l": 60, "r": 20, "t": 70 if title else 30, "b": 40},
    )
    fig.update_annotations(font_size=FONT_SIZE)
    if height:
        fig.update_layout(height=height)
    return fig


def present(fig: go.Figure, size: int = PRESENTER_FONT_SIZE) -> go.Figure:
    """Presenter mode: every text of ``fig`` (titles, ticks, legend, subplot titles, hover and
    node labels) raised to at least ``size`` px. Returns the same figure."""
    fig.update_layout(
        font_size=size,
        legend_font_size=size,
        hoverlabel_font_size=size,
        title_font_size=size + 4,
    )
    fig.update_annotations(font_size=size)
    fig.update_xaxes(tickfont_size=size, title_font_size=size)
    fig.update_yaxes(tickfont_size=size, title_font_size=size)
    fig.for_each_trace(
        lambda t: (
            t.update(textfont_size=size) if getattr(t, "mode", None) and "text" in t.mode else None
        )
    )
    return fig


def level_colours(levels: Sequence[int]) -> list[str]:
    """One colour per C_P level: distinct Okabe–Ito colours (light → dark as C_P grows) for up to
    five levels; beyond that, levels share the nearest of the five in order (pair them with
    :data:`LEVEL_DASHES` or pick fewer levels with :func:`spread_levels`)."""
    n, m = len(levels), len(LEVEL_COLOURS)
    order = {c: i for i, c in enumerate(sorted(levels))}
    if n <= 1:
        return [BLUE] * n
    if n <= m:  # spread over the five, so two levels are sky and black, not sky and blue
        return [LEVEL_COLOURS[round(order[c] * (m - 1) / (n - 1))] for c in levels]
    return [LEVEL_COLOURS[order[c] * m // n] for c in levels]


def spread_levels(levels: Sequence[int], n: int = 4) -> list[int]:
    """At most ``n`` levels spread over ``levels`` (first and last always kept), for figures that
    must stay readable on a projector."""
    xs = sorted(set(int(c) for c in levels))
    if len(xs) <= n:
        return xs
    # the level nearest to each of n evenly spaced values of C_P (spread by value, not by rank)
    span = xs[-1] - xs[0]
    picked = {min(xs, key=lambda c: abs(c - (xs[0] + i * span / (n - 1)))) for i in range(n)}
    return sorted(picked)


def step_ticks(values: Sequence[float], max_ticks: int = 8) -> dict[str, Any]:
    """Axis settings for a dense integer axis (training steps): ticks at the multiples of a round
    step (1, 2 or 5 × 10^k) that fit at most ``max_ticks`` over the span (0, 10, …, 60 rather
    than the thinned 0, 7, 14, …, 49, 60 :func:`integer_ticks` gives every step)."""
    xs = [v for v in values if math.isfinite(v)]
    if not xs:
        return {}
    lo, hi = math.floor(min(xs)), math.ceil(max(xs))
    span = max(hi - lo, 1)
    dtick = next(m * 10**k for k in range(19) for m in (1, 2, 5) if span / (m * 10**k) <= max_ticks)
    first = -(-lo // dtick) * dtick
    kept = list(range(int(first), int(hi) + 1, int(dtick)))
    return {"tickmode": "array", "tickvals": kept, "ticktext": [f"{v:,}" for v in kept]}


def integer_ticks(values: Sequence[float], max_ticks: int = 9) -> dict[str, Any]:
    """Axis settings with ticks only at the given integer values (C_P levels, steps), thinned so
    neighbouring labels keep at least 1/``max_ticks`` of the span between them."""
    xs = sorted(set(int(round(v)) for v in values))
    if not xs:
        return {}
    gap = (xs[-1] - xs[0]) / max(max_ticks, 1)
    kept = [xs[0]]
    for v in xs[1:]:
        if v - kept[-1] >= gap:
            kept.append(v)
    if kept[-1] != xs[-1]:
        if len(kept) > 1 and xs[-1] - kept[-2] >= gap:
            kept[-1] = xs[-1]
        elif len(kept) == 1:
            kept.append(xs[-1])
    return {"tickmode": "array", "tickvals": kept, "ticktext": [f"{v:,}" for v in kept]}
