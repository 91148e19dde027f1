"""Figures: pure functions, data in, Plotly ``Figure`` (or uint8 image) out. No Streamlit here.

Colours follow the Okabe–Ito colour-blind-safe palette (:mod:`.palette`); poisoned things are
vermillion *and* dashed / ×-marked, clean things blue, so colour is never the only cue.
"""

from core.figures.export import export_formats, figure_bytes
from core.figures.graph import GraphOptions, alignment_graph_figure, graph_positions
from core.figures.images import (
    attention_figure,
    compose_grid,
    generation_grid_figure,
    overlay_heatmap,
    upscale,
)
from core.figures.layout import fit_layout, procrustes
from core.figures.palette import CLEAN, POISONED, RELATED, UNRELATED, style
from core.figures.trajectory import (
    ad_components_figure,
    compare_figure,
    concept_contributions_figure,
    implosion_figure,
    loss_curve_figure,
    theory_figure,
)

__all__ = [
    "CLEAN",
    "POISONED",
    "RELATED",
    "UNRELATED",
    "GraphOptions",
    "ad_components_figure",
    "alignment_graph_figure",
    "attention_figure",
    "compare_figure",
    "compose_grid",
    "concept_contributions_figure",
    "export_formats",
    "figure_bytes",
    "fit_layout",
    "generation_grid_figure",
    "graph_positions",
    "implosion_figure",
    "loss_curve_figure",
    "overlay_heatmap",
    "procrustes",
    "style",
    "theory_figure",
    "upscale",
]
