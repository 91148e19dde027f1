"""Alignment graph: text graph | image graph at a chosen C_P, with poisoned pairs and the
distortion arrows (caption → where the fine-tuned model lands it)."""

import streamlit as st

from core.figures.graph import alignment_graph_figure, graph_positions
from core.figures.images import upscale
from pages._ui import current_pack, export_buttons, pack_key, route_through_app

route_through_app()

st.title("Alignment graph")
st.caption(
    "Nodes are concepts. Left: captions. Right: images, the training pairs that supervise the "
    "mapping, and arrows from each caption to where the model sends it. Drag the C_P slider: "
    "the layout is fitted once on every level, so only what changes moves."
)
pack = current_pack()
if pack is None:
    st.stop()


@st.cache_data(show_spinner=False, max_entries=8)
def positions(key: tuple[str, float], method: str) -> dict:
    levels = {c: pack.level_arrays(c) for c in pack.levels}
    return graph_positions(pack.embeddings()["text_concept"], levels, method=method.lower())


c1, c2, c3, c4 = st.columns([3, 1.2, 1.2, 1.2])
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
)

st.plotly_chart(fig, key="graph_chart")
st.caption("Click legend entries to hide or show an edge class; double-click to isolate it.")
export_buttons(fig, f"alignment-graph-cp{c_p}")

with st.expander("Inspect one concept at this C_P"):
    names = pack.concepts
    i = st.selectbox(
        "Concept", range(len(names)), format_func=lambda k: names[k], key="graph_concept"
    )
    pois = i in pack.poisoned_at(c_p)
    tgt = pack.targets.get(i)
    st.markdown(
        f"**{names[i]}** is "
        + (f"**poisoned** (target: {names[tgt]})" if pois and tgt is not None else "not poisoned")
        + f" at C_P = {c_p}."
    )
    try:
        gens = pack.generations()
        cols = st.columns(2)
        cols[0].image(
            upscale(gens[0][i], 4),
            caption=[f"C_P = 0 · sample {k}" for k in range(gens[0].shape[1])],
            width=128,
        )
        cols[1].image(
            upscale(gens[c_p][i], 4),
            caption=[f"C_P = {c_p} · sample {k}" for k in range(gens[c_p].shape[1])],
            width=128,
        )
    except FileNotFoundError as e:
        st.info(str(e))
