"""Generations: the same prompts and seeds, clean baseline beside poisoned (or across every C_P),
rows grouped poisoned / related / unrelated with the most imploding first and framed; enlarge a
cell; generate from a custom prompt with the base or a run's model."""

from functools import partial

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from core.analysis.drops import accuracy_drop
from core.figures.images import generation_grid_figure, upscale
from core.results.pack import list_models
from pages._present import intro, show_shared, terms, url_choice, url_keep
from pages._ui import current_pack, generations, pack_key, route_through_app, run_banner

route_through_app()

intro(
    "Generations",
    "What the model draws for the same prompts and the same seeds, clean baseline next to "
    "poisoned: poisoned prompts turn into their targets, and past a point related and even "
    "unrelated prompts fail too.",
    "C_P",
    "poisoned",
    "related",
    "unrelated",
)

pack = current_pack()
if pack is not None:
    run_banner(pack)
HIGHLIGHT_DROP = 0.25  # rows whose judged accuracy fell by at least this much are framed


GRID_WIDTH_PX = 550  # the grid's plot width in the 1280 px window (the column less the labels)


def fitted_grid(stack: np.ndarray, rows: list[str], cols: list[str], **kw) -> go.Figure:
    """:func:`generation_grid_figure` as high as the grid drawn at ``GRID_WIDTH_PX`` wide (at
    most its own 1.6× height): a taller figure only put blank bands above and below the images,
    so a group's first row started below the fold."""
    fig = generation_grid_figure(stack, rows, cols, **kw)
    cell = stack.shape[2] * 2 + 3  # compose_grid's cell: factor 2 and a 3 px pad
    high, wide = stack.shape[0] * cell + 3, stack.shape[1] * cell + 3
    top, bottom = fig.layout.margin.t, fig.layout.margin.b
    # the group's title at the very top, clear of the column titles above the grid
    fig.update_layout(title_yref="container", title_y=1, title_yanchor="top", title_pad_t=6)
    return fig.update_layout(
        height=max(220, int(high * min(1.6, GRID_WIDTH_PX / wide)) + top + bottom)
    )


def change_pp(change: float) -> str:
    """A change of accuracy (a fraction, -1…1) in whole percentage points: "−25 pp", "+3 pp",
    and "0 pp" for a change that rounds to none (never "-0")."""
    points = round(100 * change)
    return "0 pp" if points == 0 else f"{points:+d} pp".replace("-", "−")


if pack is not None:
    gens = generations(pack_key(pack))
    if not gens:
        st.info("This run has no generated images (generations.npz): its sweep saves them.")
    if gens:
        levels = [c for c in pack.levels if c in gens]
        poisoned_levels = [c for c in levels if c > 0] or levels
        c1, c2, c3, c4 = st.columns([2, 1.2, 1, 1])
        mid = poisoned_levels[min(len(poisoned_levels) - 1, len(poisoned_levels) // 2)]
        url_choice("cp", "gen_ref", poisoned_levels, mid)
        ref = c1.select_slider(
            "C_P: poisoned concepts",
            options=poisoned_levels,
            key="gen_ref",
            help=terms("C_P") + " Rows are grouped by the concepts poisoned at this level.",
        )
        url_keep("cp", "gen_ref", ref)
        views = ["clean vs this C_P", "every C_P"]
        url_choice("view", "gen_view", views, views[0])
        view = c2.radio(
            "Columns",
            views,
            key="gen_view",
            help="Clean vs this C_P: for each seed, the clean baseline (C_P = 0) and the model "
            "poisoned at this C_P side by side. Every C_P: one seed across all levels.",
        )
        url_keep("view", "gen_view", view)
        m = gens[levels[0]].shape[1]
        url_choice("seed", "gen_sample", list(range(m)), 0)
        sample = c3.number_input(
            "Seed",
            0,
            m - 1,
            key="gen_sample",
            disabled=view != "every C_P",
            help="Which of the fixed sampling seeds (every level uses the same ones).",
        )
        url_keep("seed", "gen_sample", int(sample))
        per_group = c4.slider("Rows per group", 1, len(pack.concepts), 6, key="gen_rows")
        groups = pack.groups(ref)
        names = pack.concepts
        drop = accuracy_drop(pack, ref)
        side_by_side = view == "clean vs this C_P" and 0 in gens
        for group, label in (
            ("poisoned", "Poisoned ×"),
            ("related", "Related"),
            ("unrelated", "Unrelated"),
        ):
            ids = list(groups[group])
            if drop is not None:  # the prompts that implode most first
                ids.sort(key=lambda i: -drop[i])
            ids = ids[:per_group]
            if not ids:
                continue
            rows = [("× " if group == "poisoned" else "") + names[i] for i in ids]
            if drop is not None:
                rows = [f"{r} ({change_pp(-drop[i])})" for r, i in zip(rows, ids)]
            marked = (
                [k for k, i in enumerate(ids) if drop[i] >= HIGHLIGHT_DROP]
                if drop is not None and group != "poisoned"
                else []
            )
            if side_by_side:
                # (R, 2·m, S, S, 3): seed 0 clean, seed 0 poisoned, seed 1 clean, …
                stack = np.stack([gens[0][ids], gens[ref][ids]], axis=2)
                stack = stack.reshape(len(ids), 2 * m, *stack.shape[3:])
                # two short lines: one line per cell ran the labels together at 1280 px
                cols = [f"{w}<br>seed {k}" for k in range(m) for w in ("clean", f"C_P={ref}")]
                title_cols = "clean | poisoned, same seed side by side"
            else:
                stack = np.stack([gens[c][ids, int(sample)] for c in levels], axis=1)
                cols = [str(c) for c in levels]
                title_cols = "C_P"
            # built once per server for this run and view, shared by every session
            show_shared(
                f"gen_grid_{group}",
                (pack_key(pack), group, ref, view, int(sample), per_group),
                partial(
                    fitted_grid,
                    stack,
                    rows,
                    cols,
                    title=f"{label}: {len(groups[group])} concepts (showing {len(ids)})",
                    highlight=marked,
                    col_title=title_cols,
                ),
                config={"displayModeBar": False},
            )
        st.caption(
            "In brackets: change in judged accuracy of that prompt since C_P = 0, in percentage "
            "points, pp (mean over the seeds where the prompt is in this group: each seed poisons "
            f"its own set); ▼ and a vermillion frame: an unpoisoned prompt that fell by "
            f"{100 * HIGHLIGHT_DROP:.0f} pp or more."
            if drop is not None
            else "This run's records have no per-prompt accuracy, so no row is highlighted."
        )

        st.subheader("Enlarge")
        e1, e2 = st.columns(2)
        i = e1.selectbox("Prompt", range(len(names)), format_func=lambda k: names[k], key="gen_big")
        c = e2.select_slider(
            "C_P", options=levels, value=levels[-1], key="gen_big_cp", help=terms("C_P")
        )
        imgs = gens[c][i]
        st.image(
            [upscale(x, 8) for x in imgs],
            caption=[f"seed {k}" for k in range(len(imgs))],
            width=256,
        )

st.divider()
st.subheader("Generate from your own prompt")


@st.cache_resource(show_spinner=False, max_entries=3)
def load_model(path: str):
    from core.models.ldm import MiniLDM

    return MiniLDM.from_pretrained(path)


models = list_models()
if not models:
    st.info(
        "No model to sample from yet: the shipped base (assets/base) is missing and no run has "
        "saved a model. Build the base with `implosion train-base --out assets/base`, or "
        "restore it with `git checkout assets/`."
    )
else:
    with st.form("custom_prompt"):
        f1, f2, f3 = st.columns([3, 2, 1])
        prompt = f1.text_input("Prompt", "a photo of a large red star", key="gen_prompt")
        model = f2.selectbox("Model", list(models), key="gen_model")
        n = f3.number_input("Images", 1, 16, 4, key="gen_n")
        seed = f3.number_input("Seed", 0, 10_000, 0, key="gen_seed")
        go = st.form_submit_button("Generate")
    if go:
        try:
            with st.spinner("Loading the model (cached after the first time)…"):
                ldm = load_model(str(models[model]))
            with st.spinner(f"Sampling {n} images with 20 DDIM steps…"):
                from core.models.ldm import to_uint8

                imgs = to_uint8(ldm.sample([prompt] * int(n), seed=int(seed)))
            st.image(
                [upscale(x, 6) for x in imgs],
                caption=[f"#{k}" for k in range(len(imgs))],
                width=192,
            )
        except (ValueError, FileNotFoundError) as e:
            st.error(f"{e}. Use words from the concept world, e.g. “a photo of a small blue ring”.")
