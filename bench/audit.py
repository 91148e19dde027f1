"""Validation and scale of the AD audit; writes bench/results/audit.md and audit.json.

    python bench/audit.py [--holdout build/audit_holdout] [--scale-n 1000000] [--scale-d 64]
                          [--skip-scale] [--skip-plans]

1. The calibration (core.audit.calibration) fitted on the demo pack (assets/demo, cpu-full,
   seeds 0–4) predicts sweeps on seeds it never saw, from the *planned* pairs (the audit's
   ``--plan`` path, AD on the demo pack's scale, no training):
   a. seeds 7–16 at C_P 0 and 4, same configuration (bench/results/science_bleed_seeds7-16.json);
   b. seeds 20–22 of ``implosion sweep --preset cpu-quick --seeds 20 21 22 --out DIR`` (same
      fine-tune, 4 judged samples per concept instead of 8), every level it has finished;
   c. leave-one-seed-out inside the demo pack (fit on four seeds, predict the fifth).
   Reported: how many measured values fall inside the predicted 90 % intervals, the mean absolute
   error of the point prediction, and how many were refused (AD outside the fitted range).
2. How early in training AD predicts the final outcome: for each probe step of the demo pack's
   training.json (seed 0), the AD of the model's own generations vs the level's final unpoisoned
   accuracy (Pearson r, leave-one-level-out MAE of a line), beside the training pairs' AD, which is
   known before step 0.
3. Scale: ``implosion audit --embeddings`` on n = 10⁶ random pairs (d = 64, the mini dual
   encoder's width; K = 32 concepts; uncompressed npz, memory-mapped) on this machine's 2 shared
   cores: wall time (target ≤ 60 s), with the load average beside it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.audit.calibration import OUTCOMES, fit_calibration  # noqa: E402
from core.audit.plan import PlannedAttack, plan_runner, planned_pairs  # noqa: E402
from core.metrics import alignment_difficulty  # noqa: E402
from core.results.pack import Pack, load_pack  # noqa: E402

OUT_MD = ROOT / "bench" / "results" / "audit.md"
OUT_JSON = ROOT / "bench" / "results" / "audit.json"
BLEED = ROOT / "bench" / "results" / "science_bleed_seeds7-16.json"
PLAN_CACHE = ROOT / "build" / "audit_plan_ad.json"  # planned AD per (C_P, seed, scale): reruns


def load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def score(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Coverage and MAE per outcome over rows {"outcome", "pred", "low", "high", "measured"}."""
    out: dict[str, Any] = {}
    for name in OUTCOMES:
        rs = [r for r in rows if r["outcome"] == name and r["measured"] is not None]
        done = [r for r in rs if r["pred"] is not None]
        inside = [r["low"] <= r["measured"] <= r["high"] for r in done]
        out[name] = {
            "measured": len(rs),
            "predicted": len(done),
            "refused": len(rs) - len(done),
            "inside": int(sum(inside)),
            "coverage": (sum(inside) / len(done)) if done else None,
            "mae": float(np.mean([abs(r["pred"] - r["measured"]) for r in done])) if done else None,
        }
    return out


def predict_rows(cal: Any, ad: float, rec: dict[str, Any], tag: str) -> list[dict[str, Any]]:
    p = cal.predict(ad)
    vals = {
        "acc_unpoisoned": (p.acc_unpoisoned, p.low, p.high),
        "incoherence": (p.incoherence, p.incoherence_low, p.incoherence_high),
    }
    return [
        {
            "set": tag,
            "c_p": int(rec["c_p"]),
            "seed": int(rec["seed"]),
            "ad_plan": ad,
            "ad_recorded": rec.get("ad"),
            "outcome": k,
            "extrapolated": any(n.startswith(k) and "extrapolated," in n for n in p.notes),
            "pred": v[0],
            "low": v[1],
            "high": v[2],
            "measured": rec.get(k),
        }
        for k, v in vals.items()
    ]


def planned_set(cal: Any, demo: Pack, records: list[dict[str, Any]], tag: str) -> list[dict]:
    """Predict each record's level from its planned pairs (AD on the demo pack's scale)."""
    seeds = sorted({int(r["seed"]) for r in records})
    levels = sorted({int(r["c_p"]) for r in records})
    cache = json.loads(PLAN_CACHE.read_text()) if PLAN_CACHE.is_file() else {}
    runner = None
    rows = []
    for rec in records:
        t0 = time.perf_counter()
        key = f"{rec['c_p']}/{rec['seed']}/{cal.scale[0]:.12g}/{cal.scale[1]:.12g}"
        if key not in cache:
            if runner is None:
                runner = plan_runner(demo.config, seeds, levels)
            attack = PlannedAttack(int(rec["c_p"]), int(rec["seed"]))
            pairs = planned_pairs(attack, demo.config, cal.scale, runner=runner)
            cache[key] = alignment_difficulty(pairs.image, pairs.text, scale=cal.scale).ad
            PLAN_CACHE.parent.mkdir(exist_ok=True)
            PLAN_CACHE.write_text(json.dumps(cache))
        ad = float(cache[key])
        rows += predict_rows(cal, ad, rec, tag)
        print(
            f"  {tag} C_P={rec['c_p']} seed {rec['seed']}: AD {ad:.4f} "
            f"({time.perf_counter() - t0:.1f} s, load {load()[0]})",
            flush=True,
        )
    return rows


def loso(demo: Pack) -> list[dict[str, Any]]:
    """Leave one seed out of the demo pack: fit on the others, predict its records."""
    rows = []
    seeds = sorted({int(r["seed"]) for r in demo.records})
    for s in seeds:
        train = [r for r in demo.records if int(r["seed"]) != s]
        sub = Pack(demo.root, {**demo.results, "records": train})
        cal = fit_calibration([sub])
        for rec in (r for r in demo.records if int(r["seed"]) == s):
            rows += predict_rows(cal, float(rec["ad"]), rec, f"demo LOSO seed {s}")
    return rows


def early(demo: Pack) -> list[dict[str, Any]]:
    """Per probe step: r and leave-one-level-out MAE of final acc_unpoisoned ~ probe AD."""
    tr = demo.training or {}
    seed0 = int(demo.config["seeds"][0])
    final = {
        int(r["c_p"]): r["acc_unpoisoned"]
        for r in demo.records
        if int(r["seed"]) == seed0 and r["acc_unpoisoned"] is not None
    }
    pair_ad = {int(r["c_p"]): r["ad"] for r in demo.records if int(r["seed"]) == seed0}
    levels = [c for c in sorted(final) if str(c) in tr]
    y = np.array([final[c] for c in levels])

    def fit_stats(x: np.ndarray) -> tuple[float, float]:
        r = float(np.corrcoef(x, y)[0, 1])
        errs = []
        for i in range(len(x)):
            m = np.ones(len(x), bool)
            m[i] = False
            coef = np.polyfit(x[m], y[m], 1)
            errs.append(abs(np.polyval(coef, x[i]) - y[i]))
        return r, float(np.mean(errs))

    out = []
    r, mae = fit_stats(np.array([pair_ad[c] for c in levels]))
    out.append({"step": "before training (training pairs' AD)", "r": r, "loo_mae": mae})
    steps = tr[str(levels[0])]["probe"]["step"]
    for k, step in enumerate(steps):
        x = np.array([tr[str(c)]["probe"]["ad"][k] for c in levels])
        r, mae = fit_stats(x)
        out.append({"step": int(step), "r": r, "loo_mae": mae})
    return out


def write_random_npz(path: Path, n: int, d: int, k: int = 32, chunk: int = 65_536) -> None:
    """n pairs (image = text concept centre + noise, K concepts) streamed into an uncompressed
    npz, as ``np.savez`` lays it out, without holding the arrays: noise is one (chunk, d) block
    reused with a random row shift per chunk (the numbers only have to look like embeddings)."""
    import zipfile

    rng = np.random.default_rng(0)
    centres = 2 * rng.standard_normal((k, d), dtype=np.float32)
    noise = rng.standard_normal((chunk, d), dtype=np.float32)
    lab = rng.integers(0, k, n)
    tmp = path.with_name(path.name + ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key, sign in (("image", 1.0), ("text", -1.0)):
            with zf.open(f"{key}.npy", "w", force_zip64=True) as fh:
                header = {"descr": "<f4", "fortran_order": False, "shape": (n, d)}
                np.lib.format.write_array_header_1_0(fh, header)
                for a in range(0, n, chunk):
                    b = min(n, a + chunk)
                    block = np.roll(noise, int(rng.integers(chunk)), axis=0)[: b - a]
                    fh.write((centres[lab[a:b]] + sign * block).astype("<f4").tobytes())
        with zf.open("caption_concept.npy", "w", force_zip64=True) as fh:
            np.lib.format.write_array(fh, lab)
    tmp.replace(path)


def scale_run(n: int, d: int, where: Path) -> dict[str, Any]:
    """Write n random pairs (K = 32 concepts) once, then time `implosion audit --embeddings`."""
    path = where / f"pairs_{n}_{d}.npz"
    if not path.is_file():
        write_random_npz(path, n, d)
    walls, loads = [], []
    for _ in range(2):  # the first read may still go to disk; the second is warm
        before = load()
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "core.cli", "audit", "--embeddings", str(path), "--json",
             "--no-scale"],
            cwd=ROOT, capture_output=True, text=True, check=True,
        )  # fmt: skip
        walls.append(round(time.perf_counter() - t0, 1))
        loads.append([before, load()])
    rep = json.loads(proc.stdout)
    return {
        "n": n,
        "d": d,
        "file_gb": round(path.stat().st_size / 1e9, 2),
        "wall_s": walls,
        "load_before_after": loads,
        "ad": rep["ad"],
        "ad_ci": rep.get("ci", {}).get("ad"),
        "detectors": rep["detectors"],
        "cpus": os.cpu_count(),
    }


def _inside(r: dict[str, Any]) -> str:
    if r["pred"] is None or r["measured"] is None:
        return "refused" if r["measured"] is not None else "—"
    return "yes" if r["low"] <= r["measured"] <= r["high"] else "**no**"


def fmt(v: Any, p: int = 3) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.{p}f}"
    return str(v)


def write(res: dict[str, Any]) -> None:
    cal = res["calibration"]
    lines = [
        "# AD audit: validation and scale",
        "",
        f"Command: `python bench/audit.py` ({res['when']}; 2 shared CPU cores, no GPU).",
        "",
        "## Calibration (fitted on the demo pack)",
        "",
        f"Model `{cal['model']}`, packs {cal['fitted_on']}, seeds {cal['seeds']}, AD scale "
        f"{[round(v, 4) for v in cal['scale']]}; 90 % split-conformal intervals with "
        "leave-one-seed-out residuals (core/audit/calibration.py).",
        "",
        "| outcome | degree | fitted AD range | margin | records | LOSO MAE | k |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, f in cal["fits"].items():
        lines.append(
            f"| {name} | {f['degree']} | [{f['ad_range'][0]:.3f}, {f['ad_range'][1]:.3f}] | "
            f"{f['margin']:.3f} | {f['records']} | {f['loso_mae']:.3f} | {f['k']:.2f} |"
        )
    lines += [
        "",
        "## Predicting seeds the calibration never saw",
        "",
        "Each level's pairs are planned (`implosion audit --plan` path: the sweep's own pair "
        "builder, AD on the demo pack's scale) and the prediction compared with what the sweep "
        "measured after training.",
        "",
        "| held-out set | outcome | measured | predicted | refused | inside 90 % interval | "
        "coverage | MAE |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for tag, sc in res["scores"].items():
        for name, s in sc.items():
            lines.append(
                f"| {tag} | {name} | {s['measured']} | {s['predicted']} | {s['refused']} | "
                f"{s['inside']} | {fmt(s['coverage'] and 100 * s['coverage'], 0)} % | "
                f"{fmt(s['mae'])} |"
            )
    lines += [
        "",
        "Per level (planned AD vs the AD the sweep recorded on its own scale; prediction "
        "[interval] vs measured):",
        "",
        "| set | C_P | seed | AD plan | AD recorded | outcome | predicted | interval | measured |"
        " inside |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res["rows"]:
        if r["set"].startswith("demo LOSO"):
            continue
        lines.append(
            f"| {r['set']} | {r['c_p']} | {r['seed']} | {fmt(r['ad_plan'], 4)} | "
            f"{fmt(r['ad_recorded'], 4)} | {r['outcome']} | {fmt(r['pred'])} | "
            f"[{fmt(r['low'])}, {fmt(r['high'])}]{' (extrapolated)' if r['extrapolated'] else ''}"
            f" | {fmt(r['measured'])} | {_inside(r)} |"
        )
    lines += [
        "",
        "Coverage by level, all new seeds together (C_P 0 is the clean fine-tune: accuracy 1.000 "
        "is easy to predict; the poisoned levels are the test):",
        "",
        "| C_P | outcome | predicted | inside | MAE |",
        "|---|---|---|---|---|",
    ]
    new = [r for r in res["rows"] if not r["set"].startswith("demo LOSO")]
    for c in sorted({r["c_p"] for r in new}):
        for name, sc in score([r for r in new if r["c_p"] == c]).items():
            if sc["predicted"]:
                lines.append(
                    f"| {c} | {name} | {sc['predicted']} | {sc['inside']} | {fmt(sc['mae'])} |"
                )
    lines += [
        "",
        "## How early AD predicts the outcome (demo pack, seed 0, levels with unpoisoned concepts)",
        "",
        "Final unpoisoned accuracy vs AD: the training pairs' AD (known before training) and the "
        "AD of the model's own generations at each probe step. r: Pearson over levels; LOO MAE: "
        "leave-one-level-out error of a line.",
        "",
        "| step | r | LOO MAE |",
        "|---|---|---|",
    ]
    for e in res["early"]:
        r = "— (the same base model at every level)" if math.isnan(e["r"]) else f"{e['r']:+.3f}"
        lines.append(f"| {e['step']} | {r} | {e['loo_mae']:.3f} |")
    if res.get("scale"):
        s = res["scale"]
        lines += [
            "",
            "## Scale",
            "",
            f"`implosion audit --embeddings FILE --json --no-scale` on n = {s['n']:,} pairs, "
            f"d = {s['d']}, K = 32 ({s['file_gb']} GB uncompressed npz, memory-mapped), run "
            f"twice: **{' s and '.join(str(w) for w in s['wall_s'])} s** wall, load (1, 5, 15 "
            f"min) before/after each {s['load_before_after']}, {s['cpus']} CPUs. "
            f"AD {s['ad']:.4f}, 95 % CI "
            f"{[round(v, 4) for v in (s['ad_ci'] or [])]}; detectors {s['detectors']}.",
        ]
    lines += ["", "## Notes", "", *res["notes"], ""]
    OUT_MD.write_text("\n".join(lines))
    OUT_JSON.write_text(json.dumps(res, indent=1, default=float))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--holdout", type=Path, default=ROOT / "build" / "audit_holdout")
    ap.add_argument("--scale-n", type=int, default=1_000_000)
    ap.add_argument("--scale-d", type=int, default=64)
    ap.add_argument("--scale-dir", type=Path, default=Path("/tmp/audit_scale"))
    ap.add_argument("--skip-scale", action="store_true")
    ap.add_argument("--skip-plans", action="store_true")
    args = ap.parse_args()
    demo = load_pack(ROOT / "assets" / "demo")
    cal = fit_calibration([demo])
    rows: list[dict[str, Any]] = []
    notes: list[str] = [
        "- The calibration sees only AD: one number per level. Every held-out level was planned "
        "and its AD computed before looking at the measured outcome; the sweeps that measured "
        "them ran before this bench (seeds 7–16: the bleed-through check of "
        "bench/results/science.md; seeds 20–22: the command above).",
        "- Seeds 7–16 cover C_P 0 and 4 only: C_P 0 is the clean fine-tune (accuracy 1.000), so "
        "the informative held-out points are the ten at C_P 4. Heavier poison (C_P 8–24) on "
        "seeds the fit never saw is tested only by leave-one-seed-out inside the demo pack: the "
        "cpu-quick sweep on seeds 20–22 finished its C_P 0 level only (below).",
        "- Early prediction: the training pairs' AD, known before step 0, predicts the final "
        "unpoisoned accuracy about as well as the AD of the model's own generations does at "
        "step 30–60 of the 60-step fine-tune, and better than at step 10–20 (one seed, 7 levels).",
        "- An interval is `ŷ ± k·s(AD)` (90 % split-conformal, normalised by a spread that grows "
        "with AD); clean levels get narrow intervals (~±0.01) because the fitted seeds' clean "
        "accuracy never moved off 1.000.",
    ]
    if not args.skip_plans:
        bleed = json.loads(BLEED.read_text())
        rows += planned_set(cal, demo, bleed["records"], "seeds 7–16 (cpu-full config)")
        hold = args.holdout / "results.json"
        if hold.is_file():
            h = json.loads(hold.read_text())
            recs = list(h["records"])
            if recs:
                rows += planned_set(cal, demo, recs, "seeds 20–22 (cpu-quick)")
                notes.append(
                    "- Held-out sweep command: `nice -n 10 implosion sweep --preset cpu-quick "
                    "--seeds 20 21 22 --out build/audit_holdout`, started once at 23:20 UTC on a "
                    "machine at load 13–28 (other sessions' tests and benches; 6 min 36 s for the "
                    "whole sweep at load 2–4 per the README); its first level took 34 min and "
                    "the 1-hour `timeout` it was wrapped in ended it during the second."
                )
                notes.append(
                    f"- cpu-quick held-out sweep: {len(recs)} of "
                    f"{len(h['config']['levels']) * len(h['config']['seeds'])} levels finished "
                    f"when the bench ran (complete: {h.get('complete')})."
                )
        else:
            notes.append(f"- no cpu-quick held-out sweep at {args.holdout}.")
    rows += loso(demo)
    sets = sorted({r["set"] for r in rows if not r["set"].startswith("demo LOSO")})
    scores = {t: score([r for r in rows if r["set"] == t]) for t in sets}
    scores["demo pack, leave one seed out"] = score(
        [r for r in rows if r["set"].startswith("demo LOSO")]
    )
    all_new = [r for r in rows if not r["set"].startswith("demo LOSO")]
    if all_new:
        scores["all new seeds together"] = score(all_new)
    res: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "calibration": cal.to_dict(),
        "scores": scores,
        "rows": rows,
        "early": early(demo),
        "notes": notes,
    }
    if not args.skip_scale:
        res["scale"] = scale_run(args.scale_n, args.scale_d, args.scale_dir)
    write(res)
    print(OUT_MD.read_text())


if __name__ == "__main__":
    main()
