"""The loop the app exists for, in headless Chromium: pick two concepts on Poison setup, launch
(a tiny base, 2 fine-tune steps per level), close the tab, come back, wait for "completed", then
open the run's alignment graph, AD trajectory and generations. Screenshots go to artifacts/e2e/.

Waits are on page events (elements appearing) with generous timeouts: the machine may be loaded.
"""

from __future__ import annotations

import re

import pytest

from tests.support.browser import artifacts_dir, wait_idle

pytestmark = pytest.mark.e2e


def _title(page, text: str):
    return page.locator("h1").filter(has_text=text).first


def _shot(page, name: str) -> None:
    page.wait_for_timeout(300)
    page.screenshot(path=str(artifacts_dir() / f"poison_flow_{name}.png"), full_page=True)


def test_poison_setup_to_pictures(server, browser_context, e2e_dirs):
    from core.models.config import ModelConfig
    from core.models.ldm import MiniLDM
    from core.world import World, WorldConfig

    base = e2e_dirs / "assets" / "base"  # the server's shipped base: a tiny random model
    if not (base / "model.json").is_file():
        MiniLDM.build(WorldConfig(n_concepts=8), ModelConfig.tiny()).save_pretrained(base)
    first_two = World(WorldConfig(n_concepts=8)).names[:2]
    page = browser_context.new_page()
    page.set_viewport_size({"width": 1280, "height": 720})
    page.goto(f"{server['url']}/poison")
    try:  # the first page of a fresh server on a loaded machine can take minutes
        _title(page, "Poison setup").wait_for(timeout=300_000)
    finally:
        _shot(page, "0_open")
    page.get_by_text("These concepts by name").click()
    wait_idle(page, 60_000)
    # two concepts by name: the multiselect starts with the first two of the model's concepts
    for n in first_two:
        page.get_by_text(n, exact=True).first.wait_for(timeout=30_000)
    steps = page.get_by_label("Fine-tune steps per level")
    steps.fill("2")
    steps.press("Enter")
    wait_idle(page, 60_000)
    _shot(page, "1_setup")
    page.get_by_role("button", name="Launch run").click()
    page.wait_for_url(re.compile(r".*/jobs\?run=[^&]*-finetune-.*"), timeout=120_000)
    run_id = page.url.split("run=")[1].split("&")[0]
    _title(page, "Jobs").wait_for(timeout=180_000)
    _shot(page, "2_launched")
    page.close()  # the newcomer closes the tab …

    page = browser_context.new_page()  # … and comes back later to the same link
    page.set_viewport_size({"width": 1280, "height": 720})
    page.goto(f"{server['url']}/jobs?run={run_id}")
    _title(page, "Jobs").wait_for(timeout=180_000)
    try:
        page.locator("tr").filter(has_text=run_id).filter(has_text="completed").first.wait_for(
            timeout=900_000
        )
    finally:
        _shot(page, "3_jobs")
    page.get_by_role("button", name="Open in the explorer").wait_for(timeout=180_000)
    assert page.get_by_text("clean baseline").count() >= 1  # the clean-vs-poisoned table
    _shot(page, "4_completed")
    page.get_by_role("button", name="Open in the explorer").click()  # click 1 of 2
    _title(page, "Alignment graph").wait_for(timeout=180_000)
    wait_idle(page, 120_000)
    page.locator(".js-plotly-plot").first.wait_for(timeout=120_000)
    assert not page.locator('[data-testid="stException"]').count()
    assert run_id in page.url
    _shot(page, "5_graph")
    for path, title, name in (
        ("trajectory", "AD trajectory", "6_trajectory"),
        ("generations", "Generations", "7_generations"),
    ):
        page.goto(f"{server['url']}/{path}?pack={run_id}")
        _title(page, title).wait_for(timeout=180_000)
        wait_idle(page, 120_000)
        assert not page.locator('[data-testid="stException"]').count()
        _shot(page, name)
    page.close()
