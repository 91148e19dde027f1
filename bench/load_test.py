"""Load test: N concurrent browser sessions on the demo pack, on 127.0.0.1 only.

Each session opens Home, clicks "Play the demo", waits for the Story view's figures, then switches
to the Alignment graph page from the sidebar. Per session: seconds to Home drawn, Play → graph
drawn, and page switch → graph drawn; console errors, page errors and any request that left
127.0.0.1. Bounded: every wait has a timeout and the whole run a deadline.

    python bench/load_test.py                      # starts its own server on the repo's assets
    python bench/load_test.py --url http://127.0.0.1:8501 --sessions 10 --out bench/results/load_test.json

Target (idle 2-core machine): 10 sessions, no errors, p95 page drawn ≤ 5 s. The 1-minute
load average at start and end is recorded beside the figures.

Classroom benchmark (``--classroom``, the rest of the options go to it): server CPU-seconds per
action, 30 students at once, memory; see bench/classroom.py.

    python bench/load_test.py --classroom --students 30 --reps 3 --browser-reps 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.stream_client import launch_chromium, streamlit_server  # noqa: E402

LOCAL = ("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:", "about:")
DEFAULT_OUT = ROOT / "bench" / "results" / "load_test.json"
FIGURES_JS = "(n) => document.querySelectorAll('.js-plotly-plot .main-svg').length >= n"


async def session(browser, url: str, i: int, timeout_ms: int, shots: Path | None = None) -> dict:
    """One visitor's walk; returns its timings and problems (never raises)."""
    ctx = await browser.new_context(viewport={"width": 1280, "height": 720})
    page = await ctx.new_page()
    out: dict = {"session": i, "errors": [], "remote": []}
    page.on("console", lambda m: out["errors"].append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: out["errors"].append(str(e)))
    page.on("request", lambda r: None if r.url.startswith(LOCAL) else out["remote"].append(r.url))
    try:
        t0 = time.monotonic()
        await page.goto(url)
        play = page.get_by_role("button", name="Play the demo")
        await play.wait_for(state="visible", timeout=timeout_ms)
        out["home_s"] = round(time.monotonic() - t0, 2)
        t0 = time.monotonic()
        await play.click()
        await page.locator("h1").filter(has_text="Story").first.wait_for(timeout=timeout_ms)
        await page.wait_for_function(FIGURES_JS, arg=2, timeout=timeout_ms)
        out["play_to_graph_s"] = round(time.monotonic() - t0, 2)
        t0 = time.monotonic()
        nav = page.locator('[data-testid="stSidebarNav"] a').filter(has_text="Alignment graph")
        await nav.first.click()
        await (
            page.locator("h1").filter(has_text="Alignment graph").first.wait_for(timeout=timeout_ms)
        )
        await page.wait_for_function(FIGURES_JS, arg=1, timeout=timeout_ms)
        out["switch_to_graph_s"] = round(time.monotonic() - t0, 2)
        if await page.locator('[data-testid="stException"]').count():
            out["errors"].append("a Streamlit exception is shown on the page")
    except Exception as e:  # noqa: BLE001 — a failed session is a result, not a crash
        out["errors"].append(f"{type(e).__name__}: {str(e).splitlines()[0]}")
        if shots is not None:
            shots.mkdir(parents=True, exist_ok=True)
            out["screenshot"] = str(shots / f"session_{i}_failed.png")
            await page.screenshot(path=out["screenshot"])
    finally:
        await ctx.close()
    return out


def p95(xs: list[float]) -> float | None:
    """Nearest-rank 95th percentile (None for no values)."""
    if not xs:
        return None
    s = sorted(xs)
    return s[max(0, min(len(s) - 1, -(-95 * len(s) // 100) - 1))]


async def run(url: str, sessions: int, timeout_s: float, shots: Path | None = None) -> dict:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await launch_chromium(pw)
        try:
            results = await asyncio.wait_for(
                asyncio.gather(
                    *(
                        session(browser, url, i, int(timeout_s * 1000), shots)
                        for i in range(sessions)
                    )
                ),
                timeout=timeout_s + 60,
            )
        finally:
            await browser.close()
    summary: dict = {"sessions": sessions, "per_session": list(results)}
    for key in ("home_s", "play_to_graph_s", "switch_to_graph_s"):
        xs = [r[key] for r in results if key in r]
        summary[key] = {"n": len(xs), "p95": p95(xs), "max": max(xs) if xs else None}
    drawn = [r[k] for r in results for k in ("play_to_graph_s", "switch_to_graph_s") if k in r]
    summary["page_drawn_p95_s"] = p95(drawn)
    summary["errors"] = sum(len(r["errors"]) for r in results)
    summary["requests_off_localhost"] = sum(len(r["remote"]) for r in results)
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="--classroom: the classroom benchmark (bench/classroom.py --help for its options)",
    )
    ap.add_argument("--url", help="a running app on 127.0.0.1 (default: start one)")
    ap.add_argument("--sessions", type=int, default=10, help="concurrent browser sessions")
    ap.add_argument("--timeout", type=float, default=180.0, help="seconds per wait (bound)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--shots", type=Path, help="folder for screenshots of failed sessions")
    argv = sys.argv[1:] if argv is None else argv
    if "--classroom" in argv:
        from bench.classroom import main as classroom

        return classroom([a for a in argv if a != "--classroom"])
    args = ap.parse_args(argv)
    if not 1 <= args.sessions <= 20:
        ap.error("--sessions must be 1 … 20 (a bounded test on one machine)")
    if args.url and not args.url.startswith("http://127.0.0.1"):
        ap.error("--url must be on http://127.0.0.1 (nothing may leave this machine)")
    if not Path("/usr/bin/chromium").exists():
        ap.error("Debian chromium is needed: apt-get install chromium")
    load0 = os.getloadavg()[0]
    if args.url:
        summary = asyncio.run(run(args.url, args.sessions, args.timeout, args.shots))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "runs").mkdir()
            env = {"IMPLOSION_ASSETS": str(ROOT / "assets"), "IMPLOSION_RUNS": f"{tmp}/runs"}
            with streamlit_server(ROOT, env, Path(tmp) / "server.log") as (url, _, _t0):
                summary = asyncio.run(run(url, args.sessions, args.timeout, args.shots))
    summary["machine"] = {
        "cpus": os.cpu_count(),
        "loadavg_1m_at_start": round(load0, 2),
        "loadavg_1m_at_end": round(os.getloadavg()[0], 2),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    brief = {k: v for k, v in summary.items() if k != "per_session"}
    print(json.dumps(brief, indent=2))
    return 0 if summary["errors"] == 0 and summary["requests_off_localhost"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
