"""Cross-attention maps: which pixels each prompt word attends to, clean vs poisoned model."""

import streamlit as st

from core.figures.images import overlay_heatmap, upscale
from core.results.pack import list_models
from pages._present import intro
from pages._ui import current_pack, route_through_app, run_banner, run_models

route_through_app()

intro(
    "Cross-attention maps",
    "Which pixels each word of the prompt looks at, clean model beside poisoned: in a healthy "
    "model the colour and shape words light up the object; after implosion the maps blur or "
    "drift.",
    "poisoned",
)
st.caption(
    "Attention of the denoiser's cross-attention layers, averaged over heads, layers and "
    "denoising steps. Bright = the word is used there."
)


@st.cache_resource(show_spinner=False, max_entries=3)
def load_model(path: str):
    from core.models.ldm import MiniLDM

    return MiniLDM.from_pretrained(path)


@st.cache_data(show_spinner=False, max_entries=32)
def maps_for(path: str, prompt: str, seed: int, steps: int):
    from core.analysis.attention import cross_attention_maps

    return cross_attention_maps(load_model(path), prompt, seed=seed, steps=steps)


models = list_models()
if not models:
    st.info(
        "No model to inspect yet: the shipped base (assets/base) is missing and no run has saved "
        "a model. Build the base with `implosion train-base --out assets/base` (or restore it "
        "with `git checkout assets/`), then fine-tune with poison from **Poison setup**."
    )
else:
    names = list(models)
    pack = current_pack()
    if pack is not None:
        run_banner(pack)
    run_clean, run_poisoned = run_models(models, pack.root if pack is not None else None)
    if run_poisoned:
        st.caption(f"Preselected: the poisoned model saved by the chosen run ({run_poisoned}).")
    with st.form("attention_form"):
        a, b = st.columns(2)
        clean = a.selectbox(
            "Clean model", names, index=names.index(run_clean) if run_clean else 0, key="att_clean"
        )
        poisoned = b.selectbox(
            "Poisoned model",
            names,
            index=names.index(run_poisoned) if run_poisoned else len(names) - 1,
            key="att_poisoned",
        )
        p1, p2, p3 = st.columns([3, 1, 1])
        prompt = p1.text_input("Prompt", "a photo of a large red star", key="att_prompt")
        seed = p2.number_input("Seed", 0, 10_000, 0, key="att_seed")
        steps = p3.number_input("DDIM steps", 2, 50, 20, key="att_steps")
        go = st.form_submit_button("Compute maps")

    if go:
        cols = st.columns(2)
        for col, label, name in ((cols[0], "Clean", clean), (cols[1], "Poisoned", poisoned)):
            with col:
                st.subheader(f"{label}: {name}")
                try:
                    with st.spinner("Sampling and recording cross-attention…"):
                        image, tokens, maps = maps_for(
                            str(models[name]), prompt, int(seed), int(steps)
                        )
                except (ValueError, FileNotFoundError) as e:
                    st.error(f"{e}. Use words from the concept world, e.g. “a small blue ring”.")
                    continue
                st.image(upscale(image, 6), caption="generated image", width=192)
                overlays = [upscale(overlay_heatmap(image, m), 4) for m in maps]
                st.image(overlays, caption=tokens, width=128)
