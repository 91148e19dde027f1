"""“Show the class my view” under AppTest: the teacher's lesson step and C_P reach a following
student on the Lesson, Story and Generations pages; a student on another page is sent to the
teacher's; a student who stopped following keeps their own view."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.app.conftest import ROOT

TIMEOUT = 60

# The app's order (app.py): the class box (where following happens), then the page.
SCRIPT = """
import runpy
from pages._class import class_gate

class_gate({page!r})
runpy.run_path({path!r}, run_name="__main__")
"""


@pytest.fixture
def classroom(assets, monkeypatch, tmp_path):
    """A class server's environment; returns a maker of joined sessions on a page."""
    from core.classroom import Member

    monkeypatch.setenv("IMPLOSION_CLASS_CODE", "owl-42")
    monkeypatch.setenv("IMPLOSION_TEACHER_CODE", "hawk-99")

    def session(page: str, role: str, name: str, **query: str) -> AppTest:
        script = tmp_path / f"{page}_{name}.py"
        script.write_text(SCRIPT.format(page=page, path=str(ROOT / "pages" / f"{page}.py")))
        at = AppTest.from_file(str(script), default_timeout=TIMEOUT)
        at.session_state["_class_member"] = Member(name=name, role=role)  # type: ignore[arg-type]
        for k, v in query.items():
            at.query_params[k] = v
        return at.run()

    return session


def press(at: AppTest, label: str) -> None:
    """The teacher presses a button of the class box (“Show the class my view”, “Stop …”)."""
    next(b for b in at.sidebar.button if b.label == label).click().run()
    assert not at.exception, at.exception


def show_view(at: AppTest) -> None:
    press(at, "Show the class my view")


def test_lesson_step_story_and_generations_cp_reach_followers(classroom):
    from core.classroom.state import read_state
    from core.lesson import lesson_steps
    from core.results.pack import demo_dir, load_pack

    steps = lesson_steps(load_pack(demo_dir()))
    ada = classroom("lesson", "student", "Ada")
    assert not ada.exception, ada.exception
    assert ada.query_params["step"] == "1"

    # Lesson: the teacher on step 4 → the student's lesson shows step 4
    teacher = classroom("lesson", "teacher", "Ms T", step="4")
    show_view(teacher)
    state = read_state()
    assert (state.page, state.lesson_step, state.c_p) == ("lesson", 4, steps[3].c_p)
    ada.run()
    assert not ada.exception, ada.exception
    assert ada.query_params["step"] == "4"
    assert any(steps[3].question in i.value for i in ada.info)
    press(teacher, "Stop driving the class")  # a student who opens a page now keeps their own
    assert read_state().c_p is None

    # Story: the teacher's C_P 2 → the student's Story slider
    ben = classroom("story", "student", "Ben", cp="8")
    teacher = classroom("story", "teacher", "Ms T", cp="2")
    show_view(teacher)
    assert (read_state().page, read_state().c_p) == ("story", 2)
    ben.run()
    assert not ben.exception, ben.exception
    assert ben.select_slider(key="story_cp").value == 2
    assert ben.query_params["cp"] == "2"
    press(teacher, "Stop driving the class")

    # Generations: the teacher's compared level 16 → the student's
    cem = classroom("generations", "student", "Cem", cp="4")
    assert cem.select_slider(key="gen_ref").value == 4
    teacher = classroom("generations", "teacher", "Ms T", cp="16")
    show_view(teacher)
    assert (read_state().page, read_state().c_p) == ("generations", 16)
    cem.run()
    assert not cem.exception, cem.exception
    assert cem.select_slider(key="gen_ref").value == 16
    press(teacher, "Stop driving the class")

    # a student who switched “Follow the teacher” off keeps their own level
    dan = classroom("story", "student", "Dan", cp="8")
    dan.toggle(key="class_follow").set_value(False).run()
    dan.select_slider(key="story_cp").set_value(4).run()
    teacher = classroom("story", "teacher", "Ms T", cp="16")
    show_view(teacher)
    dan.run()
    assert dan.select_slider(key="story_cp").value == 4


def test_a_follower_elsewhere_is_sent_to_the_teachers_page():
    from core.classroom.state import ClassState
    from pages._class import follow_link

    lesson = ClassState(page="lesson", lesson_step=3, c_p=8, pack="demo", revision=2)
    assert follow_link(lesson, "story") == ("pages/lesson.py", {"pack": "demo", "step": "3"})
    assert follow_link(lesson, "lesson") == (None, {"pack": "demo", "step": "3"})
    gens = ClassState(page="generations", c_p=16, pack="run-1", revision=3)
    assert follow_link(gens, "") == ("pages/generations.py", {"pack": "run-1", "cp": "16"})
    # a view sent from another page (Home, Jobs): the run, and the C_P where the student is
    home = ClassState(page=None, c_p=4, pack="demo", revision=4)
    assert follow_link(home, "story") == (None, {"pack": "demo", "cp": "4"})
    assert follow_link(home, "jobs") == (None, {"pack": "demo"})
