"""Class server UI: the join form every page shows first, who is signed in, the teacher's class
controls and the students' "follow the teacher".

Without a class code (a single-user app on 127.0.0.1) nothing here draws anything and
:func:`current_principal` is the local user with every right.
"""

from __future__ import annotations

import math
from typing import Literal

import streamlit as st

from core.classroom import (
    AttemptLimiter,
    ClassConfig,
    Member,
    class_config,
    clean_name,
    is_loopback,
)
from core.classroom.state import FOLLOWED_PAGES, ClassState, pin, read_state, write_state
from core.jobs.access import LOCAL, NOBODY, Principal, act_as

MEMBER_KEY = "_class_member"
FOLLOW_KEY = "class_follow"
FOLLOW_POLL_S = 5.0  # a following student's page looks for the teacher's changes this often
# One limiter per server process, shared by every session (module state, not session state:
# a reload must not reset a guesser's backoff). Tests replace it with one on a fake clock.
LIMITER = AttemptLimiter()


def config() -> ClassConfig | None:
    """This server's class configuration (None: a single-user app)."""
    return class_config()


def member() -> Member | None:
    """Who joined in this browser session (None before the join form)."""
    found = st.session_state.get(MEMBER_KEY)
    return found if isinstance(found, Member) else None


def current_principal() -> Principal:
    """The principal every job and run call of this session passes as ``actor``."""
    cfg = config()
    if cfg is None:
        return LOCAL
    who = member()
    if who is None:  # never reached by a page: the gate stops first; refuse everything anyway
        return NOBODY
    return who.principal(cfg)


def nav_position() -> Literal["sidebar", "hidden"]:
    """Sidebar navigation once joined; hidden while a class server shows its join form."""
    return "sidebar" if config() is None or member() is not None else "hidden"


def _client_keys() -> list[str]:
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    keys = [f"session:{ctx.session_id if ctx else 'none'}"]
    try:
        ip = st.context.ip_address
    except Exception:  # noqa: BLE001 — not available in every runtime (tests)
        ip = None
    if ip and not is_loopback(ip):  # behind a reverse proxy on this host every client is 127.0.0.1
        keys.append(f"ip:{ip}")
    return keys


def join_form(cfg: ClassConfig) -> None:
    """The only thing a class server shows before a right code: class code and name."""
    st.title("Implosion Lab")
    st.markdown("**Join the class.** Your teacher gives you the class code.")
    with st.form("class_join", clear_on_submit=False):
        code = st.text_input("Class code", type="password", max_chars=200)
        name = st.text_input("Your name", max_chars=80, placeholder="e.g. Ada L.")
        submitted = st.form_submit_button("Join", type="primary")
    if not submitted:
        return
    try:
        clean = clean_name(name)
    except ValueError as e:
        st.error(str(e))
        return
    keys = _client_keys()
    wait = LIMITER.wait_s(keys)
    if wait > 0:
        st.error(f"Too many wrong codes: try again in {math.ceil(wait)} s.")
        return
    role = cfg.role_for(code)
    if role is None:
        LIMITER.failed(keys)
        st.error("Wrong class code: check it with your teacher.")
        return
    LIMITER.succeeded(keys)
    st.session_state[MEMBER_KEY] = Member(name=clean, role=role)
    st.rerun()


def require_member() -> None:
    """At the top of every page (``route_through_app``): on a class server, the join form and a
    stop unless this session joined, even for a page that runs without app.py."""
    cfg = config()
    if cfg is None:
        return
    who = member()
    if who is None:
        act_as(NOBODY)
        join_form(cfg)
        st.stop()
    assert who is not None
    act_as(who.principal(cfg))


def class_gate(page: str | None = None) -> Principal:
    """Before any page runs: on a class server, the join form and a stop until a right code; once
    joined, the sidebar's class box. ``page``: the URL path of the page about to run (what the
    teacher's "Show the class my view" sends; where a following student is taken). Returns this
    session's principal."""
    cfg = config()
    if cfg is None:
        return LOCAL
    who = member()
    if who is None:
        act_as(NOBODY)
        join_form(cfg)
        st.stop()
    assert who is not None
    principal = who.principal(cfg)
    act_as(principal)  # the default actor of every core job and run call in this session's run
    with st.sidebar.container(border=True):
        st.markdown(f"**{who.name}** · {who.role}")
        if who.role == "teacher":
            _teacher_box(principal, page)
        else:
            _follow_box(page)
        if st.button("Leave", key="class_leave"):
            del st.session_state[MEMBER_KEY]
            st.rerun()
    return principal


# Where each followed page keeps its C_P (the lesson: the C_P of the step shown).
PAGE_CP_KEY = {"story": "story_cp", "generations": "gen_ref", "lesson": "_lesson_cp"}


def _teacher_box(principal: Principal, page: str | None = None) -> None:
    state = read_state()
    pack = st.session_state.get("pack")
    if pack and pack != "demo":
        pinned = pack in state.pinned
        if st.toggle("Pinned for the class", value=pinned, key=f"class_pin_{pack}") != pinned:
            pin(principal, pack, on=not pinned)
            st.rerun()
    driving = state.c_p is not None
    shown = page if page in FOLLOWED_PAGES else None
    c_p = st.session_state.get(PAGE_CP_KEY.get(shown or "story", "story_cp"))
    if st.button(
        "Show the class my view",
        key="class_send",
        help="Students who follow the teacher are taken to this page (Lesson, Story or "
        "Generations) with this run, its C_P and the lesson step; on other pages they get the "
        "run and the Story's C_P.",
    ):
        if pack and pack != "demo" and pack not in state.pinned:
            pin(principal, pack)
        state = write_state(
            principal,
            c_p=c_p if isinstance(c_p, int) else 0,
            lesson_step=_int_or_none(st.session_state.get("lesson_step")),
            pack=pack or "demo",
            page=shown,
        )
        driving = True  # “Stop driving the class” at once, not after the next click
        st.toast("The class follows your view.")
    if driving and st.button("Stop driving the class", key="class_unsend"):
        write_state(principal, c_p=None, lesson_step=None, pack=None, page=None)
        st.rerun()
    if driving:
        where = f"{state.page} · " if state.page else ""
        step = f" · step {state.lesson_step}" if state.page == "lesson" else ""
        st.caption(f"Class shown: {where}C_P {state.c_p}{step} · {state.pack or 'demo'}")


def _int_or_none(v: object) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _follow_box(page: str | None = None) -> None:
    following = st.toggle(
        "Follow the teacher",
        value=st.session_state.get(FOLLOW_KEY, True),
        key=FOLLOW_KEY,
        help="When the teacher shows the class a view, you see it too: the same page (Lesson, "
        "Story or Generations), run, C_P and lesson step. Switch off to explore alone.",
    )
    if following:
        apply_follow(page)
        st.fragment(run_every=FOLLOW_POLL_S)(_watch_teacher)()


def follow_link(state: ClassState, page: str | None) -> tuple[str | None, dict[str, str]]:
    """Where a following student on ``page`` goes for the teacher's view ``state``: the page
    file to switch to (None: stay on this page) and the URL parameters of that view (the pages
    read ``?pack``, ``?cp`` and ``?step`` as a shared link, so one mechanism serves all three)."""
    target = state.page if state.page in FOLLOWED_PAGES else page
    params: dict[str, str] = {}
    if state.pack:
        params["pack"] = state.pack
    if target == "lesson" and state.lesson_step is not None:
        params["step"] = str(state.lesson_step)
    elif target in ("story", "generations") and state.c_p is not None:
        params["cp"] = str(state.c_p)
    switch = f"pages/{target}.py" if target in FOLLOWED_PAGES and target != page else None
    return switch, params


def apply_follow(page: str | None = None) -> None:
    """Take the teacher's latest view (page, run, C_P, lesson step) once per change: a student on
    another page is taken to the teacher's (Lesson, Story or Generations)."""
    state = read_state()
    if state.c_p is None or state.revision == st.session_state.get("_class_seen"):
        return
    st.session_state["_class_seen"] = state.revision
    st.session_state["story_next"] = state.c_p  # the Story page applies it before its slider
    if state.lesson_step is not None:
        st.session_state["class_lesson_step"] = state.lesson_step
    if state.pack:
        st.session_state["pack"] = state.pack
    switch, params = follow_link(state, page)
    if switch is not None:
        if st.query_params.get("present"):
            params["present"] = st.query_params["present"]
        st.switch_page(switch, query_params=params)
    st.query_params.update(params)


def _watch_teacher() -> None:
    """Fragment body: rerun the page when the teacher changed the class view."""
    state = read_state()
    if state.c_p is not None and state.revision != st.session_state.get("_class_seen"):
        st.rerun(scope="app")
