"""Home: the story in five steps, and a button that opens the demo pack (no training)."""

from functools import partial
from typing import Any

import streamlit as st

from core.figures.trajectory import ad_components_figure
from core.io import runs_dir
from core.results.pack import Pack, demo_dir
from core.sweep.mini.config import PRESET_NOTES
from pages._claims import render_claims_panel
from pages._present import GLOSSARY, intro, show_shared
from pages._ui import open_pack, pack_choices, pack_key, route_through_app, warm_in_background

route_through_app()


def _demo_curve(demo: Pack) -> Any:
    """The demo's AD curve (built once per server: every session shares it)."""
    fig = ad_components_figure(demo.summary, height=340)
    fig.update_layout(
        title_text="Demo run: AD grows with C_P<br><sup>mean over seeds, 95 % CI</sup>"
    )
    return fig


intro(
    "Implosion Lab",
    "#### How poisoning a few concepts can make a text-to-image model forget *everything*\n"
    "An explorer for *Understanding Implosion in Text-to-Image Generative Models* "
    "(Ding, Li, Shan, Zhao, Zheng — ACM CCS 2024), on a small diffusion model you can train "
    "yourself.",
)

play, lesson, synth = st.columns([1, 1, 2])
if lesson.button(
    "Start the lesson",
    key="start_lesson",
    icon=":material/school:",
    help="Six guided steps over the demo, each with what to notice and a question for the room; "
    "the link (/lesson?step=1) can be handed out, and a printable handout downloads there",
):
    st.session_state["pack"] = "demo"
    st.session_state["lesson_next"] = 1
    st.switch_page("pages/lesson.py", query_params={"pack": "demo", "step": "1"})
if play.button(
    "▶ Play the demo",
    type="primary",
    key="play_demo",
    help="Opens the story of a finished experiment (precomputed: no training)",
):
    if (demo_dir() / "results.json").is_file():
        st.session_state["pack"] = "demo"
        st.session_state["story_autoplay"] = True  # Story starts ▶ Play from its first level
        st.switch_page("pages/story.py", query_params={"pack": "demo"})
    else:
        st.session_state["demo_missing"] = True
if st.session_state.get("demo_missing"):
    synth.error(
        f"The demo pack is missing ({demo_dir()}). Restore it with `git checkout assets/`, or "
        f"rebuild it ({PRESET_NOTES['cpu-full'].duration}) with "
        "`implosion sweep --preset cpu-full --out build/sweep` then "
        "`implosion sweep-pack build/sweep --out assets/demo`. Meanwhile you can explore a "
        "synthetic pack (made-up numbers, same format):"
    )
    if synth.button("Use a synthetic demo pack", key="synthetic_demo"):
        from core.results.synthetic import write_synthetic_demo_pack

        with st.spinner("Writing a synthetic demo pack (a second or two)…"):
            write_synthetic_demo_pack(runs_dir() / "synthetic-demo")
        st.session_state["pack"] = "synthetic-demo"
        st.switch_page("pages/story.py", query_params={"pack": "synthetic-demo"})

render_claims_panel(demo_dir())
st.divider()
story, words = st.columns([2.2, 1], gap="large")
with words, st.container(border=True):
    # Always in view beside the story (every page's ⓘ help quotes the same definitions)
    st.subheader("Words used in this app")
    st.markdown("\n".join(f"- {line}" for line in GLOSSARY.values()))

with story:
    st.header("The story in five steps")
    st.subheader("1 · Cross-attention aligns two graphs")
    st.markdown(
        "A latent diffusion model reads the prompt through **cross-attention**: image features ask "
        "questions (queries), caption tokens answer (keys and values). Training on (caption, image) "
        "pairs teaches a mapping from the **text graph** (captions, joined when they are similar) "
        "to the **image graph** (images, joined when they look alike). The paper treats this as "
        "*supervised graph alignment*: every training pair is a supervision edge between the two."
    )

    st.subheader("2 · Alignment difficulty (AD) measures how hard that mapping is")
    st.markdown(
        "For n training pairs with image embedding $x_i$ and caption embedding $y_i$ "
        "(both L2-normalised), AD mixes a feature term and a structure term:"
    )
    st.latex(r"\mathrm{AD} = \alpha\,D_{\mathrm{fea}} + (1-\alpha)\,D_{\mathrm{stru}}")
    # one formula per line: side by side they ran past the column's edge at 1280 px
    st.latex(r"D_{\mathrm{fea}} = \frac{1}{n}\sum_{i}\left(1-\hat s_i\right)")
    st.latex(
        r"D_{\mathrm{stru}} = \frac{1}{n^2}\sum_{i\neq j}"
        r"\left|\cos(x_i,x_j)-\cos(y_i,y_j)\right|"
    )
    st.markdown(
        "$\\hat s_i$ is the rescaled cosine between a caption and its own image (high when they "
        "match); $D_{\\mathrm{stru}}$ is large when images that look alike have captions that do not, "
        "or the reverse. α = 0.8 by default."
    )
    # The demo's own AD curve: the claim above, measured. (Drawing a chart here also loads the
    # browser's plotting code while the reader is on Home, so “Play the demo” draws sooner.)
    demo = open_pack("demo") if "demo" in pack_choices() else None
    if demo is not None:
        show_shared("home_ad", pack_key(demo), partial(_demo_curve, demo))

    st.subheader("3 · Poisoning adds contradictory supervision")
    st.markdown(
        "An attacker pairs captions of one concept (say *large red star*) with images of another "
        "(*small blue ring*): **dirty-label** poison, easy to spot; or **Nightshade-style** poison, "
        "images of the right concept nudged invisibly so the model's encoder sees the target. "
        "Each poisoned concept raises both terms of AD. The paper proves AD grows with the number "
        "of poisoned concepts, **C_P**."
    )

    st.subheader("4 · Implosion: the mapping breaks for everyone")
    st.markdown(
        "Past a point the model cannot fit all the contradictions with one mapping, and it "
        "distorts: prompts that were *never poisoned* land in undefined regions of image space. "
        "Images show wrong shapes and colours never seen in training. Accuracy on unpoisoned "
        "concepts falls and incoherence rises: **model implosion**."
    )

    st.subheader("5 · What to try")
    st.markdown(
        "- **Lesson**: six guided steps for a class, each with what to notice and a question; "
        "its link (`/lesson?step=3`) reopens the same step, and it prints a handout.\n"
        "- **Story**: one C_P slider moves the graph, the AD curve and the generations together; "
        "press ▶ Play to step through the levels.\n"
        "- **Alignment graph**: slide C_P and watch poisoned pairs (dashed vermillion) cross the map "
        "and the arrows (caption → where it lands) stretch.\n"
        "- **AD trajectory**: AD and its two terms vs C_P with 95 % confidence bands, next to "
        "unpoisoned accuracy and incoherence; then play with the **Theory sandbox**.\n"
        "- **Generations**: the same seeds at every C_P, poisoned / related / unrelated prompts.\n"
        "- **Cross-attention**: which pixels each word looks at, clean vs poisoned.\n"
        "- **Poison setup → Jobs**: design your own attack and watch the model train."
    )
    st.caption(
        "Colours follow the Okabe–Ito palette: poisoned = vermillion with dashes or ×, clean = blue."
    )

# While the newcomer reads, lay out the demo's graph off the script thread (once per server), so
# “Play the demo” draws from the disk cache.
warm_in_background(demo_dir())
