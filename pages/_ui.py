"""Shared UI helpers for the pages: pack selection, cached loaders, export buttons.

Everything heavy is cached: packs as resources (shared, never copied), derived arrays as data.
Keys include the results file's mtime so a re-written pack is picked up without a restart.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import streamlit as st

from core.results.pack import RESULTS, Pack, list_packs, load_pack

PACK_KEY = "pack"


def route_through_app() -> None:
    """Make a deep link on a fresh server go through app.py's ``st.navigation``.

    Streamlit treats an app with a ``pages/`` folder as a legacy multipage app until the entry
    script has called ``st.navigation`` once: a first request for ``/jobs?run=…`` (a reload after a
    server restart) would run this file directly, with an auto-generated sidebar. Flip the flag
    that st.navigation itself clears and rerun, so app.py routes (same URL, same query params).
    """
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # internal module moved: the legacy sidebar is cosmetic, carry on
        return
    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False
        st.rerun()


def _stamp(path: Path) -> float:
    try:
        return (path / RESULTS).stat().st_mtime
    except OSError:
        return 0.0


@st.cache_resource(show_spinner=False, max_entries=8)
def _load(path: str, stamp: float) -> Pack:
    return load_pack(Path(path))


def pack_choices() -> dict[str, Path]:
    return list_packs()


def current_pack(sidebar: bool = True) -> Pack | None:
    """The pack chosen in the sidebar (remembered in session state and ``?pack=``), or None
    with an explanation of how to get one."""
    packs = pack_choices()
    if not packs:
        st.warning(
            "No results to show yet: the demo pack (assets/demo) is missing and no sweep has "
            "finished. Go to **Home** and press **Play the demo** (it can write a synthetic demo), "
            "or run `implosion sweep --preset cpu-quick --out runs/my-sweep`."
        )
        return None
    wanted = st.query_params.get(PACK_KEY) or st.session_state.get(PACK_KEY)
    names = list(packs)
    index = names.index(wanted) if wanted in names else 0
    if sidebar:
        name = st.sidebar.selectbox(
            "Results pack",
            names,
            index=index,
            key="pack_select",
            help="The demo pack ships with the app; finished sweeps appear here too.",
        )
    else:
        name = names[index]
    st.session_state[PACK_KEY] = name
    if st.query_params.get(PACK_KEY) != name:
        st.query_params[PACK_KEY] = name
    try:
        pack = _load(str(packs[name]), _stamp(packs[name]))
    except (FileNotFoundError, ValueError) as e:
        st.error(f"Cannot open pack “{name}”: {e}")
        return None
    if pack.config.get("preset") == "synthetic":
        st.sidebar.warning("Synthetic pack: made-up numbers for trying the app, not results.")
    return pack


def pack_key(pack: Pack) -> tuple[str, float]:
    """Cache key of a pack (path and results mtime)."""
    return str(pack.root), _stamp(pack.root)


def export_buttons(fig: Any, name: str) -> None:
    """Download buttons for a figure: HTML always; PNG/SVG when kaleido and a Chrome/Chromium are
    available (otherwise a caption says what to install)."""
    from core.figures.export import MIME, export_formats, figure_bytes, static_export_problem

    with st.expander(f"Export “{name}”"):
        formats = export_formats()
        cols = st.columns(len(formats))
        for col, fmt in zip(cols, formats):
            # Deferred: the file is only made when the button is clicked, in a server thread, not
            # in this script (HTML with plotly.js inlined is ~5 MB; PNG/SVG go through a browser).
            col.download_button(
                f"Download {fmt.upper()}",
                partial(figure_bytes, fig, fmt),
                file_name=f"{name}.{fmt}",
                mime=MIME[fmt],
                key=f"dl-{name}-{fmt}",
                on_click="ignore",
            )
        problem = static_export_problem() if formats == ["html"] else None
        if problem:
            st.caption(problem + " The HTML file is interactive and opens offline in any browser.")
        else:
            st.caption(
                "PNG (2× resolution) and SVG are rendered by a headless Chromium: the first one "
                "starts it (a few seconds), later ones take well under a second."
            )


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """A small Markdown table (cheaper than st.dataframe, which loads pandas and Arrow)."""
    if not rows:
        return ""
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = ["—" if r.get(c) is None else str(r.get(c)).replace("|", "/") for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
