"""Generations: prompts × C_P with identical seeds, rows grouped poisoned / related /
unrelated; enlarge a cell; generate from a custom prompt with the base or a run's model."""

import numpy as np
import streamlit as st

from core.figures.images import generation_grid_figure, upscale
from core.results.pack import list_models
from pages._ui import current_pack, pack_key, route_through_app

route_through_app()

st.title("Generations")
st.caption(
    "Every column uses the same seeds, so differences come from the model, not the noise. "
    "Related = shares at least two attribute words with a poisoned concept."
)

pack = current_pack()


@st.cache_data(show_spinner=False, max_entries=4)
def generations(key: tuple[str, float]) -> dict[int, np.ndarray]:
    return pack.generations()


if pack is not None:
    try:
        gens = generations(pack_key(pack))
    except FileNotFoundError as e:
        st.info(str(e))
        gens = {}
    if gens:
        levels = [c for c in pack.levels if c in gens]
        c1, c2, c3 = st.columns([2, 1, 1])
        ref = c1.select_slider(
            "Group rows by the poisoned set at C_P =",
            options=levels,
            value=levels[min(len(levels) - 1, len(levels) // 2)],
            key="gen_ref",
        )
        m = gens[levels[0]].shape[1]
        sample = c2.number_input("Sample (seed index)", 0, m - 1, 0, key="gen_sample")
        per_group = c3.slider("Rows per group", 1, len(pack.concepts), 6, key="gen_rows")
        groups = pack.groups(ref)
        names = pack.concepts
        stack = np.stack([gens[c][:, int(sample)] for c in levels], axis=1)  # (K, L, S, S, 3)
        for group, label in (
            ("poisoned", "Poisoned ×"),
            ("related", "Related"),
            ("unrelated", "Unrelated"),
        ):
            ids = groups[group][:per_group]
            if not ids:
                continue
            rows = [("× " if group == "poisoned" else "") + names[i] for i in ids]
            fig = generation_grid_figure(
                stack[ids],
                rows,
                [str(c) for c in levels],
                title=f"{label}: {len(groups[group])} concepts (showing {len(ids)})",
            )
            st.plotly_chart(fig, key=f"gen_grid_{group}", config={"displayModeBar": False})

        st.subheader("Enlarge")
        e1, e2 = st.columns(2)
        i = e1.selectbox("Prompt", range(len(names)), format_func=lambda k: names[k], key="gen_big")
        c = e2.select_slider("C_P", options=levels, value=levels[-1], key="gen_big_cp")
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
