"""The classroom benchmark's protocol client against a real class server (no browser): the join
form, ▶ Play the demo (the Story plays from its first level on a 3 s timer), a C_P step that reruns
only the Story's level view (a fragment), a page switch. What the benchmark measures is what a
browser makes the server do; this checks the client still speaks the protocol."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from pathlib import Path
from unittest import mock
from urllib.parse import parse_qs

import pytest

from bench.stream_client import StreamClient
from tests.e2e.conftest import _streamlit
from tests.support.browser import ROOT

pytestmark = pytest.mark.e2e
CODE, TEACHER = "owl-4242", "hawk-9917"


@pytest.fixture
def class_url(tmp_path):
    if not (ROOT / "assets" / "demo" / "results.json").is_file():
        pytest.skip("assets/demo is missing: restore it with `git checkout assets/`")
    (tmp_path / "runs").mkdir()
    with (
        mock.patch.dict(
            os.environ, {"IMPLOSION_CLASS_CODE": CODE, "IMPLOSION_TEACHER_CODE": TEACHER}
        ),
        _streamlit(ROOT / "assets", tmp_path / "runs", tmp_path / "server.log") as s,
    ):
        yield s["url"]


def _run(walk, url: str) -> None:
    """Run ``walk(url)`` on its own event loop in a thread: Playwright's sync API keeps a loop
    running in this thread when browser tests ran first in the same process."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(lambda: asyncio.run(asyncio.wait_for(walk(url), 240))).result()


def _cp(c: StreamClient) -> str | None:
    return (parse_qs(c.query).get("cp") or [None])[0]


async def _walk(url: str) -> None:
    c = StreamClient(url, auto_rerun=False)
    try:
        await c.open()
        assert {"Class code", "Your name"} <= set(c.widgets)
        await c.fill({"Class code": "wrong-code", "Your name": "Ada"}, submit="Join")
        assert any("Wrong class code" in t for t in c.texts), c.texts
        await c.fill({"Class code": CODE, "Your name": "Ada"}, submit="Join")
        assert "The story in five steps" in c.headings, c.headings

        await c.click("Play the demo")
        assert "Story" in c.headings and not c.exceptions, (c.headings, c.exceptions)
        assert _cp(c) == "0" and 3.0 in c.timed.values()  # playing from the first level
        await c.tick(3.0)
        assert _cp(c) == "1"  # one Play step
        await c.set_value("▶ Play", False)
        assert 3.0 not in c.timed.values()  # stopped: no Play timer left

        slider = c.widget("C_P: poisoned concepts")
        assert slider.fragment_id  # the level view is a fragment: a step reruns only it
        await c.set_value("C_P: poisoned concepts", "8")
        assert _cp(c) == "8" and not c.exceptions

        await c.goto("generations")
        assert "Generations" in c.headings and not c.exceptions
    finally:
        await c.close()


def test_protocol_client_walks_the_class_server(class_url):
    _run(_walk, class_url)


async def _follow(url: str) -> None:
    teacher = StreamClient(url, auto_rerun=False)
    ada = StreamClient(url, auto_rerun=False)
    try:
        await teacher.open()
        await teacher.fill({"Class code": TEACHER, "Your name": "Ms T"}, submit="Join")
        await ada.open()
        await ada.fill({"Class code": CODE, "Your name": "Ada"}, submit="Join")
        await ada.click("Play the demo")
        await ada.set_value("▶ Play", False)
        assert "Story" in ada.headings

        # the teacher shows Lesson step 3: Ada's next follow poll takes her there
        await teacher.goto("lesson", query="step=3")
        await teacher.click("Show the class my view")
        await ada.tick(5.0)
        assert "Lesson" in ada.headings and not ada.exceptions, (ada.headings, ada.exceptions)
        assert parse_qs(ada.query)["step"] == ["3"], ada.query

        # then Generations at C_P 16
        await teacher.goto("generations", query="cp=16")
        await teacher.click("Show the class my view")
        await ada.tick(5.0)
        assert "Generations" in ada.headings and not ada.exceptions, ada.headings
        assert _cp(ada) == "16" and ada.widget("C_P: poisoned concepts")
    finally:
        await teacher.close()
        await ada.close()


def test_a_follower_is_taken_to_the_teachers_view(class_url):
    _run(_follow, class_url)


def test_the_walk_module_imports():
    """bench/classroom.py's actions are importable from the repo root (tests and the CLI)."""
    import bench.classroom as classroom

    assert Path(classroom.__file__).parent == ROOT / "bench"
    assert [n for n, _ in classroom.walk(StreamClient("http://127.0.0.1:1"), "x")][:3] == [
        "open the link (join form)",
        "join → Home",
        "▶ Play the demo → Story",
    ]
