"""The Jobs page shows a run with a corrupt status.json as "broken", with the way out, and its
Resume button restarts it (core API: jobs.resume_job / jobs.remove_job)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def broken_run(monkeypatch, tmp_path):
    if str(ROOT) not in sys.path:
        monkeypatch.syspath_prepend(str(ROOT))  # pages import `pages._ui`
    import pages._ui

    monkeypatch.setattr(pages._ui, "route_through_app", lambda: None)
    from core.jobs import start_job, store, wait_job

    run_id = start_job("dummy", {"steps": 4, "checkpoint_every": 2}, device="cpu")
    assert wait_job(run_id, timeout=120)["state"] == "completed"
    run_dir = store.jobs_root() / run_id
    deadline = time.monotonic() + 120  # the finished worker may still be exiting: an event
    while store.worker_pids(run_dir) and time.monotonic() < deadline:
        time.sleep(0.05)
    (run_dir / "status.json").write_text('{"state": "runn')
    return run_id


def test_jobs_page_shows_broken_run_and_resumes_it(broken_run):
    from core import jobs

    at = AppTest.from_file(str(ROOT / "pages" / "jobs.py"), default_timeout=60)
    at.query_params["run"] = broken_run
    at.run()
    assert not at.exception, at.exception
    assert {m.label: m.value for m in at.metric}["State"] == "broken"
    assert any("jobs rm" in e.value and "jobs resume" in e.value for e in at.error)
    at.button(key="j_resume").click().run()
    assert not at.exception, at.exception
    assert jobs.wait_job(broken_run, timeout=120)["state"] == "completed"
