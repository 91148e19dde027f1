"""A class server in real headless Chromium: two students in two browser contexts cannot see or
touch each other's runs while the teacher sees both and cancels any.

The runs are the dummy counter held at a step (no torch), launched through the core API as each
student, so the test waits on page events, not on training. Screenshots: artifacts/e2e/class_*.png.
"""

from __future__ import annotations

import os
import threading
from unittest import mock

import pytest

from tests.e2e.conftest import _streamlit
from tests.support.browser import CHROMIUM, FLAGS, artifacts_dir, wait_idle

pytestmark = pytest.mark.e2e

CODE, TEACHER_CODE = "owl-42", "hawk-99"


@pytest.fixture()
def class_server(e2e_dirs, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed (/usr/bin/chromium)")
    runs = tmp_path / "runs"
    runs.mkdir()
    env = {"IMPLOSION_CLASS_CODE": CODE, "IMPLOSION_TEACHER_CODE": TEACHER_CODE}
    with (
        mock.patch.dict(os.environ, env),
        _streamlit(e2e_dirs / "assets", runs, tmp_path / "class_server.log") as s,
    ):
        yield s


def _shot(page, name: str) -> None:
    page.wait_for_timeout(300)
    page.screenshot(path=str(artifacts_dir() / f"class_{name}.png"), full_page=True)


def _join(page, url: str, code: str, name: str) -> None:
    page.goto(url)
    page.get_by_label("Class code").wait_for(timeout=300_000)
    page.get_by_label("Class code").fill(code)
    page.get_by_label("Your name").fill(name)
    page.get_by_role("button", name="Join").click()
    page.locator("h1").filter(has_text="Jobs").first.wait_for(timeout=180_000)
    wait_idle(page, 120_000)


def _in_thread(fn) -> None:
    """Run ``fn`` in its own thread (its own Playwright: the session's browser fixture may be
    running the sync API in this one) and re-raise what it raised."""
    box: list[BaseException] = []

    def run() -> None:
        try:
            fn()
        except BaseException as e:  # noqa: BLE001 — re-raised below
            box.append(e)

    t = threading.Thread(target=run)
    t.start()
    t.join(1200)
    if box:
        raise box[0]
    assert not t.is_alive(), "browser thread hung"


def test_two_students_and_a_teacher(class_server, tmp_path, monkeypatch):
    from playwright.sync_api import sync_playwright

    from core import jobs
    from core.jobs.access import LOCAL, Principal

    monkeypatch.setenv("IMPLOSION_RUNS", str(class_server["runs"]))
    ada, ben = Principal("Ada", "student"), Principal("Ben", "student")
    hold = str(tmp_path / "never")  # held at step 1 until cancelled
    cfg = {"steps": 5, "hold": hold, "step_seconds": 0.0}
    a = jobs.start_job("dummy", {**cfg, "name": "Ada's run"}, device="cpu", actor=ada)
    b = jobs.start_job("dummy", {**cfg, "name": "Ben's run"}, device="cpu", actor=ben)
    url = class_server["url"]

    def browse() -> None:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
            try:
                contexts = {
                    who: browser.new_context(viewport={"width": 1280, "height": 720})
                    for who in ("ada", "ben", "teacher")
                }
                pages = {who: ctx.new_page() for who, ctx in contexts.items()}
                p = pages["ada"]
                p.goto(f"{url}/jobs")
                p.get_by_label("Class code").wait_for(timeout=300_000)
                assert p.get_by_label("Your name").count() == 1
                assert p.locator('[data-testid="stSidebarNav"]').count() == 0
                _shot(p, "0_join_form")
                p.get_by_label("Class code").fill("owl-00")
                p.get_by_label("Your name").fill("Ada")
                p.get_by_role("button", name="Join").click()
                p.get_by_text("Wrong class code").wait_for(timeout=60_000)
                _shot(p, "1_wrong_code")

                # Ada opens a link to Ben's run: refused by name, and Ben's run is nowhere.
                _join(p, f"{url}/jobs?run={b}", CODE, "Ada")
                p.get_by_text(f"run {b} is not yours").first.wait_for(timeout=60_000)
                p.locator("td").filter(has_text=a).first.wait_for(timeout=60_000)
                body = p.locator("section.main, [data-testid='stMain']").first.inner_text()
                assert a in body and b not in body.replace(f"run {b} is not yours", "")
                _shot(p, "2_ada")

                q = pages["ben"]
                _join(q, f"{url}/jobs", CODE, "Ben")
                q.get_by_text("Queued: place 1 of 1").first.wait_for(timeout=60_000)
                q.locator("td").filter(has_text=b).first.wait_for(timeout=60_000)
                text = q.locator("[data-testid='stMain']").first.inner_text()
                assert b in text and a not in text
                _shot(q, "3_ben_queued")

                t = pages["teacher"]
                _join(t, f"{url}/jobs?run={a}", TEACHER_CODE, "Ms T")
                for rid in (a, b):
                    t.locator("td").filter(has_text=rid).first.wait_for(timeout=60_000)
                text = t.locator("[data-testid='stMain']").first.inner_text()
                assert a in text and b in text and "Ada" in text and "Ben" in text
                t.get_by_role("button", name="Cancel").click()  # Ada's run, selected by ?run=
                t.locator("[data-testid='stMetricValue']").filter(
                    has_text="cancelled"
                ).first.wait_for(timeout=120_000)
                _shot(t, "4_teacher_cancelled_ada")
            finally:
                browser.close()

    _in_thread(browse)
    # This process has the class code set too: naming no actor is refused, the local user is not.
    assert jobs.wait_job(a, timeout=120, actor=LOCAL)["state"] == "cancelled"
    assert jobs.read_run(b, actor=LOCAL)["status"]["state"] in ("queued", "running")
    jobs.cancel_job(b, wait=True, grace_s=1.0, actor=LOCAL)
