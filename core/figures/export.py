"""Exporting figures: HTML always (``fig.to_html``), PNG/SVG only when kaleido is installed."""

from __future__ import annotations

import importlib.util

import plotly.graph_objects as go

MIME: dict[str, str] = {"html": "text/html", "png": "image/png", "svg": "image/svg+xml"}


def kaleido_available() -> bool:
    """Whether static image export (PNG/SVG) can work (plotly needs the kaleido package)."""
    return importlib.util.find_spec("kaleido") is not None


def export_formats() -> list[str]:
    """Formats :func:`figure_bytes` can produce here: ``html`` plus ``png``/``svg`` with kaleido."""
    return ["html", "png", "svg"] if kaleido_available() else ["html"]


def figure_bytes(fig: go.Figure, fmt: str = "html") -> bytes:
    """Serialise a figure. HTML is self-contained (plotly.js inlined: opens offline)."""
    if fmt not in MIME:
        raise ValueError(f"unknown export format {fmt!r}; allowed: {', '.join(MIME)}")
    if fmt == "html":
        return fig.to_html(include_plotlyjs=True, full_html=True).encode()
    if not kaleido_available():
        raise ValueError(
            f"{fmt.upper()} export needs the kaleido package (`pip install kaleido`); "
            "download HTML instead"
        )
    return bytes(fig.to_image(format=fmt, scale=2))
