"""Story: one C_P control drives the alignment graph, the AD curve (marker at that C_P) and a strip
of generations (clean baseline | this C_P) side by side; ▶ Play steps through the levels."""

import numpy as np
import streamlit as st

from core.figures.graph import alignment_graph_figure
from core.figures.images import accuracy_drop, upscale
from core.figures.trajectory import implosion_figure
from pages._present import intro, show, terms
from pages._ui import (
    current_pack,
    generations,
    layout_with_placeholder,
    pack_key,
    route_through_app,
    saved_levels,
)

route_through_app()

PLAY_SECONDS = 3.0  # one level per 3 s: time to say one sentence about each picture
PER_GROUP = 2  # prompts per group in the strip (poisoned, related, unrelated)

intro(
    "Story",
    "Poison more concepts (C_P): the caption → image mapping distorts, AD rises, and even "
    "prompts that were never poisoned start to fail.",
    "C_P",
    "AD",
    "poisoned",
    "related",
    "unrelated",
)
pack = current_pack()
if pack is None:
    st.stop()
levels = saved_levels(pack)
if not levels:
    st.info("This run has no C_P level saved yet: it appears here as soon as its first level is.")
    st.stop()
if "story_next" in st.session_state:  # set by the player below, applied before the slider exists
    st.session_state["story_cp"] = st.session_state.pop("story_next")
if st.session_state.get("story_cp") not in levels:
    st.session_state["story_cp"] = levels[min(len(levels) - 1, len(levels) // 2)]

c1, c2 = st.columns([5, 1], vertical_alignment="bottom")
c_p = c1.select_slider(
    "C_P: poisoned concepts",
    options=levels,
    key="story_cp",
    help=terms("C_P"),
)
playing = c2.toggle(
    "▶ Play",
    key="story_play",
    help=f"Step through the C_P levels, one every {PLAY_SECONDS:.0f} s (stops at the last).",
)
if playing:
    st.session_state["story_tick_from_script"] = True

    @st.fragment(run_every=PLAY_SECONDS)
    def _player() -> None:
        """Advance one level per timer tick (not on the script's own run of this fragment)."""
        if st.session_state.pop("story_tick_from_script", False):
            return
        i = levels.index(st.session_state["story_cp"])
        if i + 1 >= len(levels):
            st.session_state["story_play"] = False
        else:
            st.session_state["story_next"] = levels[i + 1]
        st.rerun(scope="app")

    _player()

try:
    pos = layout_with_placeholder(pack, "pca")
except (FileNotFoundError, ValueError) as e:
    st.warning(f"The graph cannot be drawn yet: {e}")
    st.stop()
gens = generations(pack_key(pack))
baseline = pack.level_arrays(0)["generated"] if 0 in levels else None
poisoned = pack.poisoned_at(c_p)

left, mid, right = st.columns([2.2, 1.1, 1.2])
with left:
    fig = alignment_graph_figure(
        pos,
        pack.level_arrays(c_p),
        c_p,
        pack.concepts,
        poisoned,
        pack.targets,
        knn=0,
        text_concept=pack.embeddings()["text_concept"],
        height=460,
        labels=poisoned[:3],
        distortion="drift" if 0 in pos["generated"] else "arrows",
        baseline=baseline,
    )
    fig.update_layout(title_text=None, showlegend=False, margin={"t": 40, "b": 10})
    show(fig, "story_graph", config={"displayModeBar": False})
    st.caption(
        "■ caption · ● a concept's images · ◆ where its caption lands now, ◇ at C_P = 0 · "
        "purple arrows: how far each landing point drifted · dashed vermillion: poisoned pairs."
    )
with mid:
    fig_ad = implosion_figure(
        pack.summary,
        metrics=("acc_unpoisoned", "incoherence"),
        height=460,
        marker_c=c_p,
        direct_labels=True,
    )
    fig_ad.update_layout(title_text=None, margin={"t": 40, "b": 10, "l": 70, "r": 10})
    fig_ad.update_xaxes(title_text="C_P", row=2, col=1)
    fig_ad.layout.annotations[0].text = "AD rises"  # the subplot titles, short for this column
    fig_ad.layout.annotations[1].text = "unpoisoned prompts"
    show(fig_ad, "story_ad", config={"displayModeBar": False})

with right:
    # Prompts by the poisoned set at this C_P (at C_P = 0: the set the first poisoned level uses,
    # so the same rows can be followed from the clean baseline onwards).
    ref = c_p if c_p > 0 else next((c for c in levels if c > 0), 0)
    groups = pack.groups(ref)
    drop = accuracy_drop(pack.records, len(pack.concepts), ref)
    rows: list[int] = []
    labels: list[str] = []
    for group, mark in (("poisoned", "× "), ("related", "≈ "), ("unrelated", "")):
        ids = list(groups[group])
        if drop is not None and group != "poisoned":  # the ones that fail most tell the story
            ids.sort(key=lambda i: -drop[i])
        rows += ids[:PER_GROUP]
        labels += [mark + pack.concepts[i] for i in ids[:PER_GROUP]]
    if gens and 0 in gens and c_p in gens and rows:
        # the unpoisoned prompt that fell most: implosion reaching prompts nobody poisoned
        healthy = [i for i in rows if i not in groups["poisoned"]]
        worst = (
            None
            if drop is None or c_p == 0 or not healthy
            else healthy[int(np.argmax(drop[healthy]))]
        )
        h1, h2, h3 = st.columns([1.6, 1, 1])
        h2.markdown("**clean**")
        h3.markdown(f"**C_P {c_p}**")
        for i, label in zip(rows, labels):
            r1, r2, r3 = st.columns([1.6, 1, 1], vertical_alignment="center")
            name = f":red[**{label} ▼**]" if i == worst else label
            r1.markdown(name)
            r2.image(upscale(gens[0][i, 0], 2), width="stretch")
            r3.image(upscale(gens[c_p][i, 0], 2), width="stretch")
        st.caption("Same seed in both columns. × poisoned · ≈ related · ▼ fell most since C_P = 0.")
    else:
        st.info("This run has no generated images for C_P = 0 and this level.")
