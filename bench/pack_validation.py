"""What validating packs costs and what the crafted-pack corpus gives.

Times the validating reader (core.results.validate through load_pack) on the shipped demo pack:
``load_pack`` (results.json schema, training.json, npz headers, index arrays), the full
``embeddings()`` and ``generations()``, and ``list_runs`` over a runs folder holding the crafted
corpus of tests/results/crafted.py (every case plus a valid control). Then feeds each crafted
case to the reader, ``runs show``, ``defend`` and ``sweep-pack`` and counts the outcomes. Writes
bench/results/pack_validation.json and .md with the load average beside the figures.

    python bench/pack_validation.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _median_s(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _cli(argv: list[str]) -> tuple[int, str]:
    from core.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = main(argv)
        except Exception as e:  # noqa: BLE001 — counted as a traceback, the outcome to avoid
            return -1, f"{type(e).__name__}: {e}"
    return rc, err.getvalue().strip()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args(argv)

    from core.results.pack import load_pack
    from core.results.runs import list_runs
    from core.results.validate import BrokenPack
    from tests.results.crafted import CASES, GRID_ONLY, NOT_COPIED, SECRET, write_corpus

    load_before = os.getloadavg()
    demo = ROOT / "assets" / "demo"
    timings = {
        "load_pack(demo) s": _median_s(lambda: load_pack(demo), a.repeat),
        "load_pack(demo).embeddings() s": _median_s(lambda: load_pack(demo).embeddings(), a.repeat),
        "load_pack(demo).generations() s": _median_s(
            lambda: load_pack(demo).generations(), a.repeat
        ),
    }
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        os.environ["IMPLOSION_RUNS"] = str(base / "runs")
        os.environ["IMPLOSION_ASSETS"] = str(base / "no-assets")
        names = write_corpus(base / "runs", base / "outside")
        t0 = time.perf_counter()
        list_runs()  # validates every pack
        timings[f"list_runs() over {len(names) + 1} runs, first s"] = time.perf_counter() - t0
        timings[f"list_runs() over {len(names) + 1} runs, again s"] = _median_s(list_runs, a.repeat)
        infos = {r.id: r for r in list_runs()}
        outcome: dict[str, dict[str, str]] = {}
        for case in names:
            row: dict[str, str] = {}
            try:
                p = load_pack(base / "runs" / case)
                p.embeddings()
                p.generations()
                row["reader"] = "accepted"
            except BrokenPack as e:
                row["reader"] = f"refused: {e.reason}"
            row["runs list"] = infos[case].state
            for cmd, args in (
                ("runs show", ["runs", "show", case]),
                ("defend", ["defend", "--pack", str(base / "runs" / case), "--json"]),
                (
                    "sweep-pack",
                    ["sweep-pack", str(base / "runs" / case), "--out", str(base / "o" / case)],
                ),
            ):
                rc, err = _cli(args)
                lines = len(err.splitlines())
                row[cmd] = f"exit {rc}, {lines} line(s)"
            outcome[case] = row
        leaked = [
            str(p)
            for p in base.rglob("*")
            if p.is_file()
            and not p.is_symlink()
            and "outside" not in p.parts
            and SECRET.encode() in p.read_bytes()
        ]
        outside_writes = sorted(str(p) for p in base.rglob("*evil*")) + sorted(
            str(p) for p in base.rglob("victim")
        )
    app_cases = [c for c in names if c not in GRID_ONLY]
    summary = {
        "cases": len(names),
        "reader refused (app cases)": sum(
            outcome[c]["reader"].startswith("refused") for c in app_cases
        ),
        "runs list broken (app cases)": sum(outcome[c]["runs list"] == "broken" for c in app_cases),
        "runs show exit 2, one line": sum(
            outcome[c]["runs show"] == "exit 2, 1 line(s)" for c in app_cases
        ),
        "defend exit 2, one line": sum(
            outcome[c]["defend"] == "exit 2, 1 line(s)" for c in app_cases
        ),
        "sweep-pack exit 2, one line": sum(
            outcome[c]["sweep-pack"] == "exit 2, 1 line(s)" for c in names if c not in NOT_COPIED
        ),
        "sweep-pack exit 0 (file not part of a sweep's pack)": sum(
            outcome[c]["sweep-pack"].startswith("exit 0") for c in NOT_COPIED
        ),
        "files holding the secret": len(leaked),
        "writes outside --out": len(outside_writes),
        "app cases": len(app_cases),
        "grid-only cases": len(names) - len(app_cases),
        "cases sweep-pack leaves behind": len(NOT_COPIED),
    }
    load_after = os.getloadavg()
    result = {
        "timings": timings,
        "summary": summary,
        "outcome": outcome,
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "cpus": os.cpu_count(),
        "cases": sorted(CASES),
    }
    out = ROOT / "bench" / "results"
    (out / "pack_validation.json").write_text(json.dumps(result, indent=1) + "\n")
    md = [
        "# Validating packs: cost and the crafted-pack corpus",
        "",
        f"`python bench/pack_validation.py --repeat {a.repeat}` on {os.cpu_count()} CPUs; load "
        f"average {load_before[0]:.1f} before, {load_after[0]:.1f} after (a shared machine).",
        "",
        "| what | median s |",
        "|---|---|",
        *(f"| {k[:-2]} | {v:.3f} |" for k, v in timings.items()),
        "",
        "| corpus outcome | count |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in summary.items()),
        "",
        "Per case (reader reason; `runs list` state; exit code and stderr lines of each command):",
        "",
        "| case | reader | runs list | runs show | defend | sweep-pack |",
        "|---|---|---|---|---|---|",
        *(
            f"| {c} | {r['reader'].replace('|', '/')} | {r['runs list']} | {r['runs show']} | "
            f"{r['defend']} | {r['sweep-pack']} |"
            for c, r in outcome.items()
        ),
        "",
    ]
    (out / "pack_validation.md").write_text("\n".join(md))
    print(json.dumps({"timings": timings, "summary": summary}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
