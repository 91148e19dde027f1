"""Load test: N concurrent browser sessions on the demo pack, on 127.0.0.1 only.

Each session opens Home, clicks "Play the demo", waits for the Story view's figures, then switches
to the Alignment graph page from the sidebar. Per session: seconds to Home drawn, Play → graph
drawn, and page switch → graph drawn; console errors, page errors and any request that left
127.0.0.1. Bounded: every wait has a timeout and the whole run a deadline.

    python bench/load_test.py                      # starts its own server on the repo's assets
    python bench/load_test.py --url http://127.0.0.1:8501 --sessions 10 --out bench/results/load_test.json

Target (idle 2-core machine): 10 sessions, no errors, p95 page drawn ≤ 5 s. The 1-minute
load average at start and end is recorded beside the figures.

Classroom benchmark (``--classroom``): a class server on the repo's assets; first the server's own
CPU-seconds per action (join → Home, Play → Story, a C_P slider step, opening Generations), read
from the server process's /proc/<pid>/stat before and after each action, one action at a time
after a warm-up walk, so the browsers on the same machine do not count; then ``--students`` (30)
headless Chromium contexts, one arriving per second, each walking join → Play → three C_P steps
→ Generations: wall p50/p95 per action, the server's CPU and memory (RSS) before, peak during and
10 s after. Writes bench/results/classroom.json and classroom.md with `uptime` beside the figures.

    python bench/load_test.py --classroom --students 30 --reps 3 --timeout 240
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
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
        browser = await pw.chromium.launch(
            executable_path="/usr/bin/chromium",
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
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


# ---------------------------------------------------------------- classroom benchmark
# Server CPU per action is read from the server process's own /proc/<pid>/stat (utime + stime of
# all its threads) before and after each action, one action at a time on an otherwise idle server,
# so the browsers on the same machine do not count. Then N students at once give wall p50/p95.
CODE = "bench-class-1"
ARRIVE_S = 1.0  # seconds between two students' arrivals (30 students join within 30 s)


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


async def idle(page, timeout_ms: int) -> None:
    await page.wait_for_timeout(150)
    await page.locator('[data-testid="stStatusWidget"]').wait_for(
        state="hidden", timeout=timeout_ms
    )


async def act_join(page, url: str, name: str, timeout_ms: int) -> None:
    await page.goto(f"{url}/", timeout=timeout_ms)
    await page.get_by_label("Class code").wait_for(timeout=timeout_ms)
    await page.get_by_label("Class code").fill(CODE)
    await page.get_by_label("Your name").fill(name)
    await page.get_by_role("button", name="Join").click()
    await page.get_by_role("button", name="Play the demo").wait_for(timeout=timeout_ms)
    await idle(page, timeout_ms)


async def act_play(page, timeout_ms: int) -> None:
    await page.get_by_role("button", name="Play the demo").click()
    await page.locator("h1").filter(has_text="Story").first.wait_for(timeout=timeout_ms)
    await page.wait_for_function(FIGURES_JS, arg=2, timeout=timeout_ms)
    await idle(page, timeout_ms)


CP_IN_URL_JS = "(v) => new URLSearchParams(location.search).get('cp') !== v"


async def act_cp_step(page, timeout_ms: int) -> None:
    """One step right on the Story's C_P slider (keyboard), until the page wrote the new C_P into
    its URL (``?cp=``) and finished its rerun."""
    before = await page.evaluate("() => new URLSearchParams(location.search).get('cp')")
    await page.get_by_role("slider").first.focus()
    await page.keyboard.press("ArrowRight")
    await page.wait_for_function(CP_IN_URL_JS, arg=before, timeout=timeout_ms)
    await idle(page, timeout_ms)


async def act_generations(page, timeout_ms: int) -> None:
    nav = page.locator('[data-testid="stSidebarNav"] a').filter(has_text="Generations")
    await nav.first.click()
    await page.locator("h1").filter(has_text="Generations").first.wait_for(timeout=timeout_ms)
    await idle(page, timeout_ms)


async def measure_actions(browser, url: str, pid: int, reps: int, timeout_ms: int) -> dict:
    """Server CPU-s per action, one session at a time (after one warm-up walk)."""
    out: dict[str, list[float]] = {}
    for rep in range(reps + 1):
        ctx = await browser.new_context(viewport={"width": 1280, "height": 720})
        page = await ctx.new_page()
        try:
            steps = [
                (
                    "join → Home (fresh session)",
                    partial(act_join, page, url, f"s{rep}", timeout_ms),
                ),
                ("Play the demo → Story", partial(act_play, page, timeout_ms)),
                ("C_P slider step (Story)", partial(act_cp_step, page, timeout_ms)),
                ("C_P slider step (Story), again", partial(act_cp_step, page, timeout_ms)),
                ("open Generations", partial(act_generations, page, timeout_ms)),
            ]
            for name, action in steps:
                await settle(pid)
                c0 = proc_cpu_s(pid)
                await action()
                await settle(pid)
                if rep > 0:  # rep 0 warms the server's caches
                    out.setdefault(name, []).append(round(proc_cpu_s(pid) - c0, 3))
        finally:
            await ctx.close()
    return {
        k: {"n": len(v), "median_cpu_s": statistics.median(v), "max_cpu_s": max(v), "all": v}
        for k, v in out.items()
    }


async def student(
    browser, url: str, i: int, timeout_ms: int, deadline: float, arrive_s: float
) -> dict:
    """One student's walk, timed by wall clock: join, Play, three C_P steps, Generations."""
    await asyncio.sleep(i * arrive_s)  # students arrive one after another, not in one instant
    ctx = await browser.new_context(viewport={"width": 1280, "height": 720})
    ctx.set_default_timeout(timeout_ms)
    page = await ctx.new_page()
    r: dict = {"student": i, "errors": [], "remote": [], "s": {}}
    page.on("request", lambda q: None if q.url.startswith(LOCAL) else r["remote"].append(q.url))
    page.on("pageerror", lambda e: r["errors"].append(str(e)))
    try:
        walk = [
            ("join", lambda: act_join(page, url, f"student {i}", timeout_ms)),
            ("play", lambda: act_play(page, timeout_ms)),
            ("cp_step_1", lambda: act_cp_step(page, timeout_ms)),
            ("cp_step_2", lambda: act_cp_step(page, timeout_ms)),
            ("cp_step_3", lambda: act_cp_step(page, timeout_ms)),
            ("generations", lambda: act_generations(page, timeout_ms)),
        ]
        for name, action in walk:
            if time.monotonic() > deadline:
                r["errors"].append(f"deadline before {name}")
                break
            t0 = time.monotonic()
            await action()
            r["s"][name] = round(time.monotonic() - t0, 2)
    except Exception as e:  # noqa: BLE001 — a failed student is a result
        r["errors"].append(f"{type(e).__name__}: {str(e).splitlines()[0][:200]}")
    finally:
        await ctx.close()
    return r


def pct(xs: list[float], q: float) -> float | None:
    """Nearest-rank percentile."""
    if not xs:
        return None
    s = sorted(xs)
    return s[max(0, min(len(s) - 1, -(-int(q) * len(s) // 100) - 1))]


async def classroom(url: str, pid: int, students: int, reps: int, timeout_s: float) -> dict:
    from playwright.async_api import async_playwright

    timeout_ms = int(timeout_s * 1000)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path="/usr/bin/chromium",
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            per_action = await measure_actions(browser, url, pid, reps, timeout_ms)
            await settle(pid)
            mem = {"before_mb": round(proc_rss_mb(pid), 1)}
            peak = [mem["before_mb"]]

            async def sample() -> None:
                while True:
                    peak.append(proc_rss_mb(pid))
                    await asyncio.sleep(0.5)

            sampler = asyncio.create_task(sample())
            c0, t0 = proc_cpu_s(pid), time.monotonic()
            deadline = t0 + timeout_s * 4
            runs = await asyncio.wait_for(
                asyncio.gather(
                    *(
                        student(browser, url, i, timeout_ms, deadline, ARRIVE_S)
                        for i in range(students)
                    )
                ),
                timeout=timeout_s * 6 + 120,
            )
            wall, cpu = time.monotonic() - t0, proc_cpu_s(pid) - c0
            sampler.cancel()
            mem["during_peak_mb"] = round(max(peak), 1)
        finally:
            await browser.close()
    await asyncio.sleep(10)
    mem["after_10s_mb"] = round(proc_rss_mb(pid), 1)
    lat: dict = {}
    for key in ("join", "play", "cp_step_1", "cp_step_2", "cp_step_3", "generations"):
        xs = [r["s"][key] for r in runs if key in r["s"]]
        lat[key] = {"n": len(xs), "p50_s": pct(xs, 50), "p95_s": pct(xs, 95)}
    every = [v for r in runs for v in r["s"].values()]
    step = per_action.get("C_P slider step (Story), again") or per_action.get(
        "C_P slider step (Story)"
    )
    step_cpu = step["median_cpu_s"] if step else None
    return {
        "per_action_server_cpu_s": per_action,
        "students": students,
        "students_completed": sum(1 for r in runs if len(r["s"]) == 6),
        "latency_s": lat,
        "all_actions_p50_s": pct(every, 50),
        "all_actions_p95_s": pct(every, 95),
        "phase_wall_s": round(wall, 1),
        "phase_server_cpu_s": round(cpu, 2),
        "server_memory": mem,
        "students_per_core_at_one_cp_step_per_10s": (
            round(10.0 / step_cpu, 1) if step_cpu else None
        ),
        "errors": sum(len(r["errors"]) for r in runs),
        "error_samples": [e for r in runs for e in r["errors"]][:10],
        "requests_off_localhost": sum(len(r["remote"]) for r in runs),
        "per_student": runs,
    }


def classroom_markdown(s: dict) -> str:
    """bench/results/classroom.md from the JSON summary."""
    m = s["machine"]
    lines = [
        "# Classroom benchmark (`python bench/load_test.py --classroom`)",
        "",
        f"Machine: {m['cpus']} CPUs; 1-min load average {m['loadavg_1m_at_start']} at start, "
        f"{m['loadavg_1m_at_end']} at end (`uptime`: {m['uptime_at_start']}). Server: the repo's "
        "assets (the shipped demo pack), a class server (join code), caches warmed by one walk.",
        "",
        "## Server CPU per action (from the server's /proc/<pid>/stat; browsers excluded)",
        "",
        "| action | median CPU-s | max | n |",
        "|---|---|---|---|",
    ]
    for k, v in s["per_action_server_cpu_s"].items():
        lines.append(f"| {k} | {v['median_cpu_s']:.3f} | {v['max_cpu_s']:.3f} | {v['n']} |")
    mem, lat = s["server_memory"], s["latency_s"]
    lines += [
        "",
        f"## {s['students']} students at once (headless Chromium contexts on the same machine, "
        f"one arriving every {ARRIVE_S:g} s; each walks join → Play → 3 C_P steps → Generations)",
        "",
        f"Completed walks: {s['students_completed']} of {s['students']}; errors: {s['errors']}; "
        f"requests off 127.0.0.1: {s['requests_off_localhost']}. Phase: {s['phase_wall_s']} s "
        f"wall, {s['phase_server_cpu_s']} server CPU-s.",
        "",
        "| action | n | p50 s | p95 s |",
        "|---|---|---|---|",
    ]
    for k, v in lat.items():
        lines.append(f"| {k} | {v['n']} | {v['p50_s']} | {v['p95_s']} |")
    lines += [
        f"| all actions | | {s['all_actions_p50_s']} | {s['all_actions_p95_s']} |",
        "",
        f"Server memory: {mem['before_mb']} MiB before, {mem['during_peak_mb']} MiB peak during, "
        f"{mem.get('after_10s_mb')} MiB 10 s after the students left.",
        "",
        "Students per core (one C_P step per student every 10 s, the step's median CPU): "
        f"{s['students_per_core_at_one_cp_step_per_10s']}.",
        "",
        "Reading the students' table: the browsers run on the same machine as the server, so "
        "when fewer walks complete than students started, the rows hold only the walks that got "
        "that far, and the server's CPU-seconds during the phase (above) say whether the server "
        "or the clients were the bottleneck (a server using close to one full core is the "
        "limit: it is one Python process).",
        "",
    ]
    return "\n".join(lines)


def main_classroom(args: argparse.Namespace) -> int:
    sys.path.insert(0, str(ROOT))
    from tests.e2e.conftest import _streamlit

    if not 1 <= args.students <= 40:
        raise SystemExit("--students must be 1 … 40 (a bounded test on one machine)")
    load0, up0 = os.getloadavg()[0], os.popen("uptime").read().strip()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "runs").mkdir()
        os.environ["IMPLOSION_CLASS_CODE"] = CODE
        with _streamlit(ROOT / "assets", Path(tmp) / "runs", Path(tmp) / "server.log") as srv:
            pid = server_pid(srv["url"])
            summary = asyncio.run(
                classroom(srv["url"], pid, args.students, args.reps, args.timeout)
            )
    summary["machine"] = {
        "cpus": os.cpu_count(),
        "loadavg_1m_at_start": round(load0, 2),
        "loadavg_1m_at_end": round(os.getloadavg()[0], 2),
        "uptime_at_start": up0,
        "uptime_at_end": os.popen("uptime").read().strip(),
    }
    out = args.out if args.out != DEFAULT_OUT else ROOT / "bench" / "results" / "classroom.json"
    out.write_text(json.dumps(summary, indent=2) + "\n")
    out.with_suffix(".md").write_text(classroom_markdown(summary))
    brief = {k: v for k, v in summary.items() if k != "per_student"}
    print(json.dumps(brief, indent=2))
    return 0


def server_pid(url: str) -> int:
    """Pid of the process listening on ``url``'s port (the Streamlit server), from /proc."""
    port = int(url.rsplit(":", 1)[1])
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if int(f[1].rsplit(":", 1)[1], 16) == port and f[3] == "0A":  # LISTEN
                inodes.add(f[9])
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            for fd in (d / "fd").iterdir():
                if os.readlink(fd).removeprefix("socket:[").rstrip("]") in inodes:
                    return int(d.name)
        except OSError:
            continue
    raise RuntimeError(f"no process listens on port {port}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", help="a running app on 127.0.0.1 (default: start one)")
    ap.add_argument("--sessions", type=int, default=10, help="concurrent browser sessions")
    ap.add_argument("--timeout", type=float, default=180.0, help="seconds per wait (bound)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--shots", type=Path, help="folder for screenshots of failed sessions")
    ap.add_argument(
        "--classroom",
        action="store_true",
        help="the classroom benchmark: server CPU-s per action, then --students at once "
        "(writes bench/results/classroom.json and .md)",
    )
    ap.add_argument("--students", type=int, default=30, help="classroom: students at once")
    ap.add_argument("--reps", type=int, default=3, help="classroom: measured walks per action")
    args = ap.parse_args(argv)
    if args.classroom:
        if not Path("/usr/bin/chromium").exists():
            ap.error("Debian chromium is needed: apt-get install chromium")
        return main_classroom(args)
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
        sys.path.insert(0, str(ROOT))
        from tests.e2e.conftest import _streamlit

        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "runs").mkdir()
            with _streamlit(ROOT / "assets", Path(tmp) / "runs", Path(tmp) / "server.log") as s:
                summary = asyncio.run(run(s["url"], args.sessions, args.timeout, args.shots))
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
