"""The Jobs page after a launch, in a real browser: a run waits in the queue, then starts; the
runs table, the controls and the header follow it without a reload, and time left says
"estimating…" until the run has measured its own steps.

Both runs are held at step 1 until the test creates their ``hold`` files, so every state is an
event the test controls, not a guess about how fast a loaded machine starts a worker.
"""

from __future__ import annotations

import time

import pytest

from tests.support.browser import artifacts_dir

pytestmark = pytest.mark.e2e
PATIENCE_S = 120


def _until(check, what: str) -> None:
    deadline = time.monotonic() + PATIENCE_S
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_runs_table_and_controls_follow_the_live_header(
    server, browser_context, monkeypatch, tmp_path
):
    monkeypatch.setenv("IMPLOSION_RUNS", str(server["runs"]))
    from core import jobs

    first_gate, second_gate = tmp_path / "first", tmp_path / "second"
    first = jobs.start_job("dummy", {"steps": 3, "hold": str(first_gate)}, device="cpu")
    _until(lambda: (jobs.read_run(first)["progress"] or {}).get("step") == 1, "first at step 1")
    second = jobs.start_job(
        "dummy", {"steps": 3, "hold": str(second_gate)}, device="cpu", queue=True
    )
    page = browser_context.new_page()
    page.set_viewport_size({"width": 1280, "height": 720})
    try:
        page.goto(f"{server['url']}/jobs?run={second}")
        row = page.locator("tr").filter(has_text=second)
        row.filter(has_text="queued").first.wait_for(timeout=60_000)
        page.get_by_role("button", name="Cancel").first.wait_for(timeout=30_000)
        first_gate.touch()  # the first run finishes; the queued one starts and holds at step 1
        value = page.get_by_test_id("stMetricValue")
        value.filter(has_text="running").first.wait_for(timeout=PATIENCE_S * 1000)
        # The table and the controls catch up with the header without a reload.
        row.filter(has_text="running").filter(has_text="1/3").first.wait_for(timeout=15_000)
        page.get_by_role("button", name="Pause").first.wait_for(timeout=15_000)
        label = page.get_by_test_id("stMetricLabel").filter(has_text="Time left (estimating…)")
        label.first.wait_for(timeout=15_000)
    finally:
        page.screenshot(path=str(artifacts_dir() / "jobs_after_launch.png"), full_page=True)
        first_gate.touch()
        second_gate.touch()
        page.close()
    assert jobs.wait_job(second, timeout=PATIENCE_S)["state"] == "completed"
