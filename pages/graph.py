"""Alignment graph: text graph | image graph at a chosen C_P, with poisoned pairs and the
distortion arrows (caption → where the fine-tuned model lands it)."""

import numpy as np
import streamlit as st

from core.figures.graph import alignment_graph_figure, graph_positions
from core.figures.images import compose_grid
from core.figures.nodes import concept_card, reference_images, selected_concept
from pages._ui import current_pack, export_buttons, pack_key, route_through_app

route_through_app()

st.title("Alignment graph")
st.caption(
    "Nodes are concepts. Left: captions. Right: images, the training pairs that supervise the "
    "mapping, and arrows from each caption to where the model sends it. Drag the C_P slider: "
    "the layout is fitted once on every level, so only what changes moves. Click a node to "
    "inspect its concept; switch on thumbnails to see every concept's images in place."
)
pack = current_pack()
if pack is None:
    st.stop()


@st.cache_data(show_spinner=False, max_entries=8)
def positions(key: tuple[str, float], method: str) -> dict:
    levels = {c: pack.level_arrays(c) for c in pack.levels}
    return graph_positions(pack.embeddings()["text_concept"], levels, method=method.lower())


@st.cache_data(show_spinner=False, max_entries=4)
def images(key: tuple[str, float]) -> tuple[np.ndarray | None, dict[int, np.ndarray]]:
    """(clean reference image per concept or None, level → generated (K, m, S, S, 3))."""
    try:
        gens = pack.generations()
    except FileNotFoundError:
        gens = {}
    size = next(iter(gens.values())).shape[2] if gens else 32
    return reference_images(pack.concepts, image_size=size), gens


def on_select() -> None:
    """A click on a node selects its concept in the side panel (the selectbox stays usable)."""
    event = st.session_state.get("graph_chart") or {}
    i = selected_concept((event.get("selection") or {}).get("points"))
    if i is not None:
        st.session_state["graph_concept"] = i


c1, c2, c3, c4 = st.columns([3, 1.2, 1.6, 1.2])
c_p = c1.select_slider(
    "C_P: poisoned concepts",
    options=pack.levels,
    value=pack.levels[min(len(pack.levels) - 1, len(pack.levels) // 2)],
    key="graph_cp",
)
method = c2.radio(
    "Layout",
    ["PCA", "UMAP"],
    horizontal=True,
    key="graph_layout",
    help="PCA is instant. UMAP's first use compiles for a few minutes.",
)
show_pairs = c3.toggle("Show individual pairs", value=False, key="graph_pairs")
thumbs = c3.toggle(
    "Thumbnails at nodes",
    value=False,
    key="graph_thumbs",
    help="Beside each caption: a clean training image of its concept. Beside each ◆: what the "
    "model generates for that caption at this C_P.",
)
knn = c4.slider("Similarity edges per node", 0, 5, 2, key="graph_knn")

spinner = (
    "Fitting UMAP on all levels… the first UMAP of a server session compiles its numba code "
    "(about 3–4 minutes on 2 CPU cores); later ones take seconds."
    if method == "UMAP"
    else "Fitting the PCA layout on all levels…"
)
try:
    with st.spinner(spinner):
        pos = positions(pack_key(pack), method)
except ImportError as e:
    st.error(f"UMAP is not available ({e}); install it with `pip install umap-learn` or use PCA.")
    st.stop()
except (FileNotFoundError, ValueError) as e:
    st.warning(str(e))
    st.stop()

clean, gens = images(pack_key(pack))
fig = alignment_graph_figure(
    pos,
    pack.level_arrays(c_p),
    c_p,
    pack.concepts,
    pack.poisoned_at(c_p),
    pack.targets,
    show_pairs=show_pairs,
    knn=knn,
    text_concept=pack.embeddings()["text_concept"],
    thumbnails={"clean": clean, "generated": gens[c_p][:, 0] if c_p in gens else None}
    if thumbs
    else None,
)

left, right = st.columns([3.3, 1])
with left:
    st.plotly_chart(fig, key="graph_chart", on_select=on_select, selection_mode="points")
    st.caption(
        "Click a caption, image or ◆ node to inspect it. Click legend entries to hide or show an "
        "edge class; double-click to isolate it."
    )
    export_buttons(fig, f"alignment-graph-cp{c_p}")

with right:
    st.subheader("Selected concept")
    names = pack.concepts
    i = st.selectbox(
        "Concept", range(len(names)), format_func=lambda k: names[k], key="graph_concept"
    )
    card = concept_card(pack.level_arrays(c_p), i, names, pack.poisoned_at(c_p), pack.targets)
    st.markdown(
        f"**{card['name']}** · caption “{card['caption']}”  \n"
        + (
            f":red[**poisoned**] at C_P = {c_p}"
            + (
                f": its caption is also paired with images of **{card['target']}**"
                if card["target"]
                else ""
            )
            if card["poisoned"]
            else f"not poisoned at C_P = {c_p}"
        )
    )
    if clean is not None:
        st.image(compose_grid(clean[i][None, None], factor=3), caption="clean training image")
    for level in dict.fromkeys([0, c_p]):
        if level in gens:
            st.image(
                compose_grid(gens[level][i][None], factor=2),
                caption=f"generated at C_P = {level} (same seeds)",
            )
    if not gens:
        st.caption("This pack has no generated images.")
    base = concept_card(pack.level_arrays(0), i, names, [], {}) if 0 in pack.levels else None
    align = "—" if card["alignment"] is None else f"{card['alignment']:.3f}"
    if base is not None and card["alignment"] is not None and base["alignment"] is not None:
        align += f" (C_P = 0: {base['alignment']:.3f})"
    st.markdown(
        f"- training pairs with this caption: {card['clean_pairs']} clean, "
        f"{card['poisoned_pairs']} poisoned\n"
        f"- alignment, cos(generated, own images): {align}\n"
        f"- lands nearest to: **{card['lands_on']}** (cos {card['lands_on_cos']:.3f})"
    )
