"""End to end in headless Chromium: Home → Play the demo (the committed pack) → Story → every
page in presenter mode at 1280×720 → graph with thumbnails and a clicked node → PNG/SVG export,
with no request leaving 127.0.0.1 and no console error; a job watched live and re-attached after a
reload; a ci-smoke sweep. Screenshots, exported files and timings.json go to the artifacts dir."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import time

import pytest

from tests.support.browser import ROOT, artifacts_dir, wait_idle

pytestmark = pytest.mark.e2e

PAGES = [  # (sidebar label, page title, URL path)
    ("Alignment graph", "Alignment graph", "/graph"),
    ("AD trajectory", "AD trajectory", "/trajectory"),
    ("Generations", "Generations", "/generations"),
    ("Cross-attention", "Cross-attention maps", "/attention"),
    ("Compare & export", "Compare runs & export", "/compare"),
    ("Poison setup", "Poison setup", "/poison"),
    *([("Defend", "Defend", "/defend")] if (ROOT / "pages" / "defend.py").is_file() else []),
    ("Jobs", "Jobs", "/jobs"),
    ("Story", "Story", "/story"),
    ("Home", "Implosion Lab", "/"),
]
TIMINGS: dict[str, object] = {}
LOCAL = ("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:", "about:")
PROJECTOR = {"width": 1280, "height": 720}


def _title(page, text: str):
    return page.locator("h1").filter(has_text=text).first


def _write_timings() -> None:
    path = artifacts_dir() / "timings.json"
    path.write_text(json.dumps(TIMINGS, indent=2) + "\n")
    print(f"\ntimings ({path}):\n{json.dumps(TIMINGS, indent=2)}")


# Pixel position and concept id of the first node of a named trace (plotly's own axis maps).
_NODE_JS = """(name) => {
  const gd = [...document.querySelectorAll('.js-plotly-plot')]
    .find(g => (g._fullData || []).some(d => d.name && d.name.startsWith(name)));
  const i = gd._fullData.findIndex(d => d.name && d.name.startsWith(name));
  const t = gd._fullData[i], pt = gd.calcdata[i][0];
  const fl = gd._fullLayout;
  const xa = fl['xaxis' + t.xaxis.slice(1)], ya = fl['yaxis' + t.yaxis.slice(1)];
  const r = gd.getBoundingClientRect();
  return {x: r.left + xa._offset + xa.c2p(pt.x), y: r.top + ya._offset + ya.c2p(pt.y),
          id: Number(t.customdata[0]), text: t.text[0], images: (fl.images || []).length};
}"""
# Whether some drawn figure shows level C_P = c (the ◆ hover text names the level).
_SHOWS_LEVEL_JS = """(c) => [...document.querySelectorAll('.js-plotly-plot')].some(g =>
  (g._fullData || []).some(d => Array.isArray(d.text) && d.text.some(
    s => typeof s === 'string' && s.includes('(C_P = ' + c + ')'))))"""
# Smallest font (px) of any text plotly drew, and the top of the first figure (px).
_FIGURE_TEXT_JS = """() => {
  const sizes = [...document.querySelectorAll('.js-plotly-plot text')]
    .filter(t => t.textContent.trim() && t.getBoundingClientRect().width > 0)
    .map(t => parseFloat(getComputedStyle(t).fontSize));
  const g = document.querySelector('.js-plotly-plot');
  return {min_px: sizes.length ? Math.min(...sizes) : null, n: sizes.length,
          top: g ? g.getBoundingClientRect().top : null,
          bottom: g ? g.getBoundingClientRect().bottom : null};
}"""


def _download(page, label: str, path) -> float:
    """Click a download button, save the file to ``path``; seconds from click to file."""
    t0 = time.monotonic()
    with page.expect_download(timeout=60_000) as info:
        page.get_by_role("button", name=label).first.click()
    info.value.save_as(str(path))
    return round(time.monotonic() - t0, 2)


def _figures_drawn(page, n: int = 1, timeout_ms: int = 60_000) -> None:
    page.wait_for_function(
        f"() => document.querySelectorAll('.js-plotly-plot .main-svg').length >= {n}",
        timeout=timeout_ms,
    )


def _sidebar(page, open_: bool) -> None:
    """Unfold (to click a page) or fold (presenter screenshots) the sidebar."""
    expand = page.get_by_test_id("stExpandSidebarButton")
    if open_ and expand.is_visible():
        expand.click()
        page.get_by_test_id("stSidebarNav").wait_for(state="visible", timeout=10_000)
    elif not open_ and not expand.is_visible():
        page.get_by_test_id("stSidebar").hover()
        page.get_by_test_id("stSidebarCollapseButton").locator("button").click()
        expand.wait_for(state="visible", timeout=10_000)


@pytest.fixture(scope="module", autouse=True)
def _timings_file():
    """Write timings.json after the module, also when a test failed half-way."""
    yield
    if TIMINGS:
        _write_timings()


def test_home_demo_story_and_every_page_presenter(demo_server, browser_context):
    """The newcomer's path on the committed demo pack, in presenter mode on a 1280×720
    projector: Home → Play the demo → Story (a C_P step, ▶ Play) → every page (URL names the
    page and carries the pack) → the graph with thumbnails and a clicked node → PNG/SVG export.
    No request may leave 127.0.0.1 and the browser console must stay free of errors."""
    server = demo_server
    shots = artifacts_dir()
    page = browser_context.new_page()
    page.set_viewport_size(PROJECTOR)
    remote: list[str] = []
    errors: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(LOCAL) else remote.append(r.url))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))

    t0 = time.monotonic()
    page.goto(f"{server['url']}/?present=1")
    play = page.get_by_role("button", name="Play the demo")
    play.wait_for(state="visible", timeout=60_000)
    wait_idle(page)
    now = time.monotonic()
    preset = json.loads((ROOT / "assets" / "demo" / "results.json").read_text())["config"]
    TIMINGS["pack"] = f"assets/demo (committed {preset.get('preset')} sweep)"
    TIMINGS["viewport"] = PROJECTOR
    TIMINGS["machine"] = {"cpus": os.cpu_count(), "loadavg_1m_at_start": os.getloadavg()[0]}
    TIMINGS["server_healthy_s"] = round(server["healthy_s"], 2)
    TIMINGS["first_interactive_s"] = round(now - t0, 2)
    TIMINGS["cold_start_to_home_s"] = round(now - server["started"], 2)
    assert "present=1" in page.url
    page.screenshot(path=str(shots / "home.png"))
    page.screenshot(path=str(shots / "home_full.png"), full_page=True)

    # Play the demo → the Story from its first level, already playing (a speaker presses Play
    # once): the figures show C_P 0, then the next level by themselves, and Play stops at the last
    # level that still has unpoisoned prompts
    t0 = time.monotonic()
    play.click()
    _title(page, "Story").wait_for(timeout=60_000)
    page.wait_for_function(_SHOWS_LEVEL_JS, arg=0, timeout=60_000)
    TIMINGS["play_demo_to_graph_s"] = round(time.monotonic() - t0, 2)
    _figures_drawn(page, 2)
    assert page.get_by_role("switch", name="▶ Play", exact=True).is_checked()
    page.screenshot(path=str(shots / "story.png"))
    page.wait_for_function(_SHOWS_LEVEL_JS, arg=1, timeout=90_000)
    TIMINGS["play_first_step_s"] = round(time.monotonic() - t0, 2)
    assert "/story" in page.url and "pack=demo" in page.url and "present=1" in page.url
    assert not page.locator('[data-testid="stException"]').count()
    page.get_by_text("▶ Play").click()  # stop where it is
    wait_idle(page, 60_000)
    TIMINGS["play_demo_to_story_idle_s"] = round(time.monotonic() - t0, 2)
    page.wait_for_timeout(500)  # let plotly finish drawing
    legible = page.evaluate(_FIGURE_TEXT_JS)
    TIMINGS["story_figure_text_min_px"] = legible["min_px"]
    TIMINGS["story_figure_top_bottom_px"] = [legible["top"], legible["bottom"]]
    page.screenshot(path=str(shots / "story_played.png"))
    assert legible["min_px"] >= 16, legible  # presenter mode: every figure text ≥ 16 px
    assert legible["top"] < PROJECTOR["height"] / 2, legible  # the graph starts above the fold

    # one C_P step with the keyboard (the slider's thumb), until the figures show the next level
    levels = json.loads((ROOT / "assets" / "demo" / "results.json").read_text())["config"]
    levels = sorted(int(c) for c in levels["levels"])
    now_cp = int(page.evaluate("() => new URLSearchParams(location.search).get('cp')"))
    t0 = time.monotonic()
    page.get_by_role("slider").first.focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_function(_SHOWS_LEVEL_JS, arg=levels[levels.index(now_cp) + 1], timeout=60_000)
    TIMINGS["cp_step_to_figure_s"] = round(time.monotonic() - t0, 2)
    wait_idle(page, 60_000)
    page.wait_for_timeout(400)
    page.screenshot(path=str(shots / "story_cp_step.png"))

    switches: dict[str, float] = {}
    broken: dict[str, str] = {}  # every page is visited even when one is broken; asserted below
    for label, title, path in PAGES:
        _sidebar(page, True)
        slug = label.lower().replace(" & ", "_").replace(" ", "_").replace("-", "_")
        t0 = time.monotonic()
        page.locator('[data-testid="stSidebarNav"] a').filter(has_text=label).first.click()
        try:
            _title(page, title).wait_for(timeout=60_000)
            wait_idle(page, 60_000)
        except Exception as e:  # noqa: BLE001 — recorded, the walk goes on
            broken[label] = f"{type(e).__name__}: {str(e).splitlines()[0]}"
            page.screenshot(path=str(shots / f"page_{slug}_broken.png"))
            continue
        switches[label] = round(time.monotonic() - t0, 2)
        if page.locator('[data-testid="stException"]').count():
            broken[label] = "exception shown on the page"
        url = page.url.split("?")[0].rstrip("/")
        if url != server["url"] + path.rstrip("/"):
            broken[label] = f"URL names another page: {page.url}"
        elif "pack=demo" not in page.url or "present=1" not in page.url:
            broken[label] = f"URL lost the pack or presenter mode: {page.url}"
        _sidebar(page, False)
        page.wait_for_timeout(600)
        page.screenshot(path=str(shots / f"page_{slug}.png"))
    TIMINGS["pages_broken"] = broken
    TIMINGS["page_switch_s"] = switches
    TIMINGS["page_switch_max_s"] = max(switches.values())

    # the graph: thumbnails at the nodes, then a clicked poisoned caption fills the side panel
    _sidebar(page, True)
    page.locator('[data-testid="stSidebarNav"] a').filter(has_text="Alignment graph").click()
    _title(page, "Alignment graph").wait_for(timeout=60_000)
    wait_idle(page, 60_000)
    _sidebar(page, False)
    page.get_by_text("Graph options").click()
    t0 = time.monotonic()
    page.get_by_text("Thumbnails at nodes").click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('.js-plotly-plot')]"
        ".some(g => (g._fullLayout.images || []).length > 0)",
        timeout=60_000,
    )
    wait_idle(page, 60_000)
    TIMINGS["graph_thumbnails_on_s"] = round(time.monotonic() - t0, 2)
    page.wait_for_timeout(500)
    assert page.evaluate(_NODE_JS, "where the caption lands")["images"] == 64  # 32 + 32
    page.get_by_text("Graph options").click()  # fold the options again
    page.wait_for_timeout(500)
    page.screenshot(path=str(shots / "alignment_graph_thumbnails.png"), full_page=True)
    node = page.evaluate(_NODE_JS, "caption (poisoned concept)")
    name = node["text"].split("<b>")[1].split("</b>")[0]
    t0 = time.monotonic()
    page.mouse.click(node["x"], node["y"])
    page.get_by_test_id("stMarkdown").filter(has_text=f"caption “a photo of a {name}”").filter(
        has_text="poisoned at C_P"
    ).first.wait_for(timeout=60_000)
    wait_idle(page, 60_000)
    TIMINGS["graph_node_click_to_panel_s"] = round(time.monotonic() - t0, 2)
    assert not page.get_by_text("not poisoned at C_P").count()  # a poisoned node was clicked
    page.wait_for_timeout(400)
    page.screenshot(path=str(shots / "alignment_graph_selected_node.png"), full_page=True)

    # export: PNG (the first starts the shared headless browser), again, then SVG
    _sidebar(page, True)
    page.locator('[data-testid="stSidebarNav"] a').filter(has_text="Compare & export").click()
    _title(page, "Compare runs & export").wait_for(timeout=60_000)
    wait_idle(page, 60_000)
    page.get_by_text("Export “compare-ad”").click()
    page.get_by_role("button", name="Download PNG").first.wait_for(timeout=10_000)
    png = shots / "export_compare_ad.png"
    TIMINGS["export_png_first_s"] = _download(page, "Download PNG", png)
    TIMINGS["export_png_again_s"] = _download(page, "Download PNG", png)
    TIMINGS["export_svg_s"] = _download(page, "Download SVG", shots / "export_compare_ad.svg")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (shots / "export_compare_ad.svg").read_bytes().lstrip()[:4] == b"<svg"
    TIMINGS["machine"]["loadavg_1m_at_end"] = os.getloadavg()[0]
    TIMINGS["requests_off_localhost"] = remote
    TIMINGS["console_errors"] = errors
    page.close()
    assert not broken, f"pages that did not draw correctly: {broken}"
    assert not remote, f"requests left 127.0.0.1: {remote[:5]}"
    assert not errors, f"browser console errors: {errors[:5]}"


def test_job_live_progress_and_reattach(server, browser_context, monkeypatch):
    monkeypatch.setenv("IMPLOSION_RUNS", str(server["runs"]))
    from core.jobs import start_job

    run_id = start_job("dummy", {"steps": 60, "step_seconds": 0.15}, device="cpu")
    page = browser_context.new_page()
    page.goto(f"{server['url']}/jobs?run={run_id}")
    _title(page, "Jobs").wait_for(timeout=30_000)
    page.get_by_text("Progress", exact=True).first.wait_for(timeout=30_000)
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
    if importlib.util.find_spec("core.sweep.mini.run") is None:
        pytest.skip(
            "the `sweep` job kind (core.sweep.mini.run:run_job) is not in this checkout yet"
        )
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
