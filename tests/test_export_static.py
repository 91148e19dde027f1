"""Static figure export (PNG/SVG) through kaleido and the system Chrome/Chromium.

The rendering tests need a browser; they skip, saying what to install, when there is none.
"""

from __future__ import annotations

import struct
import time

import plotly.graph_objects as go
import pytest

from core.figures import export


def _small_figure() -> go.Figure:
    fig = go.Figure(go.Scatter(x=[0, 1, 2], y=[2, 0, 1], mode="lines+markers", name="AD"))
    fig.update_layout(width=320, height=240, title="tiny")
    return fig


needs_browser = pytest.mark.skipif(
    export.static_export_problem() is not None,
    reason=f"static export unavailable here: {export.static_export_problem()}",
)


@needs_browser
def test_png_and_svg_render_and_reuse_one_browser():
    fig = _small_figure()
    t0 = time.perf_counter()
    png = export.figure_bytes(fig, "png", scale=2)
    first = time.perf_counter() - t0
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])  # IHDR: layout px × scale
    assert (width, height) == (640, 480)
    assert export._RENDERER.running  # the session stays open for the next export
    t0 = time.perf_counter()
    svg = export.figure_bytes(fig, "svg")
    again = time.perf_counter() - t0
    head = svg[:200].lstrip()
    assert head.startswith(b"<svg") or head.startswith(b"<?xml")
    assert b"tiny" in svg  # the title is real text in the SVG
    assert again < max(first, 5.0)  # no second browser start
    print(f"\nfirst PNG {first:.2f} s (browser start), SVG after it {again:.2f} s")


@needs_browser
def test_write_figure_follows_the_suffix(tmp_path):
    p = export.write_figure(_small_figure(), tmp_path / "fig.png", scale=1)
    assert p.read_bytes()[:4] == b"\x89PNG"
    assert export.write_figure(_small_figure(), tmp_path / "fig.html").read_bytes()[:15].lower()


@needs_browser
def test_renderer_restarts_after_close():
    export.close_renderer()
    assert not export._RENDERER.running
    assert export.figure_bytes(_small_figure(), "svg", width=200, height=100)[:4] == b"<svg"


def test_missing_browser_names_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(export, "kaleido_available", lambda: True)
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-such-chrome"))
    assert export.find_browser() is None
    assert export.export_formats() == ["html"]
    msg = export.static_export_problem()
    assert msg and "apt install chromium" in msg and "plotly_get_chrome" in msg
    with pytest.raises(RuntimeError, match="apt install chromium"):
        export.figure_bytes(_small_figure(), "png")
    assert b"<html>" in export.figure_bytes(_small_figure(), "html")[:100]  # HTML still works


def test_missing_kaleido_names_the_package(monkeypatch):
    monkeypatch.setattr(export, "kaleido_available", lambda: False)
    assert export.export_formats() == ["html"]
    with pytest.raises(RuntimeError, match="pip install kaleido"):
        export.figure_bytes(_small_figure(), "svg")


def test_unknown_format_lists_the_allowed_ones():
    with pytest.raises(ValueError, match="html, png, svg"):
        export.figure_bytes(_small_figure(), "gif")
