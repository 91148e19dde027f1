"""Story: one C_P control drives the alignment graph, the AD curve (marker at that C_P) and a strip
of generations (clean baseline | this C_P) side by side; ▶ Play steps through the levels.

The level view (slider, ▶ Play, the three views) is a fragment: a C_P step or a Play tick reruns
only it, and its two figures are built once per server for each run and level (shared by every
session), so a step costs the server little more than sending them.
"""

from typing import Any

import numpy as np
import streamlit as st

from core.figures.graph import alignment_graph_figure
from core.figures.trajectory import implosion_figure
from core.lesson import pinned_prompts, play_levels, row_roles, seed_drop
from core.results.pack import Pack
from pages._present import (
    STORY_TERMS,
    intro,
    pinned_rows,
    show_shared,
    terms,
    url_choice,
    url_keep,
)
from pages._ui import (
    current_pack,
    generations,
    layout_with_placeholder,
    pack_key,
    route_through_app,
    run_banner,
    saved_levels,
)

route_through_app()

PLAY_SECONDS = 3.0  # one level per 3 s: time to say one sentence about each picture

intro(
    "Story",
    "Poison more concepts (C_P): the caption → image mapping distorts, AD rises, and even "
    "prompts that were never poisoned start to fail.",
    *STORY_TERMS,
)
pack = current_pack()
if pack is None:
    st.stop()
run_banner(pack)
levels = saved_levels(pack)
if not levels:
    st.info("This run has no C_P level saved yet: it appears here as soon as its first level is.")
    st.stop()
# ▶ Play stops at the last level that still has unpoisoned prompts ("even unpoisoned prompts
# fail" cannot be shown where every concept is poisoned)
played = play_levels(pack, levels)
if st.session_state.pop("story_autoplay", False):  # “▶ Play the demo” on Home: play from the start
    st.session_state["story_play"] = True
    st.session_state["story_next"] = played[0]
try:
    pos = layout_with_placeholder(pack, "pca")
except (FileNotFoundError, ValueError) as e:
    st.warning(f"The graph cannot be drawn yet: {e}")
    st.stop()


def _from_start() -> None:
    """Play pressed at or past the last level it plays: start again from the first."""
    if st.session_state.get("story_play") and st.session_state.get("story_cp", 0) >= played[-1]:
        st.session_state["story_next"] = played[0]


def _moved() -> None:
    """The slider moved by hand: this rerun is not a Play tick (Play goes on from there)."""
    st.session_state["_story_moved"] = True


def _graph(pack: Pack, pos: dict, c_p: int) -> Any:
    """The alignment graph at ``c_p`` as the Story draws it (built once per run and level)."""
    levels = pack.levels
    poisoned = pack.poisoned_at(c_p)
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
        label_area=(115.0, 330.0),  # the text panel's nodes in the Story's column at 1280 px
        distortion="drift" if 0 in pos["generated"] else "arrows",
        baseline=pack.level_arrays(0)["generated"] if 0 in levels else None,
    )
    fig.update_layout(title_text=None, showlegend=False, margin={"t": 40, "b": 10})
    return fig


def _curve(pack: Pack, levels: list[int], c_p: int) -> Any:
    """AD and unpoisoned accuracy vs C_P with a marker at ``c_p``, for a narrow column."""
    fig_ad = implosion_figure(
        pack.summary,
        metrics=("acc_unpoisoned", "incoherence"),
        height=460,
        marker_c=c_p,
        direct_labels=True,
    )
    fig_ad.update_layout(title_text=None, margin={"t": 40, "b": 10, "l": 50, "r": 10})
    fig_ad.update_xaxes(title_text="C_P", row=2, col=1)
    # this column is narrow: ticks at least a fifth of the C_P range apart (0, 1, 2, 4, 8 ran
    # together) and smaller subplot titles (they were cut at the column's edge)
    ticks = [levels[0]]
    for lv in levels[1:]:
        if lv - ticks[-1] >= (levels[-1] - levels[0]) / 5:
            ticks.append(lv)
    fig_ad.update_xaxes(tickvals=ticks, ticktext=[str(t) for t in ticks], tickangle=0)
    fig_ad.layout.annotations[0].text = "AD rises"  # the subplot titles, short for this column
    fig_ad.layout.annotations[1].text = "unpoisoned prompts"
    for title in fig_ad.layout.annotations[:2]:
        title.font.size = 14
    return fig_ad


def level_view(pack: Pack, levels: list[int], played: list[int], pos: dict, timer: bool) -> None:
    """Slider, ▶ Play and the three views at the chosen C_P. ``timer``: this fragment was
    started with Play's timer (a rerun that is neither the page's nor a slider move is a tick)."""
    full_run = st.session_state.pop("_story_full_run", False)
    moved = st.session_state.pop("_story_moved", False)
    if timer and st.session_state.get("story_play") and not full_run and not moved:
        later = [c for c in played if c > st.session_state.get("story_cp", played[0])]
        if later:
            st.session_state["story_next"] = later[0]
        else:  # the last level it plays: stop there (the toggle is drawn below)
            st.session_state["story_play"] = False
    if "story_next" in st.session_state:  # a Play tick, the lesson or the teacher's view
        st.session_state["story_cp"] = st.session_state.pop("story_next")
    url_choice("cp", "story_cp", levels, levels[min(len(levels) - 1, len(levels) // 2)])

    c1, c2 = st.columns([5, 1], vertical_alignment="bottom")
    c_p = c1.select_slider(
        "C_P: poisoned concepts",
        options=levels,
        key="story_cp",
        on_change=_moved,
        help=terms("C_P"),
    )
    url_keep("cp", "story_cp", c_p)
    playing = c2.toggle(
        "▶ Play",
        key="story_play",
        on_change=_from_start,
        help=f"Step through the C_P levels, one every {PLAY_SECONDS:.0f} s, up to C_P "
        f"{played[-1]}, the last level with unpoisoned prompts.",
    )
    if playing != timer:  # Play's timer starts and stops with a run of the whole page
        st.rerun(scope="app")

    key = pack_key(pack)
    gens = generations(key)
    left, mid, right = st.columns([2.2, 1.1, 1.2])
    with left:
        show_shared(
            "story_graph",
            (key, c_p),
            lambda: _graph(pack, pos, c_p),
            config={"displayModeBar": False},
        )
        st.caption(
            "■ caption · ● a concept's images · ◆ where its caption lands now, ◇ at C_P = 0 · "
            "purple arrows: how far each landing point drifted · dashed vermillion: poisoned pairs."
        )
    with mid:
        show_shared(
            "story_ad",
            (key, c_p, tuple(levels)),
            lambda: _curve(pack, levels, c_p),
            config={"displayModeBar": False},
        )
    with right:
        # The pinned prompts: chosen once for this run (in the plan of the seed whose images are
        # shown), the same rows at every level so the room can follow one prompt as it degrades.
        pinned = pinned_prompts(pack)
        rows = list(pinned.ids)
        if gens and 0 in gens and c_p in gens and rows:
            roles = row_roles(pack, pinned, c_p)
            drop = seed_drop(pack, c_p, pinned.seed)
            healthy = [k for k, r in enumerate(roles) if r != "poisoned"]
            # the unpoisoned prompt that fell most in this seed: implosion reaching prompts nobody
            # poisoned
            worst = (
                None
                if drop is None or c_p == 0 or not healthy
                else healthy[int(np.argmax(drop[[rows[k] for k in healthy]]))]
            )
            if worst is not None and drop is not None and drop[rows[worst]] <= 0:
                worst = None
            pinned_rows(pack, pinned, gens, c_p, samples=1, mark=worst, image_px=60)
            st.caption(
                f"Pinned prompts (same rows at every C_P), seed {pinned.seed}, same sampling seed "
                "in both columns. × poisoned · ≈ related · ▼ fell most since C_P = 0 in this seed."
            )
        else:
            st.info("This run has no generated images for C_P = 0 and this level.")


playing = bool(st.session_state.get("story_play"))
st.session_state["_story_full_run"] = True
st.fragment(level_view, run_every=PLAY_SECONDS if playing else None)(
    pack, levels, played, pos, playing
)
