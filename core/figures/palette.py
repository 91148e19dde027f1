"""Okabe–Ito colours and a shared layout style legible on a projector."""

from __future__ import annotations

import plotly.graph_objects as go

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

FONT_SIZE = 16


def rgba(hex_colour: str, alpha: float) -> str:
    """``#RRGGBB`` → ``rgba(r, g, b, alpha)`` (for CI bands)."""
    h = hex_colour.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r}, {g}, {b}, {alpha})"


def style(fig: go.Figure, title: str | None = None, height: int | None = None) -> go.Figure:
    """Apply the shared style: white template, large fonts, legend on top, readable hover."""
    fig.update_layout(
        template="plotly_white",
        font={"size": FONT_SIZE, "family": "Arial, Helvetica, sans-serif"},
        title={"text": title, "font": {"size": FONT_SIZE + 4}} if title else None,
        # Legend below the plot: above it, it collides with the title on narrow columns.
        legend={"orientation": "h", "yanchor": "top", "y": -0.24, "x": 0, "font": {"size": 14}},
        hoverlabel={"font_size": 15},
        margin={"l": 60, "r": 20, "t": 70 if title else 30, "b": 150},
    )
    if height:
        fig.update_layout(height=height)
    return fig
