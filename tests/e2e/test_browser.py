"""End to end in headless Chromium: Home → Play the demo → every page; a job watched live and
re-attached after a reload; timings written to the artifacts dir."""

from __future__ import annotations

import importlib.util
import json
import re
import time

import pytest

from tests.e2e.conftest import artifacts_dir, wait_idle

pytestmark = pytest.mark.e2e

PAGES = [  # (sidebar label, page title)
    ("AD trajectory", "AD trajectory"),
    ("Generations", "Generations"),
    ("Cross-attention", "Cross-attention maps"),
    ("Compare & export", "Compare runs & export"),
    ("Poison setup", "Poison setup"),
    ("Jobs", "Jobs"),
    ("Alignment graph", "Alignment graph"),
    ("Home", "Implosion Lab"),
]
TIMINGS: dict[str, object] = {}


def _title(page, text: str):
    return page.locator("h1").filter(has_text=text).first


def _write_timings() -> None:
    path = artifacts_dir() / "timings.json"
    path.write_text(json.dumps(TIMINGS, indent=2) + "\n")
    print(f"\ntimings ({path}):\n{json.dumps(TIMINGS, indent=2)}")


def test_home_demo_and_every_page(server, browser_context):
    shots = artifacts_dir()
    page = browser_context.new_page()
    t0 = time.monotonic()
    page.goto(server["url"])
    play = page.get_by_role("button", name="Play the demo")
    play.wait_for(state="visible", timeout=30_000)
    wait_idle(page)
    TIMINGS["server_healthy_s"] = round(server["healthy_s"], 2)
    TIMINGS["first_interactive_s"] = round(time.monotonic() - t0, 2)
    TIMINGS["first_interactive_since_healthy_s"] = round(time.monotonic() - server["ready"], 2)
    page.screenshot(path=str(shots / "home.png"), full_page=True)

    t0 = time.monotonic()
    play.click()
    _title(page, "Alignment graph").wait_for(timeout=30_000)
    page.locator(".js-plotly-plot").first.wait_for(timeout=30_000)
    wait_idle(page)
    TIMINGS["play_demo_to_graph_s"] = round(time.monotonic() - t0, 2)
    assert "pack=demo" in page.url
    page.wait_for_timeout(500)  # let plotly finish drawing
    page.screenshot(path=str(shots / "alignment_graph.png"), full_page=True)

    switches: dict[str, float] = {}
    for label, title in PAGES:
        t0 = time.monotonic()
        page.locator('[data-testid="stSidebarNav"] a').filter(has_text=label).first.click()
        _title(page, title).wait_for(timeout=30_000)
        wait_idle(page)
        switches[label] = round(time.monotonic() - t0, 2)
        assert not page.locator('[data-testid="stException"]').count(), f"exception on {label}"
        page.wait_for_timeout(400)
        slug = label.lower().replace(" & ", "_").replace(" ", "_").replace("-", "_")
        page.screenshot(path=str(shots / f"page_{slug}.png"), full_page=True)
    TIMINGS["page_switch_s"] = switches
    TIMINGS["page_switch_max_s"] = max(switches.values())
    _write_timings()
    page.close()


def test_job_live_progress_and_reattach(server, browser_context, monkeypatch):
    monkeypatch.setenv("IMPLOSION_RUNS", str(server["runs"]))
    from core.jobs import start_job

    run_id = start_job("dummy", {"steps": 60, "step_seconds": 0.15}, device="cpu")
    page = browser_context.new_page()
    page.goto(f"{server['url']}/jobs?run={run_id}")
    _title(page, "Jobs").wait_for(timeout=30_000)
    page.get_by_text("Step", exact=True).first.wait_for(timeout=30_000)
    page.wait_for_timeout(2500)
    page.screenshot(path=str(artifacts_dir() / "jobs_running.png"), full_page=True)
    page.reload()  # re-attach: the run id comes back from ?run=
    _title(page, "Jobs").wait_for(timeout=30_000)
    assert f"run={run_id}" in page.url
    page.get_by_text(run_id).first.wait_for(timeout=30_000)
    page.locator("tr").filter(has_text=run_id).filter(has_text="completed").first.wait_for(
        timeout=90_000
    )
    page.get_by_text("60 / 60").first.wait_for(timeout=30_000)
    page.screenshot(path=str(artifacts_dir() / "jobs_completed.png"), full_page=True)
    page.close()


def test_sweep_ci_smoke_job(server, browser_context, e2e_dirs):
    """Launch a ci-smoke sweep from the Jobs page, reload mid-job, watch it finish, open it."""
    if importlib.util.find_spec("core.sweep") is None:
        pytest.skip("the `sweep` job kind (core.sweep:run_job) is not in this checkout yet")
    from core.models.config import ModelConfig
    from core.models.ldm import MiniLDM
    from core.world import WorldConfig

    # The sweep fine-tunes <assets>/base: give it a tiny random one (2 fine-tune steps in ci-smoke).
    base = e2e_dirs / "assets" / "base"
    if not (base / "model.json").is_file():
        MiniLDM.build(WorldConfig(n_concepts=8), ModelConfig.tiny()).save_pretrained(base)
    page = browser_context.new_page()
    page.goto(f"{server['url']}/jobs")
    _title(page, "Jobs").wait_for(timeout=30_000)
    page.get_by_text("Start a sweep").click()
    page.get_by_text("ci-smoke", exact=False).first.click()
    page.get_by_role("button", name="Start sweep").click()
    page.wait_for_url(re.compile(r".*run=[^&]*-sweep-.*"), timeout=120_000)
    run_id = page.url.split("run=")[1].split("&")[0]
    page.wait_for_timeout(2000)
    page.reload()  # re-attach mid-job
    page.get_by_text(run_id).first.wait_for(timeout=30_000)
    # the runs table row of this run says "completed" (the page redraws when the run ends)
    try:
        page.locator("tr").filter(has_text=run_id).filter(has_text="completed").first.wait_for(
            timeout=240_000
        )
    finally:
        page.screenshot(path=str(artifacts_dir() / "sweep_completed.png"), full_page=True)
    page.get_by_test_id("stMetricValue").filter(has_text="completed").first.wait_for()
    page.screenshot(path=str(artifacts_dir() / "sweep_completed.png"), full_page=True)
    page.goto(f"{server['url']}/trajectory?pack={run_id}")
    _title(page, "AD trajectory").wait_for(timeout=30_000)
    wait_idle(page, 60_000)
    assert not page.locator('[data-testid="stException"]').count()
    page.locator(".js-plotly-plot").first.wait_for(timeout=30_000)
    page.wait_for_timeout(500)
    page.screenshot(path=str(artifacts_dir() / "sweep_trajectory.png"), full_page=True)
    page.close()
