"""Classroom benchmark: what one class server costs per click, and 30 students at once.

Run through ``python bench/load_test.py --classroom`` (or ``python bench/classroom.py``). It starts
a class server (a join code) on the repo's assets, on 127.0.0.1, and measures:

1. **Server CPU-seconds per action**, read from the server process's own ``/proc/<pid>/stat``
   before and after each action, one action at a time on an otherwise idle server (after one
   warm-up walk), so clients on the same machine do not count. The actions are driven by
   :class:`bench.stream_client.StreamClient`, which speaks Streamlit's WebSocket protocol as a
   browser does (the same reruns, widget states and fragment timers). Optionally
   (``--browser-reps``) the same walk in headless Chromium, whose figures also include the static
   files and images a browser fetches.
2. **30 students at once** (``--students``), protocol clients arriving one per second, each
   walking join → ▶ Play the demo → stop ▶ Play → three C_P steps → Generations with a think time
   between actions, their fragment timers running as in a browser (▶ Play's 3 s steps, the
   follow-the-teacher poll every 5 s) and staying in the class until every walk is done: wall
   p50/p95 per action, the server's CPU and memory (RSS) before, peak during and 10 s after.

Writes ``bench/results/classroom.json`` and ``classroom.md`` with ``uptime`` beside the figures.

    python bench/load_test.py --classroom --students 30 --reps 3
    python bench/classroom.py --app-root /tmp/old-checkout --out /tmp/before.json   # compare
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.stream_client import (  # noqa: E402
    StreamClient,
    launch_chromium,
    streamlit_server,
)

CODE = "bench-class-1"
ARRIVE_S = 1.0  # seconds between two students' arrivals (30 students join within 30 s)
THINK_S = 2.0  # a student's pause between two actions (reading, moving the mouse)
PLAY_S, FOLLOW_S = 3.0, 5.0  # the Story's ▶ Play timer and the follow-the-teacher poll
DEFAULT_OUT = ROOT / "bench" / "results" / "classroom.json"


# ---------------------------------------------------------------- the server process
def proc_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the process ``pid`` has used, all threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` in MiB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def settle(pid: int, quiet_s: float = 0.6, limit_s: float = 30.0) -> None:
    """Wait until the server used < 10 ms of CPU over ``quiet_s`` (its rerun and websocket
    writes are done), at most ``limit_s``."""
    t_end = time.monotonic() + limit_s
    while time.monotonic() < t_end:
        c0 = proc_cpu_s(pid)
        await asyncio.sleep(quiet_s)
        if proc_cpu_s(pid) - c0 < 0.01:
            return


@contextlib.contextmanager
def class_server(app_root: Path, runs: Path, log_path: Path) -> Iterator[tuple[str, int]]:
    """``python -m streamlit run app.py`` of ``app_root`` as a class server on 127.0.0.1 with the
    repo's assets; yields (url, pid). ``app_root``'s own ``.streamlit/config.toml`` applies."""
    env = {
        "IMPLOSION_ASSETS": str(ROOT / "assets"),
        "IMPLOSION_RUNS": str(runs),
        "IMPLOSION_CLASS_CODE": CODE,
    }
    with streamlit_server(app_root, env, log_path) as (url, proc, _):
        yield url, proc.pid


# ---------------------------------------------------------------- one student's actions
# Each returns False when the page does not offer it (an older app: no ▶ Play timer to tick).
def _cp(c: StreamClient) -> str | None:
    return (parse_qs(c.query).get("cp") or [None])[0]


def _check(c: StreamClient, heading: str) -> None:
    if c.exceptions:
        raise RuntimeError(f"the page shows an exception: {c.exceptions[0]}")
    if heading not in c.headings:
        raise RuntimeError(f"expected the heading {heading!r}, the page has {c.headings[:4]}")


async def a_open(c: StreamClient) -> bool:
    await c.open()
    c.widget("Class code")
    return True


async def a_join(c: StreamClient, name: str) -> bool:
    await c.fill({"Class code": CODE, "Your name": name}, submit="Join")
    _check(c, "The story in five steps")
    return True


async def a_play(c: StreamClient) -> bool:
    await c.click("Play the demo")
    _check(c, "Story")
    return True


async def a_tick(c: StreamClient) -> bool:
    if PLAY_S not in c.timed.values():
        return False
    before = _cp(c)
    await c.tick(PLAY_S)
    if _cp(c) == before:
        raise RuntimeError(f"a ▶ Play tick did not move C_P from {before}")
    return True


async def a_stop(c: StreamClient) -> bool:
    if PLAY_S not in c.timed.values():
        return False
    await c.set_value("▶ Play", False)
    return True


async def a_cp_step(c: StreamClient) -> bool:
    """One step right on the Story's C_P slider (back to the first level from the last)."""
    options = c.widget("C_P: poisoned concepts").options
    now = _cp(c) or options[len(options) // 2]
    nxt = options[(options.index(now) + 1) % len(options)]
    await c.set_value("C_P: poisoned concepts", nxt)
    if _cp(c) != nxt:
        raise RuntimeError(f"C_P step to {nxt}: the URL says {_cp(c)}")
    return True


async def a_generations(c: StreamClient) -> bool:
    await c.goto("generations")
    _check(c, "Generations")
    return True


async def a_follow_poll(c: StreamClient) -> bool:
    if FOLLOW_S not in c.timed.values():
        return False
    await c.tick(FOLLOW_S)
    return True


def walk(c: StreamClient, name: str) -> list[tuple[str, Callable[[], Awaitable[bool]]]]:
    """The actions of one student, in order (the per-action table's rows)."""
    return [
        ("open the link (join form)", partial(a_open, c)),
        ("join → Home", partial(a_join, c, name)),
        ("▶ Play the demo → Story", partial(a_play, c)),
        ("▶ Play tick (Story, next level)", partial(a_tick, c)),
        ("stop ▶ Play", partial(a_stop, c)),
        ("C_P slider step (Story)", partial(a_cp_step, c)),
        ("C_P slider step (Story), again", partial(a_cp_step, c)),
        ("open Generations", partial(a_generations, c)),
        ("follow-the-teacher poll (5 s timer)", partial(a_follow_poll, c)),
    ]


def pct(xs: list[float], q: float) -> float | None:
    """Nearest-rank percentile."""
    if not xs:
        return None
    s = sorted(xs)
    return s[max(0, min(len(s) - 1, -(-int(q) * len(s) // 100) - 1))]


def _cpu_table(out: dict[str, list[float]]) -> dict[str, dict[str, Any]]:
    return {
        k: {"n": len(v), "median_cpu_s": statistics.median(v), "max_cpu_s": max(v), "all": v}
        for k, v in out.items()
        if v
    }


async def measure_protocol(url: str, pid: int, reps: int) -> dict:
    """Server CPU-s per action, one protocol client at a time (rep 0 warms the caches)."""
    out: dict[str, list[float]] = {}
    fresh: list[float] = []
    for rep in range(reps + 1):
        c = StreamClient(url, auto_rerun=False)  # timers are ticked one at a time, as actions
        try:
            spent: dict[str, float] = {}
            for name, action in walk(c, f"s{rep}"):
                await settle(pid)
                c0 = proc_cpu_s(pid)
                done = await action()
                await settle(pid)
                if done:
                    spent[name] = round(proc_cpu_s(pid) - c0, 3)
            if rep > 0:
                for k, v in spent.items():
                    out.setdefault(k, []).append(v)
                fresh.append(round(spent["open the link (join form)"] + spent["join → Home"], 3))
        finally:
            await c.close()
    table = _cpu_table(out)
    table["fresh session: open the link + join → Home"] = {
        "n": len(fresh),
        "median_cpu_s": statistics.median(fresh),
        "max_cpu_s": max(fresh),
        "all": fresh,
    }
    return table


# ---------------------------------------------------------------- the same walk in Chromium
async def _idle(page: Any, timeout_ms: int) -> None:
    await page.wait_for_timeout(150)
    await page.locator('[data-testid="stStatusWidget"]').wait_for(
        state="hidden", timeout=timeout_ms
    )


async def measure_browser(url: str, pid: int, reps: int, timeout_s: float) -> dict:
    """Server CPU-s per action for a headless Chromium session (static files, images and
    websocket as a real student's browser), one action at a time."""
    from playwright.async_api import async_playwright

    ms = int(timeout_s * 1000)
    figures_js = "(n) => document.querySelectorAll('.js-plotly-plot .main-svg').length >= n"
    cp_changed_js = "(v) => new URLSearchParams(location.search).get('cp') !== v"

    async def join(page: Any, name: str) -> None:
        await page.goto(f"{url}/", timeout=ms)
        await page.get_by_label("Class code").fill(CODE)
        await page.get_by_label("Your name").fill(name)
        await page.get_by_role("button", name="Join").click()
        await page.get_by_role("button", name="Play the demo").wait_for(timeout=ms)
        await _idle(page, ms)

    async def play(page: Any) -> None:
        await page.get_by_role("button", name="Play the demo").click()
        await page.locator("h1").filter(has_text="Story").first.wait_for(timeout=ms)
        await page.wait_for_function(figures_js, arg=2, timeout=ms)
        await _idle(page, ms)

    async def stop(page: Any) -> None:
        toggle = page.get_by_role("switch", name="▶ Play", exact=True)
        if await toggle.is_checked():
            await page.get_by_text("▶ Play").click()
            await _idle(page, ms)

    async def cp_step(page: Any) -> None:
        before = await page.evaluate("() => new URLSearchParams(location.search).get('cp')")
        await page.get_by_role("slider").first.focus()
        await page.keyboard.press("ArrowRight")
        await page.wait_for_function(cp_changed_js, arg=before, timeout=ms)
        await _idle(page, ms)

    async def generations(page: Any) -> None:
        nav = page.locator('[data-testid="stSidebarNav"] a').filter(has_text="Generations")
        await nav.first.click()
        await page.locator("h1").filter(has_text="Generations").first.wait_for(timeout=ms)
        await _idle(page, ms)

    out: dict[str, list[float]] = {}
    async with async_playwright() as pw:
        browser = await launch_chromium(pw)
        try:
            for rep in range(reps + 1):
                ctx = await browser.new_context(viewport={"width": 1280, "height": 720})
                page = await ctx.new_page()
                steps = [
                    ("open the link + join → Home (fresh session)", partial(join, page, f"b{rep}")),
                    # Play plays: its 3 s steps run while this is measured, so stop it at once
                    ("▶ Play the demo → Story, stopped", None),
                    ("C_P slider step (Story)", partial(cp_step, page)),
                    ("C_P slider step (Story), again", partial(cp_step, page)),
                    ("open Generations", partial(generations, page)),
                ]
                try:
                    for name, action in steps:
                        await settle(pid)
                        c0 = proc_cpu_s(pid)
                        if action is None:
                            await play(page)
                            await stop(page)
                        else:
                            await action()
                        await settle(pid)
                        if rep > 0:
                            out.setdefault(name, []).append(round(proc_cpu_s(pid) - c0, 3))
                finally:
                    await ctx.close()
        finally:
            await browser.close()
    return _cpu_table(out)


# ---------------------------------------------------------------- 30 students at once
async def student(url: str, i: int, deadline: float, timeout_s: float) -> tuple[StreamClient, dict]:
    """One student's walk (wall time per action), the client left open (still in the class)."""
    await asyncio.sleep(i * ARRIVE_S)
    c = StreamClient(url, auto_rerun=True)  # ▶ Play's steps and the follow poll, as a browser
    r: dict = {"student": i, "errors": [], "s": {}}
    try:
        for k, (name, action) in enumerate(walk(c, f"student {i}")):
            if name.startswith(("▶ Play tick", "follow-the-teacher")):
                continue  # the client's own timers send these
            if time.monotonic() > deadline:
                r["errors"].append(f"deadline before {name}")
                break
            if k > 1:
                await asyncio.sleep(THINK_S)
            t0 = time.monotonic()
            if await asyncio.wait_for(action(), timeout_s):
                r["s"][name] = round(time.monotonic() - t0, 2)
    except Exception as e:  # noqa: BLE001 — a failed student is a result
        r["errors"].append(f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")
    return c, r


async def students_phase(url: str, pid: int, students: int, timeout_s: float) -> dict:
    await settle(pid)
    mem = {"before_mb": round(proc_rss_mb(pid), 1)}
    peak = [mem["before_mb"]]

    async def sample() -> None:
        while True:
            peak.append(proc_rss_mb(pid))
            await asyncio.sleep(0.5)

    sampler = asyncio.create_task(sample())
    c0, t0 = proc_cpu_s(pid), time.monotonic()
    deadline = t0 + students * ARRIVE_S + timeout_s * 3
    done = await asyncio.gather(*(student(url, i, deadline, timeout_s) for i in range(students)))
    wall, cpu = time.monotonic() - t0, proc_cpu_s(pid) - c0
    clients = [c for c, _ in done]
    runs = [r for _, r in done]
    for c in clients:
        await c.close()
    sampler.cancel()
    mem["during_peak_mb"] = round(max(peak), 1)
    await asyncio.sleep(10)
    mem["after_10s_mb"] = round(proc_rss_mb(pid), 1)
    names = [n for n, _ in walk(StreamClient(url), "x") if n in {k for r in runs for k in r["s"]}]
    lat = {}
    for key in names:
        xs = [r["s"][key] for r in runs if key in r["s"]]
        lat[key] = {"n": len(xs), "p50_s": pct(xs, 50), "p95_s": pct(xs, 95), "max_s": max(xs)}
    every = [v for r in runs for v in r["s"].values()]
    return {
        "students": students,
        "students_completed": sum(1 for r in runs if not r["errors"] and len(r["s"]) >= 6),
        "latency_s": lat,
        "all_actions_p50_s": pct(every, 50),
        "all_actions_p95_s": pct(every, 95),
        "phase_wall_s": round(wall, 1),
        "phase_server_cpu_s": round(cpu, 2),
        "server_memory": mem,
        "errors": sum(len(r["errors"]) for r in runs),
        "error_samples": [e for r in runs for e in r["errors"]][:10],
        "per_student": runs,
    }


# ---------------------------------------------------------------- report
def classroom_markdown(s: dict) -> str:
    """bench/results/classroom.md from the JSON summary."""
    m = s["machine"]
    lines = [
        "# Classroom benchmark (`python bench/load_test.py --classroom`)",
        "",
        f"Machine: {m['cpus']} CPUs, shared with other work; `uptime` at start: "
        f"`{m['uptime_at_start']}`; at end: `{m['uptime_at_end']}`. Server: the repo's assets "
        f"(the shipped demo pack), a class server (join code), app from `{s['app_root']}`, "
        "caches warmed by one walk.",
        "",
        "## Server CPU per action (the server's /proc/<pid>/stat; clients excluded)",
        "",
        "Protocol client (Streamlit's WebSocket messages, as a browser sends them; no static "
        "files or images):",
        "",
        "| action | median CPU-s | max | n |",
        "|---|---|---|---|",
    ]
    for k, v in s["per_action_server_cpu_s"].items():
        lines.append(f"| {k} | {v['median_cpu_s']:.3f} | {v['max_cpu_s']:.3f} | {v['n']} |")
    if s.get("per_action_browser_cpu_s"):
        lines += [
            "",
            "Headless Chromium (one session at a time; includes the static files and images "
            "a fresh browser fetches):",
            "",
            "| action | median CPU-s | max | n |",
            "|---|---|---|---|",
        ]
        for k, v in s["per_action_browser_cpu_s"].items():
            lines.append(f"| {k} | {v['median_cpu_s']:.3f} | {v['max_cpu_s']:.3f} | {v['n']} |")
    ph = s["students_phase"]
    mem, lat = ph["server_memory"], ph["latency_s"]
    lines += [
        "",
        f"## {ph['students']} students at once (protocol clients, one arriving every "
        f"{ARRIVE_S:g} s, {THINK_S:g} s think time between actions, ▶ Play and "
        "follow-the-teacher timers running, all staying until the last walk ends)",
        "",
        f"Completed walks: {ph['students_completed']} of {ph['students']}; errors: "
        f"{ph['errors']}. Phase: {ph['phase_wall_s']} s wall, {ph['phase_server_cpu_s']} server "
        f"CPU-s ({ph['phase_server_cpu_s'] / max(ph['phase_wall_s'], 1e-9):.2f} cores on "
        "average).",
        "",
        "| action | n | p50 s | p95 s | max s |",
        "|---|---|---|---|---|",
    ]
    for k, v in lat.items():
        lines.append(f"| {k} | {v['n']} | {v['p50_s']} | {v['p95_s']} | {v['max_s']} |")
    lines += [
        f"| all actions | | {ph['all_actions_p50_s']} | {ph['all_actions_p95_s']} | |",
        "",
        f"Server memory: {mem['before_mb']} MiB before, {mem['during_peak_mb']} MiB peak during, "
        f"{mem.get('after_10s_mb')} MiB 10 s after the students left.",
        "",
        f"Students per core: {s['students_per_core']} (one C_P step per student every 10 s, "
        "the step's median CPU above); a whole walk cost the server "
        f"{s['server_cpu_s_per_student_walk']} CPU-s per student (phase CPU / students, timers "
        "included).",
        "",
        *_before_after(s),
        "The server is one Python process (Streamlit runs every session's script in its "
        "threads under one interpreter lock), so it uses about one core however many there are: "
        "a measurement on this 2-core machine with other work running is stricter than the "
        "4-core server the target names.",
        "",
    ]
    return "\n".join(lines)


def _before_after(s: dict) -> list[str]:
    """A table of the same actions measured on another checkout (``--before``), with ratios."""
    before = s.get("before")
    if not before:
        return []
    lines = [
        f"## Before and after (the same benchmark on `{before['app_root']}`, {before['label']})",
        "",
        f"Before: `uptime` at start `{before['machine']['uptime_at_start']}`. Median server CPU-s "
        "per action:",
        "",
        "| action | before | after | after / before |",
        "|---|---|---|---|",
    ]
    for table in ("per_action_server_cpu_s", "per_action_browser_cpu_s"):
        kind = "protocol" if table == "per_action_server_cpu_s" else "Chromium"
        for k, v in (before.get(table) or {}).items():
            after = (s.get(table) or {}).get(k)
            if after is None:
                continue
            b, a = v["median_cpu_s"], after["median_cpu_s"]
            ratio = f"{a / b:.2f}" if b else "—"
            lines.append(f"| {k} ({kind}) | {b:.3f} | {a:.3f} | {ratio} |")
    bp, ap = before["students_phase"], s["students_phase"]
    lines += [
        "",
        f"{ap['students']} students: before, {bp['students_completed']} walks completed, p50 "
        f"{bp['all_actions_p50_s']} s, p95 {bp['all_actions_p95_s']} s over all actions, "
        f"{bp['phase_server_cpu_s']} server CPU-s in {bp['phase_wall_s']} s; after, "
        f"{ap['students_completed']} completed, p50 {ap['all_actions_p50_s']} s, p95 "
        f"{ap['all_actions_p95_s']} s, {ap['phase_server_cpu_s']} CPU-s in {ap['phase_wall_s']} s.",
        "",
    ]
    return lines


async def run_all(args: argparse.Namespace, url: str, pid: int) -> dict:
    per_action = await measure_protocol(url, pid, args.reps)
    browser = (
        await measure_browser(url, pid, args.browser_reps, args.timeout)
        if args.browser_reps
        else {}
    )
    phase = await students_phase(url, pid, args.students, args.timeout)
    step = per_action.get("C_P slider step (Story), again") or per_action.get(
        "C_P slider step (Story)"
    )
    return {
        "per_action_server_cpu_s": per_action,
        "per_action_browser_cpu_s": browser,
        "students_phase": phase,
        "students_per_core": round(10.0 / step["median_cpu_s"], 1) if step else None,
        "server_cpu_s_per_student_walk": round(phase["phase_server_cpu_s"] / args.students, 3),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--students", type=int, default=30, help="students at once (1 … 60)")
    ap.add_argument("--reps", type=int, default=3, help="measured walks per action")
    ap.add_argument(
        "--browser-reps", type=int, default=0, help="also measure N walks in headless Chromium"
    )
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per action (bound)")
    ap.add_argument("--app-root", type=Path, default=ROOT, help="the checkout whose app is served")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument(
        "--before",
        type=Path,
        help="a JSON this benchmark wrote for another checkout: adds a before/after table",
    )
    ap.add_argument("--before-label", default="before the changes", help="words for --before")
    args = ap.parse_args(argv)
    if not 1 <= args.students <= 60:
        ap.error("--students must be 1 … 60 (a bounded test on one machine)")
    if args.browser_reps and not Path("/usr/bin/chromium").exists():
        ap.error("--browser-reps needs Debian chromium: apt-get install chromium")
    if not (args.app_root / "app.py").is_file():
        ap.error(f"--app-root {args.app_root} has no app.py")
    up0 = os.popen("uptime").read().strip()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "runs").mkdir()
        with class_server(args.app_root, Path(tmp) / "runs", Path(tmp) / "server.log") as (
            url,
            pid,
        ):
            summary = asyncio.run(run_all(args, url, pid))
    summary["app_root"] = str(args.app_root)
    if args.before:
        summary["before"] = json.loads(args.before.read_text())
        summary["before"]["label"] = args.before_label
        summary["before"]["students_phase"].pop("per_student", None)
    summary["machine"] = {
        "cpus": os.cpu_count(),
        "uptime_at_start": up0,
        "uptime_at_end": os.popen("uptime").read().strip(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(classroom_markdown(summary))
    brief = {k: v for k, v in summary.items() if k != "students_phase"}
    brief["students"] = {k: v for k, v in summary["students_phase"].items() if k != "per_student"}
    print(json.dumps(brief, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
