"""A class server under AppTest: every page shows only the join form until a right code; wrong
codes are refused and slowed down (an injected clock); students see only what is theirs."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.app.conftest import ROOT, _real_route

TIMEOUT = 60
PAGES = [
    "pages/home.py",
    "pages/story.py",
    "pages/graph.py",
    "pages/trajectory.py",
    "pages/generations.py",
    "pages/attention.py",
    "pages/compare.py",
    "pages/poison.py",
    "pages/defend.py",
    "pages/jobs.py",
]


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def class_server(assets, monkeypatch):
    """A class server's environment and a fresh guessing limiter on a fake clock."""
    import pages._class
    from core.classroom import AttemptLimiter

    monkeypatch.setenv("IMPLOSION_CLASS_CODE", "owl-42")
    monkeypatch.setenv("IMPLOSION_TEACHER_CODE", "hawk-99")
    clock = Clock()
    monkeypatch.setattr(pages._class, "LIMITER", AttemptLimiter(clock=clock))
    # The real top-of-page hook (tests/app/conftest.py stubs it out): it holds the page's gate.
    monkeypatch.setattr(pages._ui, "route_through_app", _real_route)
    return clock


def app(page: str | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    if page:
        at.switch_page(page)
    return at


def only_the_join_form(at: AppTest) -> None:
    assert not at.exception
    assert [t.label for t in at.text_input] == ["Class code", "Your name"]
    assert at.text_input[0].proto.type == at.text_input[0].proto.PASSWORD  # not echoed
    assert len(at.button) == 1  # the form's Join button: nothing else to click
    for kind in ("selectbox", "slider", "toggle", "select_slider", "radio", "multiselect"):
        assert len(getattr(at, kind)) == 0, kind
    assert [t.value for t in at.title] == ["Implosion Lab"]
    assert not at.sidebar.children or not any(at.sidebar.selectbox)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_shows_only_the_join_form(class_server, page):
    only_the_join_form(app(page).run())


# The join flow itself runs under a two-line entry script: AppTest loses a form's submit click in
# a script that calls st.navigation (a real browser does not: tests/e2e/test_browser_classroom.py).
GATE_SCRIPT = """
import streamlit as st
from pages._class import class_gate
from pages._ui import run_picker

class_gate()
run_picker()
st.title("Home")
"""


@pytest.fixture
def gate(class_server, tmp_path):
    script = tmp_path / "gate_app.py"
    script.write_text(GATE_SCRIPT)

    def make() -> AppTest:
        return AppTest.from_file(str(script), default_timeout=TIMEOUT)

    return make


def join(at: AppTest, code: str, name: str) -> AppTest:
    at.text_input[0].input(code)
    at.text_input[1].input(name)
    return at.button[0].click().run()


def test_wrong_code_refused_then_slowed_right_code_opens_home(class_server, gate):
    clock = class_server
    at = gate().run()
    join(at, "owl-41", "Ada")
    assert [e.value for e in at.error] == ["Wrong class code: check it with your teacher."]
    assert [t.label for t in at.text_input] == ["Class code", "Your name"]
    join(at, "owl-40", "Ada")
    join(at, "owl-39", "Ada")  # third wrong try: the next one must wait 1 s
    join(at, "owl-42", "Ada")
    assert at.error[0].value == "Too many wrong codes: try again in 1 s."
    assert not at.title or at.title[0].value != "Home"
    clock.t += 1.0
    join(at, "owl-42", "Ada")
    assert not at.exception and not at.error
    assert "Class code" not in [t.label for t in at.text_input]
    assert at.title[-1].value == "Home"
    assert any("Ada" in m.value for m in at.sidebar.markdown)
    assert any(s.label == "Run" for s in at.sidebar.selectbox)  # the run picker


def test_backoff_grows_with_each_wrong_try(class_server, gate):
    clock = class_server
    at = gate().run()
    wrong = "Wrong class code: check it with your teacher."

    def told(code: str) -> str:
        join(at, code, "Ben")
        return at.error[0].value if at.error else "joined"

    assert [told("bad-1"), told("bad-2"), told("bad-3")] == [
        wrong,
        wrong,
        "Too many wrong codes: try again in 1 s.",  # two free typos, then a wait
    ]
    clock.t += 1.0
    assert [told("bad-4"), told("bad-5")] == [wrong, "Too many wrong codes: try again in 2 s."]
    clock.t += 2.0
    assert [told("bad-6"), told("bad-7")] == [wrong, "Too many wrong codes: try again in 4 s."]
    clock.t += 3.0
    assert told("owl-42") == "Too many wrong codes: try again in 1 s."  # even the right code
    clock.t += 1.0
    assert told("owl-42") == "joined"


def test_bad_name_is_refused_without_costing_a_try(class_server, gate):
    at = gate().run()
    join(at, "owl-42", "   ")
    assert "Your name" in at.error[0].value
    only_the_join_form(at)


def test_teacher_code_gives_the_teacher_box(class_server, gate):
    at = gate().run()
    join(at, "hawk-99", "Ms T")
    assert not at.exception
    assert any("teacher" in m.value for m in at.sidebar.markdown)
    assert any(b.label == "Show the class my view" for b in at.sidebar.button)


def test_a_crafted_pack_of_another_student_is_refused(class_server, gate):
    from core import jobs
    from core.jobs import store
    from core.jobs.access import Principal

    # A run of Ben's (its folder and owner record; no worker needed to be refused).
    ben = Principal("Ben", "student")
    run_dir = store.jobs_root(create=True) / "20260101-000000-finetune-abcdef"
    run_dir.mkdir()
    from core.io import atomic_write_json

    atomic_write_json(run_dir / "config.json", {"kind": "finetune", "owner": ben.owner_record()})
    atomic_write_json(run_dir / "status.json", {"state": "completed"})
    at = gate()
    at.query_params["pack"] = run_dir.name
    at.run()
    join(at, "owl-42", "Ada")
    assert any("is not yours" in e.value for e in at.error), [e.value for e in at.error]
    assert [r["run_id"] for r in jobs.list_runs(actor=Principal("Ada", "student"))] == []


def test_single_user_app_has_no_gate(assets, monkeypatch):
    monkeypatch.delenv("IMPLOSION_CLASS_CODE", raising=False)
    at = app().run()
    assert not at.exception
    assert "Class code" not in [t.label for t in at.text_input]
    assert at.title[0].value == "Implosion Lab"
