"""Alignment graph: text graph | image graph at a chosen C_P, with poisoned pairs and the
distortion arrows (caption → where the fine-tuned model lands it)."""

from typing import Any

import numpy as np
import streamlit as st

from core.figures.graph import alignment_graph_figure
from core.figures.images import compose_grid
from core.figures.nodes import concept_card, reference_images, selected_concept
from core.jobs.labels import distinct
from pages._present import intro, presenter, show, terms, url_choice, url_keep
from pages._ui import (
    current_pack,
    export_buttons,
    generations,
    layout_with_placeholder,
    open_pack,
    pack_key,
    route_through_app,
    run_banner,
    run_choices,
    run_label,
    saved_levels,
)

route_through_app()

intro(
    "Alignment graph",
    "Captions (left) and images (right) as two graphs: drag C_P and watch poisoned pairs cross "
    "the map and where captions land drift.",
    "C_P",
    "poisoned",
)
pack = current_pack()
if pack is None:
    st.stop()
run_banner(pack)


@st.cache_data(show_spinner=False, max_entries=4)
def images(key: tuple[str, float]) -> tuple[np.ndarray | None, dict[int, np.ndarray]]:
    """(clean reference image per concept or None, level → generated (K, m, S, S, 3))."""
    gens = generations(key)
    size = next(iter(gens.values())).shape[2] if gens else 32
    return reference_images(pack.concepts, image_size=size), gens


def on_select() -> None:
    """A click on a node selects its concept in the side panel (the selectbox stays usable)."""
    event = st.session_state.get("graph_chart") or {}
    i = selected_concept((event.get("selection") or {}).get("points"))
    if i is not None:
        st.session_state["graph_concept"] = i


levels = saved_levels(pack)
if not levels:
    st.info("This run has no C_P level saved yet: it appears here as soon as its first level is.")
    st.stop()
big = presenter()
url_choice("cp", "graph_cp", levels, levels[min(len(levels) - 1, len(levels) // 2)])
c_p = st.select_slider(
    "C_P: poisoned concepts",
    options=levels,
    key="graph_cp",
    help=terms("C_P"),
)
url_keep("cp", "graph_cp", c_p)
# In presenter mode the options fold away so the graph sits above the fold at 1280×720.
options = st.expander("Graph options") if big else st.container()
with options:
    c2, c3, c4 = st.columns([1.2, 1.6, 1.6])
    method = c2.radio(
        "Layout",
        ["PCA", "UMAP"],
        horizontal=True,
        key="graph_layout",
        help="PCA is instant (computed once per run and kept on disk). UMAP's first use compiles "
        "for a few minutes.",
    )
    show_pairs = c3.toggle("Show individual pairs", value=False, key="graph_pairs")
    thumbs = c3.toggle(
        "Thumbnails at nodes",
        value=False,
        key="graph_thumbs",
        help="Beside each caption: a clean training image of its concept. Beside each ◆: what "
        "the model generates for that caption at this C_P.",
    )
    knn = c4.slider("Similarity edges per node", 0, 5, 0 if big else 2, key="graph_knn")
    drift = c4.toggle(
        "Drift arrows",
        value=big,
        key="graph_drift",
        help="Arrows from where each caption landed at C_P = 0 to where it lands now: zero "
        "length on the clean model, longer as C_P grows. Off: arrows from each caption to where "
        "it lands.",
    )
others = distinct({c.id: run_label(c) for c in run_choices()})
second = "Second view: another level or another run"
with options, st.container() if big else st.expander(second):  # expanders cannot nest
    if big:
        st.markdown(f"**{second}**")
    v1, v2 = st.columns(2)
    url_choice("vs", "graph_other_run", [None, *others], None)
    other_run = v1.selectbox(
        "Run",
        [None, *others],
        format_func=lambda n: "— none —" if n is None else others[n],
        key="graph_other_run",
    )
    url_keep("vs", "graph_other_run", other_run)
    other_pack = open_pack(other_run) if other_run else None
    other_levels = saved_levels(other_pack) if other_pack is not None else []
    vs_levels = other_levels or [0]
    url_choice("vs_cp", "graph_other_cp", vs_levels, 0 if 0 in vs_levels else vs_levels[0])
    other_cp = v2.select_slider(
        "C_P of the second view",
        options=vs_levels,
        key="graph_other_cp",
        disabled=other_pack is None,
    )
    url_keep("vs_cp", "graph_other_cp", other_cp if other_pack is not None else None)

try:
    pos = layout_with_placeholder(pack, method.lower())
except ImportError as e:
    st.error(f"UMAP is not available ({e}); install it with `pip install umap-learn` or use PCA.")
    st.stop()
except (FileNotFoundError, ValueError) as e:
    st.warning(str(e))
    st.stop()

clean, gens = images(pack_key(pack))


def graph(p, where: dict, level: int, selected: int | None, height: int) -> Any:
    """The alignment graph of run ``p`` at ``level`` with this page's options."""
    poisoned = p.poisoned_at(level)
    has_base = 0 in where["generated"] and 0 in p.levels
    return alignment_graph_figure(
        where,
        p.level_arrays(level),
        level,
        p.concepts,
        poisoned,
        p.targets,
        show_pairs=show_pairs,
        knn=knn,
        text_concept=p.embeddings()["text_concept"],
        height=height,
        labels=poisoned[: 4 if big else 8],
        selected=selected,
        distortion="drift" if drift and has_base else "arrows",
        baseline=p.level_arrays(0)["generated"] if has_base else None,
        thumbnails={"clean": clean, "generated": gens[level][:, 0] if level in gens else None}
        if thumbs and p is pack
        else None,
    )


if st.session_state.get("_graph_concept_of") != str(pack.root):
    # A newly opened run (the picker, or Jobs' "Open in the explorer") starts on a concept it
    # poisoned, not on concept 0.
    st.session_state["_graph_concept_of"] = str(pack.root)
    first = [*pack.poisoned_at(c_p), *pack.poison_order]
    st.session_state["graph_concept"] = int(first[0]) if first else 0
selected = st.session_state.get("graph_concept")
fig = graph(pack, pos, c_p, selected, 420 if big else 620)
KEY = (
    "■ caption (× poisoned) · ● a concept's images · ◆ where its caption lands · blue lines: "
    "clean training pairs · dashed vermillion: poisoned pairs · purple arrows: "
    + ("drift since C_P = 0 (◇)" if drift else "caption → where it lands")
)
if big:  # a projector legend would take a third of the screen: one line of key instead
    fig.update_layout(showlegend=False, margin={"t": 60, "b": 10})

left, right = st.columns([3.3, 1])
with left:
    show(fig, "graph_chart", on_select=on_select, selection_mode="points")
    st.caption(
        KEY + "."
        if big
        else "Click a caption, image or ◆ node to inspect it. Click legend "
        "entries to hide or show an edge class; double-click to isolate it."
    )
    if other_pack is not None:
        other_pos = layout_with_placeholder(other_pack, "pca")
        fig2 = graph(other_pack, other_pos, other_cp, None, 420 if big else 620)
        fig2.update_layout(
            title_text=f"{others[other_run].split(' · ')[0]}: " + fig2.layout.title.text
        )
        show(fig2, "graph_chart_2")
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
    base = concept_card(pack.level_arrays(0), i, names, [], {}) if 0 in levels else None
    align = "—" if card["alignment"] is None else f"{card['alignment']:.2f}"
    if base is not None and card["alignment"] is not None and base["alignment"] is not None:
        align += f" (C_P = 0: {base['alignment']:.2f})"
    st.markdown(
        f"- training pairs with this caption: {card['clean_pairs']} clean, "
        f"{card['poisoned_pairs']} poisoned\n"
        f"- alignment, cos(generated, own images): {align}\n"
        f"- lands nearest to: **{card['lands_on']}** (cos {card['lands_on_cos']:.2f})"
    )
