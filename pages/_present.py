"""Plain words and presenter mode, shared by every page.

Plain words: one definition per symbol (:data:`GLOSSARY`) in the words of the Home story, used as
hover help, and :func:`intro`: each page opens with its title and one sentence of what it shows.
Presenter mode (sidebar switch or ``?present=1``): the sidebar folds away, every figure's text is
raised (:func:`core.figures.palette.present`), pages fold secondary options so the main figure sits
above the fold at 1280×720.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

import streamlit as st

from core.lesson.glossary import GLOSSARY
from pages._ui import _from_url_or_session, _write_url

# ---------------------------------------------------------------- plain words
# GLOSSARY (core/lesson/glossary.py) holds one definition per symbol; help texts quote it.


def terms(*names: str) -> str:
    """Help text (hover ⓘ) explaining the given symbols, one per line."""
    return "\n\n".join(GLOSSARY[n] for n in names)


# The words of every page that shows poisoning levels and the three groups of prompts.
STORY_TERMS = ("C_P", "AD", "poisoned", "related", "unrelated")


def intro(title: str, sentence: str, *symbols: str) -> None:
    """Page heading: the title, one sentence of what the page shows, and the words it uses."""
    st.title(title, help=terms(*symbols) if symbols else None)
    st.markdown(sentence)


# ---------------------------------------------------------------- presenter mode
PRESENT_KEY = "present"


def presenter() -> bool:
    """Whether presenter mode is on: ``?present=1`` in the URL or the sidebar toggle. Page
    switches drop query parameters, so the choice lives in session state and is written back."""
    on = _from_url_or_session(PRESENT_KEY) not in (None, "0", "false", "")
    _write_url(PRESENT_KEY, "1" if on else None)
    return on


def presenter_toggle() -> bool:
    """The sidebar switch for presenter mode (app.py draws it once for every page)."""
    on = presenter()
    if st.session_state.get("present_toggle") != on:
        st.session_state["present_toggle"] = on
    st.sidebar.toggle(
        "Presenter mode",
        key="present_toggle",
        on_change=lambda: st.session_state.__setitem__(
            PRESENT_KEY, "1" if st.session_state["present_toggle"] else "0"
        ),
        help="For a projector: sidebar folded away, larger text on every figure, names on the "
        "poisoned and selected graph nodes, few distinct colours. Also `?present=1` in the URL.",
    )
    return on


def show(fig: Any, key: str, **kwargs: Any) -> Any:
    """Draw a Plotly figure in the app's own style (the one exports use: ``theme=None``), with
    presenter-mode text sizes when that is on."""
    from core.figures.palette import present

    if presenter():
        present(fig)
    return st.plotly_chart(fig, key=key, theme=None, **kwargs)


@st.cache_resource(show_spinner=False, max_entries=96)
def _shared_figure(name: str, key: Hashable, present_mode: bool, _build: Callable[[], Any]) -> Any:
    """The figure ``_build`` makes for (``name``, ``key``, presenter mode), built once per server
    process and shared by every session (a cache resource: no copy per session)."""
    from core.figures.palette import present

    fig = _build()
    if present_mode and fig is not None:
        present(fig)
    return fig


def show_shared(name: str, key: Hashable, build: Callable[[], Any], **kwargs: Any) -> Any:
    """:func:`show` for a figure that depends only on ``key`` (a pack's :func:`pages._ui.pack_key`,
    the level shown, …): built once per server for that key and presenter mode, then every
    session's rerun only sends it. ``build`` must make a new figure from ``key``'s inputs alone,
    and nobody may change the figure it returns (it is shared). A build that returns None (the
    run lacks what the figure needs) draws nothing and returns None."""
    fig = _shared_figure(name, key, presenter(), build)
    if fig is None:
        return None
    return st.plotly_chart(fig, key=name, theme=None, **kwargs)


# Presenter mode: less padding above the page so the main figure sits above the fold at 1280×720,
# and larger widget labels.
PRESENTER_CSS = """<style>
.block-container {padding-top: 2.2rem !important; padding-bottom: 1rem !important;}
h1 {font-size: 2.0rem !important; padding-bottom: 0.2rem !important;}
[data-testid="stWidgetLabel"] p {font-size: 1.05rem !important;}
</style>"""


# ---------------------------------------------------------------- shareable views
def url_choice(key: str, widget: str, options: Sequence[Any], default: Any) -> None:
    """Before the widget keyed ``widget`` is drawn: start it from ``?key=`` when the URL names an
    option this widget has not taken yet (a shared link, a reload), else keep the session's
    value, else ``default``. Pair with :func:`url_keep` after the widget."""
    url = st.query_params.get(key)
    seen = f"_{widget}_url_seen"
    if url is not None and url != st.session_state.get(seen):
        st.session_state[seen] = url
        match = next((o for o in options if str(o) == url), None)
        numbers = [o for o in options if isinstance(o, int) and not isinstance(o, bool)]
        if match is None and numbers and len(numbers) == len(options):
            try:  # a number outside the options (?step=99, ?cp=30): the nearest one
                asked = float(url)
                match = min(numbers, key=lambda o: (abs(o - asked), o))
            except ValueError:
                pass
        if match is not None:
            st.session_state[widget] = match
    if st.session_state.get(widget) not in options:
        st.session_state[widget] = default


def url_keep(key: str, widget: str, value: Any) -> None:
    """Write a widget's value to ``?key=`` so a copied link reopens this view."""
    text = None if value is None else str(value)
    if text is None:
        if key in st.query_params:
            del st.query_params[key]
    elif st.query_params.get(key) != text:
        st.query_params[key] = text
    st.session_state[f"_{widget}_url_seen"] = text


# ---------------------------------------------------------------- pinned prompts
def pinned_rows(
    pack: Any,
    pinned: Any,
    gens: dict[int, Any],
    c_p: int,
    samples: int = 1,
    mark: int | None = None,
    image_px: int | None = None,
) -> None:
    """The pinned prompts (:func:`core.lesson.pinned_prompts`) as labelled rows: the name with
    its role at ``c_p`` (× poisoned, ≈ related), ``samples`` clean images, then the same sampling
    seeds at ``c_p``. ``mark``: a row index drawn in red with ▼ (the prompt that fell most);
    ``image_px``: image width (default: the column's), so five rows fit under a projector's fold."""
    from core.figures.images import upscale
    from core.lesson import pinned_images, row_labels

    images = pinned_images(gens, pinned, c_p, samples)
    m = images.shape[1] // 2
    widths = [1.6] + [1.0] * images.shape[1]
    width: int | str = image_px if image_px else "stretch"
    head = st.columns(widths)
    head[1].markdown("**clean**" if c_p else f"**clean (C_P 0): {images.shape[1]} seeds**")
    if c_p:
        head[1 + m].markdown(f"**C_P {c_p}**")
    for k, label in enumerate(row_labels(pack, pinned, c_p)):
        cols = st.columns(widths, vertical_alignment="center")
        cols[0].markdown(f":red[**{label} ▼**]" if k == mark else label)
        for j in range(images.shape[1]):
            cols[1 + j].image(upscale(images[k, j], 2), width=width)


def result_rows(pack: Any, gens: dict[int, Any]) -> bool:
    """A finished run's result as labelled rows: the pinned prompts, clean | poisoned at the
    highest level with images (two sampling seeds each). False when the run has no images for
    C_P 0 and a poisoned level (nothing drawn)."""
    from core.lesson import pinned_prompts

    poisoned = [c for c in sorted(gens) if c > 0]
    if 0 not in gens or not poisoned:
        return False
    pinned = pinned_prompts(pack)
    c_p = poisoned[-1]
    st.markdown(
        f"**Result: clean | poisoned at C_P {c_p}** (seed {pinned.seed}; × poisoned, ≈ related: "
        "shares two words with a poisoned concept; same sampling seeds on both sides)"
    )
    pinned_rows(pack, pinned, gens, c_p, samples=2, image_px=72)
    return True
