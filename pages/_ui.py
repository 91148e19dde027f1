"""Shared UI helpers for the pages: the run picker, cached loaders, export buttons.

Plain words (glossary, page intros) and presenter mode live in :mod:`pages._present`.

Everything heavy is cached: packs as resources (shared, never copied), derived arrays as data.
Keys include the results file's mtime so a re-written pack is picked up without a restart.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import streamlit as st

from core.jobs.labels import distinct
from core.results.pack import RESULTS, BrokenPack, Pack, load_pack
from core.results.runs import RunInfo, list_runs

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
        PagesManager = None  # type: ignore[assignment,misc]
    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False
        st.rerun()
    from pages._class import require_member

    require_member()  # a page run without app.py still shows a class server's join form first


def _stamp(path: Path) -> float:
    try:
        return (path / RESULTS).stat().st_mtime
    except OSError:
        return 0.0


@st.cache_resource(show_spinner=False, max_entries=8)
def _load(path: str, stamp: float) -> Pack:
    """The pack, shared by every session. Its embeddings are read here, before it is shared:
    ``Pack.embeddings`` fills its dict lazily, and a second session reading it half-filled saw
    levels missing when many sessions opened it at once)."""
    pack = load_pack(Path(path))
    try:
        pack.embeddings()
    except FileNotFoundError:
        pass  # a pack whose sweep has not written embeddings yet: pages say so
    return pack


# ---------------------------------------------------------------- run picker
@st.cache_data(show_spinner=False, ttl=3, max_entries=1)
def _runs(runs: str, assets: str) -> list[RunInfo]:
    """:func:`core.results.runs.list_runs`, read at most every 3 s (it parses every results.json;
    a run filling in shows its new levels within seconds). Keyed by the folders it reads."""
    return list_runs()


def run_choices() -> list[RunInfo]:
    """The demo pack and every run with results (demo first, then newest first) that this
    session may open (on a class server a student sees the demo, pinned runs and their own)."""
    from core.io import assets_dir, runs_dir
    from core.results.runs import visible_runs
    from pages._class import current_principal

    return visible_runs(_runs(str(runs_dir()), str(assets_dir())), current_principal())


def run_label(run: RunInfo) -> str:
    """One picker line: name · date · model · C_P levels · state; a pack that fails validation
    reads ``name · date · broken (reason)``."""
    day = run.created[:16].replace("T", " ") if run.created else "—"
    name = run.name[:1].upper() + run.name[1:]
    if run.broken:
        return f"⚠ {name} · {day} · {run.state_text}"
    levels = ", ".join(map(str, run.levels)) or "no levels yet"
    return f"{name} · {day} · {run.model} · C_P {levels} · {run.state}"


def pack_choices() -> dict[str, Path]:
    """Run id → pack folder, in picker order."""
    return {r.id: r.path for r in run_choices()}


def _from_url_or_session(key: str) -> str | None:
    """A choice kept both in ``?key=`` and in session state. A URL value this session has not
    seen yet (a deep link, a reload, ``st.switch_page(..., query_params=...)``) wins; otherwise
    the session's own (a sidebar page switch drops query parameters)."""
    url = st.query_params.get(key)
    seen = f"_{key}_url_seen"
    if url is not None and url != st.session_state.get(seen):
        st.session_state[seen] = url
        st.session_state[key] = url
    return st.session_state.get(key)


def _write_url(key: str, value: str | None) -> None:
    seen = f"_{key}_url_seen"
    if value is None:
        if key in st.query_params:
            del st.query_params[key]
    elif st.query_params.get(key) != value:
        st.query_params[key] = value
    st.session_state[seen] = value


def chosen_pack_name(names: list[str]) -> str:
    """The pack the URL or this session names, else the first (the demo). A name that is not
    among ``names`` (and not refused to this session) is returned as is, so the page says the
    run is missing instead of silently showing the demo."""
    wanted = _from_url_or_session(PACK_KEY)
    if wanted and wanted not in names:
        return names[0] if _refuse_hidden_run(wanted) else wanted
    return wanted if wanted in names else names[0]


def _refuse_hidden_run(ref: str) -> bool:
    """Say why a ``?pack=`` this session may not open is not shown (a class server's student);
    True when it was refused."""
    from core.results.runs import check_open
    from pages._class import current_principal

    try:
        check_open(ref, current_principal())
    except ValueError as e:
        st.error(f"Not opened: {e}.")
        return True
    return False


def run_picker() -> str | None:
    """The one run picker (sidebar), shared by every page: app.py draws it before the page runs.
    The choice is kept in session state and in ``?pack=``."""
    runs = run_choices()
    choices = distinct({r.id: run_label(r) for r in runs})  # two runs never share a label
    if not choices:
        return None
    current = chosen_pack_name(list(choices))
    if current not in choices:  # a ?pack= link to a run that is not here: say so, keep it chosen
        choices[current] = f"“{current}” · not found"
    names = list(choices)

    def picked() -> None:
        st.session_state[PACK_KEY] = st.session_state["pack_select"]

    if st.session_state.get("pack_select") != current:
        st.session_state["pack_select"] = current
    name = st.sidebar.selectbox(
        "Run",
        names,
        key="pack_select",
        on_change=picked,
        format_func=choices.__getitem__,
        help="The demo pack ships with the app; every run with results appears here: name, "
        "date, model, C_P levels, state. Every page shows the run chosen here.",
    )
    broken = [r for r in runs if r.broken]
    if broken:  # the picker's one line cuts a reason short: each in full here
        with st.sidebar.expander(f"⚠ {len(broken)} run{'s' * (len(broken) > 1)} cannot be opened"):
            for r in broken:  # plain text: a reason quotes the untrusted file
                st.text(f"{r.name} ({r.id}): {r.reason}")
    st.session_state[PACK_KEY] = name
    _write_url(PACK_KEY, name)
    return name


def open_pack(name: str) -> Pack | None:
    """Load a pack by picker id (cached), or None with the reason shown: the one place where
    pages open packs, so a missing, broken or crafted pack is an error message, never a
    traceback and never a silent switch to another run."""
    runs = {r.id: r for r in run_choices()}
    if name not in runs:
        st.error(
            f"No run “{name}”: the link or this session names a run that is not in the runs "
            "folder (removed, renamed or mistyped). Pick one in the sidebar (Run)."
        )
        return None
    run = runs[name]
    if run.broken:
        st.error(
            f"Run “{name}” cannot be opened: {run.state_text}. Its folder {run.path} is not a "
            "valid results pack; replace or remove it, or pick another run in the sidebar."
        )
        return None
    try:
        return _load(str(run.path), _stamp(run.path))
    except (OSError, ValueError) as e:  # BrokenPack is a ValueError
        reason = e.reason if isinstance(e, BrokenPack) else str(e)
        st.error(f"Run “{name}” cannot be opened: {reason}")
        return None


def current_pack(sidebar: bool = True) -> Pack | None:
    """The run chosen in the picker (remembered in session state and ``?pack=``), or None
    with an explanation of how to get one. Pages run alone (tests) resolve it without a picker."""
    packs = pack_choices()
    if not packs:
        st.warning(
            "No results to show yet: the demo pack (assets/demo) is missing and no sweep has "
            "finished. Go to **Home** and press **Play the demo** (it can write a synthetic demo), "
            "or run `implosion sweep --preset cpu-quick --out runs/my-sweep`."
        )
        return None
    name = chosen_pack_name(list(packs))
    st.session_state[PACK_KEY] = name
    _write_url(PACK_KEY, name)
    pack = open_pack(name)
    if pack is not None and pack.config.get("preset") == "synthetic":
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


# ---------------------------------------------------------------- shared pack views
@st.cache_data(show_spinner=False, max_entries=8)
def graph_layout(key: tuple[str, float], method: str = "pca") -> dict:
    """Graph positions of the pack with cache key ``key`` (:func:`pack_key`): from memory, else
    from the disk cache (:mod:`core.results.figcache`), else computed once and saved."""
    from core.results.figcache import cached_positions

    return cached_positions(_load(*key), method)


def layout_with_placeholder(pack: Pack, method: str = "pca") -> dict:
    """:func:`graph_layout`, saying in place what is being computed when it is not cached yet
    (the first view of a new run), so the page is never blank while it works."""
    from core.results.figcache import is_cached

    slot = st.empty()
    if not is_cached(pack, method):
        what = (
            "Fitting UMAP on all levels: the first UMAP of a server session compiles its numba "
            "code (about 3–4 minutes on 2 CPU cores); later ones take seconds."
            if method == "umap"
            else f"Laying out {len(pack.concepts)} concepts × {len(pack.levels)} C_P levels "
            "(PCA, once per run; every later view reads it from disk)…"
        )
        slot.info(what, icon="⏳")
        if method == "pca":
            wait_for_warming(pack.root)
    try:
        return graph_layout(pack_key(pack), method)
    finally:
        slot.empty()


@st.cache_resource(show_spinner=False, max_entries=4)
def _generations(key: tuple[str, float]) -> dict[int, Any]:
    """Shared by every session, not copied per call (a C_P step reads them): read-only arrays."""
    try:
        gens = _load(*key).generations()
    except FileNotFoundError:
        return {}
    for images in gens.values():
        images.setflags(write=False)
    return gens


def generations(key: tuple[str, float]) -> dict[int, Any]:
    """Level → generated images (K, m, S, S, 3) uint8 of a pack; {} when it has none. A corrupt
    ``generations.npz`` stops the page with the reason."""
    try:
        return dict(_generations(key))
    except BrokenPack as e:
        st.error(f"This run's generated images cannot be read: {e.reason}")
        st.stop()


def saved_levels(pack: Pack) -> list[int]:
    """The pack's C_P levels that have both records and embeddings (a run still filling in has
    fewer than it configured)."""
    done = {int(r["c_p"]) for r in pack.records}
    try:
        emb = pack.embeddings()
    except FileNotFoundError:
        return []
    from core.results.schema import level_array_key

    return [c for c in pack.levels if c in done and level_array_key("generated", c) in emb]


def seeds_note(pack: Pack) -> str:
    """“Mean over 5 seeds; bands are 95 % confidence intervals” in correct English."""
    n = len(pack.config.get("seeds", []) or [])
    if n <= 1:
        return "One seed, so no confidence bands: run more seeds to see the spread."
    return f"Mean over {n} seeds; shaded bands are 95 % confidence intervals."


_WARMING: dict[str, Any] = {}  # resolved pack folder → its warming thread


def warm_in_background(folder: Path) -> None:
    """Compute the input-independent figures of a pack (:func:`core.results.figcache.warm`) in a
    daemon thread, once per server process, so the first picture after “Play the demo” is read
    from disk. The thread makes no ``st.*`` call; a failure only means the page computes it."""
    import threading

    key = str(Path(folder).resolve())
    if key in _WARMING or not (Path(folder) / RESULTS).is_file():
        return

    def work() -> None:
        # the figure modules (plotly) take seconds to import on a loaded machine: import them
        # here too, so the first explorer page of a fresh server does not pay for it
        import core.figures.graph  # noqa: F401
        import core.figures.trajectory  # noqa: F401
        from core.results.figcache import warm

        try:
            warm(Path(folder))
        except Exception:  # noqa: BLE001 — best effort: the page computes it on first view
            pass

    thread = threading.Thread(target=work, name=f"warm-{Path(folder).name}", daemon=True)
    _WARMING[key] = thread
    thread.start()


def wait_for_warming(folder: Path, timeout: float = 120.0) -> None:
    """If :func:`warm_in_background` is laying this pack out right now, wait for it rather than
    compute the same layout a second time beside it (on 2 busy cores that doubles the wait)."""
    thread = _WARMING.get(str(Path(folder).resolve()))
    if thread is not None and thread.is_alive():
        thread.join(timeout)


def run_banner(pack: Pack) -> None:
    """One line above a page's figures: which run is open and its settings (steps, poisons,
    levels, seeds, targets), and a warning when it is a smoke test (core.lesson.banner)."""
    from core.lesson.banner import run_settings

    info = next((r for r in run_choices() if r.path.resolve() == pack.root.resolve()), None)
    name = f"{info.name} ({info.id}, {info.state})" if info is not None else pack.root.name
    settings = run_settings(pack.config, pack.concepts)
    st.caption(f"**Run:** {name} — {settings.line}")
    if settings.smoke:
        st.warning(settings.smoke)
