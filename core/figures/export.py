"""Exporting figures: HTML always (``fig.to_html``); PNG/SVG through kaleido and a Chrome/Chromium.

kaleido ≥ 1 renders by driving a headless Chrome/Chromium found on the system (``BROWSER_PATH``,
then ``chromium``/``google-chrome`` on ``PATH`` and the usual install paths, then the copy that
``plotly_get_chrome`` / ``kaleido_get_chrome`` downloads). Starting that browser takes seconds, so
one renderer is kept open for the life of the process and every export reuses it (~0.2–0.5 s a
figure afterwards). It lives on its own event-loop thread; calls are serialised by a lock and
bounded by a timeout, so a wedged browser can never hang the caller.
"""

from __future__ import annotations

import asyncio
import atexit
import importlib.util
import os
import shutil
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import plotly.graph_objects as go

Format = Literal["html", "png", "svg"]
MIME: dict[str, str] = {"html": "text/html", "png": "image/png", "svg": "image/svg+xml"}
DEFAULT_WIDTH = 1200  # layout px when a figure sets no width (plotly's 700 crams two panels)
DEFAULT_HEIGHT = 600
RENDER_TIMEOUT_S = 60.0
START_TIMEOUT_S = 60.0

_BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
_KALEIDO_MISSING = (
    "PNG/SVG export needs the kaleido package: `pip install kaleido==1.5.0` "
    "(installed by `pip install -e .`). HTML export works without it."
)
_BROWSER_MISSING = (
    "PNG/SVG export renders through Chrome or Chromium, and none was found. Install one: "
    "`apt install chromium` (Debian/Ubuntu), or run `plotly_get_chrome` (downloads a private "
    "Chrome for plotly/kaleido), or set BROWSER_PATH to a Chrome/Chromium executable. "
    "HTML export works without it."
)


def kaleido_available() -> bool:
    """Whether the kaleido package is importable (without importing it)."""
    return importlib.util.find_spec("kaleido") is not None


def find_browser() -> str | None:
    """Path of the Chrome/Chromium kaleido will use, or None.

    Order: ``BROWSER_PATH`` (choreographer's own variable), executables on ``PATH``, the usual
    install paths and the ``plotly_get_chrome`` download (choreographer's own search).
    """
    env = os.environ.get("BROWSER_PATH")
    if env:
        return env if os.access(env, os.X_OK) else None
    for name in _BROWSER_NAMES:
        if path := shutil.which(name):
            return path
    try:  # choreographer knows the typical paths and where plotly_get_chrome puts its copy
        from choreographer.browsers.chromium import Chromium

        return Chromium.find_browser(skip_local=False)
    except Exception:  # noqa: BLE001 — private API may move; then PATH was the answer
        return None


def static_export_problem() -> str | None:
    """Why PNG/SVG export cannot work here (a message naming what to install), or None."""
    if not kaleido_available():
        return _KALEIDO_MISSING
    if find_browser() is None:
        return _BROWSER_MISSING
    return None


def export_formats() -> list[str]:
    """Formats :func:`figure_bytes` can produce here: ``html``, plus ``png``/``svg`` when kaleido
    and a browser are available (see :func:`static_export_problem`)."""
    return ["html"] if static_export_problem() else ["html", "png", "svg"]


class _Renderer:
    """One kaleido session (one headless browser tab) on a private event-loop thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._kaleido: Any = None

    def _start(self) -> None:
        import kaleido

        path = find_browser()
        if path is None:
            raise RuntimeError(_BROWSER_MISSING)
        loop = asyncio.new_event_loop()
        threading.Thread(target=loop.run_forever, name="kaleido", daemon=True).start()

        async def open_session() -> Any:
            # mathjax=False: the default fetches MathJax from a CDN (offline machines would wait)
            k = kaleido.Kaleido(n=1, timeout=RENDER_TIMEOUT_S, mathjax=False, path=path)
            await k.open()
            return k

        try:
            self._kaleido = asyncio.run_coroutine_threadsafe(open_session(), loop).result(
                START_TIMEOUT_S
            )
        except BaseException:
            loop.call_soon_threadsafe(loop.stop)
            raise
        self._loop = loop

    def render(self, spec: Mapping[str, Any], opts: Mapping[str, Any]) -> bytes:
        with self._lock:
            if self._kaleido is None:
                self._start()
            assert self._loop is not None
            coro = self._kaleido.calc_fig(dict(spec), opts=dict(opts))
            try:
                return bytes(
                    asyncio.run_coroutine_threadsafe(coro, self._loop).result(RENDER_TIMEOUT_S)
                )
            except BaseException:
                self._close_locked()  # a crashed or wedged browser: start afresh next time
                raise

    def _close_locked(self) -> None:
        loop, k = self._loop, self._kaleido
        self._loop = self._kaleido = None
        if loop is None:
            return
        try:
            if k is not None:
                asyncio.run_coroutine_threadsafe(k.close(), loop).result(10)
        except Exception:  # noqa: BLE001 — best effort: the browser may already be gone
            pass
        finally:
            loop.call_soon_threadsafe(loop.stop)

    def close(self) -> None:
        with self._lock:
            self._close_locked()

    @property
    def running(self) -> bool:
        return self._kaleido is not None


_RENDERER = _Renderer()
atexit.register(_RENDERER.close)


def close_renderer() -> None:
    """Shut the shared browser down (it restarts on the next PNG/SVG export)."""
    _RENDERER.close()


def figure_bytes(
    fig: go.Figure,
    fmt: str = "html",
    *,
    width: int | None = None,
    height: int | None = None,
    scale: float = 2.0,
) -> bytes:
    """Serialise a figure.

    ``html``: self-contained (plotly.js inlined: opens offline). ``png`` / ``svg``: rendered by
    the shared kaleido session at ``width`` × ``height`` layout px (the figure's own size, else
    1200 × 600); PNG pixels are ``scale`` × that. The first PNG/SVG of a process starts the
    browser (seconds); later ones reuse it. Raises ValueError for an unknown format and
    RuntimeError naming what to install when static export cannot work here.
    """
    if fmt not in MIME:
        raise ValueError(f"unknown export format {fmt!r}; allowed: {', '.join(MIME)}")
    if fmt == "html":
        return fig.to_html(include_plotlyjs=True, full_html=True).encode()
    problem = static_export_problem()
    if problem:
        raise RuntimeError(problem)
    spec = fig.to_dict()
    opts = {
        "format": fmt,
        "width": int(width or fig.layout.width or DEFAULT_WIDTH),
        "height": int(height or fig.layout.height or DEFAULT_HEIGHT),
        "scale": float(scale),
    }
    return _RENDERER.render(spec, opts)


def write_figure(fig: go.Figure, path: Path | str, **kwargs: Any) -> Path:
    """Write ``fig`` to ``path`` in the format its suffix names (.html, .png, .svg)."""
    p = Path(path)
    p.write_bytes(figure_bytes(fig, p.suffix.lstrip(".").lower(), **kwargs))
    return p


def labelled_grid(
    images: Any, row_labels: list[str], title: str, column_label: str = "samples", factor: int = 2
) -> Any:
    """(R, C, S, S, 3) uint8 images tiled with a title line, one label per row (left) and the
    column meaning on top: a grid that says what it shows when it leaves the app (bundles).
    Returns an (H, W, 3) uint8 array."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    from core.figures.images import compose_grid

    grid = compose_grid(np.asarray(images), factor=factor)
    font = ImageFont.load_default(size=12)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    width = max([probe.textlength(t, font=font) for t in row_labels] or [0.0])
    left, top = int(width) + 12, 40
    columns = f"columns: {column_label}"
    wide = max(
        grid.shape[1] + left,
        int(probe.textlength(title, font=font)) + 8,
        left + int(probe.textlength(columns, font=font)) + 8,
    )
    canvas = Image.new("RGB", (wide, grid.shape[0] + top), "white")
    canvas.paste(Image.fromarray(grid), (left, top))
    draw = ImageDraw.Draw(canvas)
    draw.text((4, 4), title, fill="black", font=font)
    draw.text((left, 22), columns, fill=(80, 80, 80), font=font)
    r, pad = np.asarray(images).shape[0], 2
    cell = (grid.shape[0] - pad) / max(1, r)
    for i, label in enumerate(row_labels[:r]):
        draw.text((4, top + pad + i * cell + cell / 2 - 7), label, fill="black", font=font)
    return np.asarray(canvas)
