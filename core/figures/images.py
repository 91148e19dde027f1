"""Image grids and cross-attention overlays (numpy in, uint8 images or a Plotly figure out)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.figures.palette import VERMILLION, style


def png_data_uri(image: np.ndarray) -> str:
    """(H, W, 3) uint8 → ``data:image/png;base64,…`` (go.Image ``source``: far smaller than ``z``)."""
    import base64
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling of (..., H, W, C) uint8 (keeps pixels crisp on a projector)."""
    if factor <= 1:
        return image
    return image.repeat(factor, axis=-3).repeat(factor, axis=-2)


def compose_grid(
    images: np.ndarray, pad: int = 2, factor: int = 3, background: int = 255
) -> np.ndarray:
    """Tile (R, C, S, S, 3) uint8 into one (R·(S·f+p)+p, C·(S·f+p)+p, 3) uint8 image."""
    if images.ndim != 5 or images.shape[-1] != 3:
        raise ValueError(f"images must be (rows, cols, S, S, 3) uint8, got shape {images.shape}")
    r, c, s = images.shape[0], images.shape[1], images.shape[2] * max(factor, 1)
    out = np.full((r * (s + pad) + pad, c * (s + pad) + pad, 3), background, dtype=np.uint8)
    big = upscale(images, factor)
    for i in range(r):
        for j in range(c):
            y, x = pad + i * (s + pad), pad + j * (s + pad)
            out[y : y + s, x : x + s] = big[i, j]
    return out


def _viridis(v: np.ndarray) -> np.ndarray:
    """A compact viridis-like colormap (perceptually ordered, colour-blind safe): [0,1] → RGB."""
    stops = np.array(
        [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]],
        dtype=np.float32,
    )
    x = np.clip(v, 0, 1) * (len(stops) - 1)
    i = np.minimum(x.astype(int), len(stops) - 2)
    t = (x - i)[..., None]
    return stops[i] * (1 - t) + stops[i + 1] * t


def overlay_heatmap(image: np.ndarray, heat: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """Blend a (S, S) heat map (any scale, normalised here) over an (S, S, 3) uint8 image."""
    h = heat.astype(np.float32)
    h = (h - h.min()) / max(float(h.max() - h.min()), 1e-8)
    return (
        (image.astype(np.float32) * (1 - alpha) + _viridis(h) * alpha).clip(0, 255).astype(np.uint8)
    )


def attention_figure(
    image: np.ndarray, tokens: Sequence[str], maps: np.ndarray, title: str | None = None
) -> go.Figure:
    """The generated image followed by one overlay per token (for export; the page uses images)."""
    n = len(tokens) + 1
    cols = min(n, 6)
    rows = (n + cols - 1) // cols
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=["image", *tokens])
    panels = [image] + [overlay_heatmap(image, maps[i]) for i in range(len(tokens))]
    for k, p in enumerate(panels):
        fig.add_trace(
            go.Image(source=png_data_uri(upscale(p, 4))), row=k // cols + 1, col=k % cols + 1
        )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return style(fig, title or "Cross-attention per token", 220 * rows + 80)


def generation_grid_figure(
    images: np.ndarray,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    title: str | None = None,
    factor: int = 2,
    pad: int = 3,
    highlight: Sequence[int] = (),
    col_title: str = "C_P",
) -> go.Figure:
    """A prompts × columns grid (R, C, S, S, 3) uint8 as one image with readable axis labels.

    ``highlight``: row indices framed in vermillion with a bold label (the prompts that implode
    most); ``col_title``: the column axis title (C_P levels, or "clean | poisoned")."""
    grid = compose_grid(images, pad=pad, factor=factor)
    cell = images.shape[2] * factor + pad
    centres_r = [pad + cell * i + (cell - pad) / 2 for i in range(images.shape[0])]
    centres_c = [pad + cell * j + (cell - pad) / 2 for j in range(images.shape[1])]
    marked = {int(i) for i in highlight}
    labels = [f"<b>{t} ▼</b>" if i in marked else str(t) for i, t in enumerate(row_labels)]
    fig = go.Figure(go.Image(source=png_data_uri(grid), hoverinfo="skip"))
    fig.update_xaxes(
        tickvals=centres_c, ticktext=list(col_labels), side="top", showgrid=False, title=col_title
    )
    fig.update_yaxes(tickvals=centres_r, ticktext=labels, showgrid=False)
    for i in sorted(marked):
        y0 = pad + cell * i - pad / 2
        fig.add_shape(
            type="rect",
            x0=0.5,
            x1=grid.shape[1] - 0.5,
            y0=y0,
            y1=y0 + cell,
            line={"color": VERMILLION, "width": 3},
        )
    height = max(220, int(grid.shape[0] * 1.6) + 120)
    style(fig, title, height)
    fig.update_layout(margin={"l": 230, "r": 10, "t": 110 if title else 60, "b": 10})
    return fig
