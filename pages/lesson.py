"""Lesson: six guided steps over a run (the demo by default), each with what to notice, one
question for students and its figure; the step lives in the URL (``/lesson?step=3``) so a teacher
can hand out a link; the printable handout downloads from here."""

from functools import partial
from typing import Any

import streamlit as st

from core.lesson import LessonStep, lesson_steps, pinned_prompts
from core.lesson.figures import step_figure
from pages._present import STORY_TERMS, intro, pinned_rows, show_shared, url_choice, url_keep
from pages._ui import (
    current_pack,
    generations,
    layout_with_placeholder,
    pack_key,
    route_through_app,
    run_banner,
)

route_through_app()

intro(
    "Lesson",
    "From a clean model to implosion in six steps, following the same pinned prompts.",
    *STORY_TERMS,
)
pack = current_pack()
if pack is None:
    st.stop()
run_banner(pack)
try:
    pinned = pinned_prompts(pack)
    steps = lesson_steps(pack, pinned)
except ValueError as e:
    st.warning(f"This run cannot carry the lesson: {e}")
    st.stop()

numbers = list(range(1, len(steps) + 1))
if "class_lesson_step" in st.session_state:  # the teacher's step, for a student who follows
    st.session_state["lesson_step"] = st.session_state.pop("class_lesson_step")
if "lesson_next" in st.session_state:  # set by Back / Next, applied before the control exists
    st.session_state["lesson_step"] = st.session_state.pop("lesson_next")
url_choice("step", "lesson_step", numbers, 1)

n = st.segmented_control(
    "Step",
    numbers,
    key="lesson_step",
    format_func=lambda i: f"{i} · {steps[i - 1].short}",
    label_visibility="collapsed",
)
if n not in numbers:  # a click on the selected step clears the control: stay on that step
    st.session_state["lesson_next"] = st.session_state.get("_lesson_last", 1)
    st.rerun()
st.session_state["_lesson_last"] = n
url_keep("step", "lesson_step", n)

step = steps[n - 1]
st.session_state["_lesson_cp"] = step.c_p  # what "Show the class my view" sends as its C_P
text, figure = st.columns([1, 1.5], gap="medium")
with text:
    st.markdown(f"#### {n} · {step.title}")
    st.markdown(f"**What to notice** (C_P {step.c_p}). {step.notice}")
    st.info(f"**Question for the room.** {step.question}")
    back, fwd, story = st.columns([1, 1, 1.6])
    if back.button("◀ Back", key="lesson_back", disabled=n <= 1, width="stretch"):
        st.session_state["lesson_next"] = n - 1
        st.rerun()
    if fwd.button("Next ▶", key="lesson_fwd", disabled=n >= len(steps), width="stretch"):
        st.session_state["lesson_next"] = n + 1
        st.rerun()
    if story.button(f"Story at C_P {step.c_p}", key="lesson_story", width="stretch"):
        st.session_state["story_next"] = step.c_p
        st.switch_page("pages/story.py", query_params={"cp": str(step.c_p)})
with figure:
    gens = generations(pack_key(pack))
    if step.figure == "strip" and 0 in gens and step.c_p in gens:
        pinned_rows(pack, pinned, gens, step.c_p, samples=2, image_px=64)
        st.caption(
            "The pinned prompts, the same at every step: × poisoned · ≈ related (shares two words "
            f"with a poisoned concept) · seed {pinned.seed}"
            + (
                ", the same sampling seeds left (clean) and right (this C_P)."
                if step.c_p
                else ", clean model: what each prompt should look like."
            )
        )
    else:
        pos = None
        if step.figure == "graph":
            try:
                pos = layout_with_placeholder(pack, "pca")
            except (FileNotFoundError, ValueError) as e:
                st.warning(f"The graph cannot be drawn yet: {e}")

        def _figure(step: LessonStep = step, pos: dict | None = pos) -> Any:
            fig = step_figure(step, pack, pinned, gens, pos, height=420)
            if fig is not None:
                fig.update_layout(title_text=None, margin={"t": 30, "b": 10})
            return fig

        # built once per server for this run and step (a class following the teacher's step
        # reruns this page in every student's session at once)
        drawn = show_shared(
            f"lesson_fig_{step.key}",
            (pack_key(pack), step.key, pos is not None),
            _figure,
            config={"displayModeBar": False},
        )
        if drawn is None:
            st.info(
                "This run lacks what this step's figure needs (generated images, embeddings or "
                "a detector evaluation: `implosion defend --pack PACK`)."
            )
        elif step.figure == "defend":
            st.caption(
                "ROC AUC of each detector on the training pairs: solid = dirty-label poisons, "
                "dashed = Nightshade-style; 1 = every poison caught, 0.5 (dotted) = chance."
            )


@st.cache_data(show_spinner=False, max_entries=4)
def _handout(key: tuple[str, float], pdf: bool) -> bytes:
    """The handout of the pack with cache key ``key``: HTML, or the PDF Chromium prints."""
    import tempfile
    from pathlib import Path

    from core.lesson.handout import write_handout
    from pages._ui import _load

    with tempfile.TemporaryDirectory(prefix="handout-") as tmp:
        html, pdf_path = Path(tmp) / "handout.html", Path(tmp) / "handout.pdf"
        write_handout(_load(*key), html, pdf_path if pdf else None)
        return (pdf_path if pdf else html).read_bytes()


st.divider()
# Both labels whole: side by side in narrow columns they were cut to "Download the h…".
h1, h3 = st.columns([2, 3], vertical_alignment="center")
for fmt, mime, as_pdf in (("HTML", "text/html", False), ("PDF", "application/pdf", True)):
    h1.download_button(
        f"Download the handout ({fmt})",
        partial(_handout, pack_key(pack), as_pdf),
        file_name=f"implosion-handout.{fmt.lower()}",
        mime=mime,
        key=f"lesson_handout_{fmt.lower()}",
        on_click="ignore",
        width="stretch",
    )
h3.caption(
    "Two A4 pages: the pinned prompts at three levels (clean | poisoned), the AD curve and every "
    "step's question. The PDF is printed by a headless Chromium (a few seconds); the HTML prints "
    "from any browser. Same as `implosion handout --out handout.html --pdf handout.pdf`."
)
