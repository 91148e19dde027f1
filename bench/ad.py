"""Benchmark: blocked exact AD engine vs an authors'-style row-by-row loop, plus the sampled estimate.

    python3 bench/ad.py                                  # n=20,000, d=512, CPU (a few minutes)
    python3 bench/ad.py --device cuda --n 1000000        # the GPU case (target ≤ 30 s)

Same seeded inputs in the same run for both. The baseline mirrors the released code: for each row i,
cosines of row i with all rows in both graphs, sum of |difference| (numpy on CPU, torch on CUDA).
It runs on a uniformly random subset of rows for at most ``--baseline-seconds`` and is extrapolated
linearly (every row costs the same O(n·d)); ``--baseline-seconds 0`` runs every row. Agreement is
checked row by row against the engine's per-pair structure sums. Writes ``bench/results/ad.json``
and ``ad.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.io import atomic_write_bytes, atomic_write_json, run_metadata  # noqa: E402
from core.metrics import _engine, alignment_difficulty, pair_contributions  # noqa: E402
from core.metrics.sampled import sample_d_stru  # noqa: E402

H200_FP32_TFLOPS = 67.0  # NVIDIA H200 SXM datasheet, FP32 without tensor cores (also FP64 TC)
RESULTS = Path(__file__).resolve().parent / "results"


def make_pairs(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded float32 pairs; text = image + noise so both graphs are correlated but not equal."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d), dtype=np.float32)
    y = x + 1.5 * rng.standard_normal((n, d), dtype=np.float32)
    return x, y


def baseline_rows(
    x: np.ndarray, y: np.ndarray, budget_s: float, device: str, seed: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """Authors'-style loop over rows (random order) until ``budget_s``: returns rows, row sums
    Σ_{j≠i} |cos(x_i,x_j) − cos(y_i,y_j)|, and seconds spent in the loop."""
    order = np.random.default_rng(seed).permutation(len(x))
    sums: list[float] = []
    if device == "cuda":  # the released code's setting: torch fp32 on the GPU
        xt = torch.nn.functional.normalize(torch.from_numpy(x).cuda(), dim=1)
        yt = torch.nn.functional.normalize(torch.from_numpy(y).cuda(), dim=1)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for i in order:
            diff = (xt @ xt[i] - yt @ yt[i]).abs_()
            diff[i] = 0
            sums.append(float(diff.sum(dtype=torch.float64)))
            if budget_s and time.perf_counter() - t0 > budget_s:
                break
    else:
        xn = x / np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)
        yn = y / np.linalg.norm(y.astype(np.float64), axis=1, keepdims=True)
        t0 = time.perf_counter()
        for i in order:
            diff = np.abs(xn @ xn[i] - yn @ yn[i])
            diff[i] = 0.0
            sums.append(float(diff.sum()))
            if budget_s and time.perf_counter() - t0 > budget_s:
                break
    elapsed = time.perf_counter() - t0
    return order[: len(sums)], np.asarray(sums), elapsed


def gemm_flops(n: int, d: int, block: int) -> float:
    """FLOPs of the upper-triangular blocked kernel: Σ_{I≤J} 2·|I|·|J|·2d."""
    sizes = [b - a for a, b in _engine.block_ranges(n, block)]
    return sum(4.0 * d * si * sj for k, si in enumerate(sizes) for sj in sizes[k:])


def sampled_case(n: int, d: int, samples: int, seed: int, device: str) -> dict:
    """Sampled D_stru at large n on memmapped inputs (generated block by block on disk)."""
    with tempfile.TemporaryDirectory(prefix="ad-bench-") as tmp:
        mx = np.lib.format.open_memmap(f"{tmp}/x.npy", "w+", np.float32, (n, d))
        my = np.lib.format.open_memmap(f"{tmp}/y.npy", "w+", np.float32, (n, d))
        for k, a in enumerate(range(0, n, 65536)):
            b = min(a + 65536, n)
            mx[a:b], my[a:b] = make_pairs(b - a, d, seed + 1 + k)
        mx.flush()
        my.flush()
        x = np.load(f"{tmp}/x.npy", mmap_mode="r")
        y = np.load(f"{tmp}/y.npy", mmap_mode="r")
        dev = torch.device(device)
        t0 = time.perf_counter()
        res = alignment_difficulty(x, y, sample=samples, seed=seed, device=device)
        total_s = time.perf_counter() - t0
        src = _engine.check_pairs(x, y)
        with _engine.compute_context():
            prep = _engine.Prepared(src, dev, torch.float64, _engine.default_block(dev), False)
            t0 = time.perf_counter()
            stru = sample_d_stru(prep, samples, seed)
            stru_s = time.perf_counter() - t0
        del x, y, mx, my, prep, src
    half = (stru.ci[1] - stru.ci[0]) / 2
    return {
        "n": n,
        "d": d,
        "samples": samples,
        "d_stru_estimate": stru.estimate,
        "ci95": list(stru.ci),
        "ci_half_width_rel": half / stru.estimate,
        "sample_seconds": stru_s,
        "total_seconds_incl_exact_d_fea": total_s,
        "ad": res.ad,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=int, default=20_000)
    p.add_argument("--d", type=int, default=512)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--block", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--baseline-seconds", type=float, default=30.0, help="0 = every row")
    p.add_argument("--sample-n", type=int, default=1_000_000, help="n of the sampled case; 0=skip")
    p.add_argument("--samples", type=int, default=25_000, help="pairs (≈ ±1 %% CI)")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device available")
    dev = torch.device(args.device)
    block = args.block or _engine.default_block(dev)
    threads = os.cpu_count() or 1
    load_before = os.getloadavg()

    x, y = make_pairs(args.n, args.d, args.seed)
    alignment_difficulty(x[:256], y[:256], device=args.device)  # warm-up (threads, CUDA init)
    t0 = time.perf_counter()
    res = alignment_difficulty(x, y, block=block, device=args.device)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    engine_s = time.perf_counter() - t0
    flops = gemm_flops(args.n, args.d, block)
    print(f"engine: {engine_s:.2f} s  AD={res.ad:.6f}  D_stru={res.d_stru:.9f}", flush=True)

    load_baseline = os.getloadavg()
    rows, sums, loop_s = baseline_rows(x, y, args.baseline_seconds, args.device, args.seed)
    baseline_s = loop_s * args.n / len(rows)
    full = len(rows) == args.n
    print(f"baseline: {len(rows)} rows in {loop_s:.1f} s → {baseline_s:.1f} s for n", flush=True)

    pc = pair_contributions(x, y, block=block, device=args.device)
    engine_rows = pc.structure[rows] * args.n**2
    rel_err = float(np.max(np.abs(engine_rows - sums) / np.abs(sums)))
    tol = 1e-9 if dev.type == "cpu" else 1e-5
    total_err = abs(pc.result.d_stru - res.d_stru) / res.d_stru
    if full:
        total_err = max(total_err, abs(sums.sum() / args.n**2 - res.d_stru) / res.d_stru)
    agree = rel_err < tol and total_err < tol
    print(f"agreement: max rel err {rel_err:.2e} over {len(rows)} rows (tol {tol:g}): {agree}")

    sampled = None
    if args.sample_n:
        sampled = sampled_case(args.sample_n, args.d, args.samples, args.seed, args.device)
        print(
            f"sampled n={args.sample_n:,}: {sampled['sample_seconds']:.2f} s, CI ±"
            f"{100 * sampled['ci_half_width_rel']:.2f} %"
        )

    gflops = flops / engine_s / 1e9
    big_flops = gemm_flops(1_000_000, args.d, _engine.DEFAULT_BLOCK_CUDA)
    proj = {f"{f:.0%} of peak": big_flops / (f * H200_FP32_TFLOPS * 1e12) for f in (0.5, 0.7)}
    report = {
        "n": args.n,
        "d": args.d,
        "device": str(dev) + (f" ({torch.cuda.get_device_name()})" if dev.type == "cuda" else ""),
        "threads": threads,
        "block": block,
        "engine_seconds": engine_s,
        "engine_gflops": gflops,
        "baseline_seconds": baseline_s,
        "baseline_rows_timed": int(len(rows)),
        "baseline_extrapolated": not full,
        "speedup": baseline_s / engine_s,
        "agree": agree,
        "max_rel_err_rows": rel_err,
        "ad": res.ad,
        "d_fea": res.d_fea,
        "d_stru": res.d_stru,
        "sampled": sampled,
        "projection_cuda_n1e6_seconds": proj,
        "load_avg_before": list(load_before),
        "load_avg_before_baseline": list(load_baseline),
        "baseline_ms_per_row": 1000 * loop_s / len(rows),
        "meta": run_metadata(args.seed),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / "ad.json", report)
    md = render_md(report, big_flops)
    atomic_write_bytes(args.out / "ad.md", md.encode())
    print(md)
    return 0 if agree else 1


def render_md(r: dict, big_flops: float) -> str:
    how = (
        f"extrapolated from {r['baseline_rows_timed']:,} timed rows"
        if r["baseline_extrapolated"]
        else "all rows"
    )
    lines = [
        "# AD benchmark",
        "",
        f"n = {r['n']:,}, d = {r['d']}, device {r['device']}, {r['threads']} threads, "
        f"block {r['block']}, seeded random float32 embeddings (`python3 bench/ad.py`).",
        "",
        "| method | seconds | speedup |",
        "|---|---|---|",
        f"| row-by-row loop (authors' style; {how}) | {r['baseline_seconds']:.1f} | 1.0× |",
        f"| blocked exact engine (float64, symmetric blocks) | {r['engine_seconds']:.2f} | "
        f"{r['speedup']:.1f}× |",
        "",
        f"Agreement: {'yes' if r['agree'] else 'NO'} (max relative difference of per-row sums "
        f"{r['max_rel_err_rows']:.1e}). AD = {r['ad']:.6f}, D_fea = {r['d_fea']:.6f}, "
        f"D_stru = {r['d_stru']:.9f}. Engine rate {r['engine_gflops']:.0f} GFLOP/s.",
        "",
        f"Load average (1/5/15 min) before the engine: "
        f"{', '.join(f'{v:.2f}' for v in r['load_avg_before'])}; before the baseline: "
        f"{', '.join(f'{v:.2f}' for v in r['load_avg_before_baseline'])}. This 2-core machine "
        "is shared with a training job, so both timings include contention; the row loop "
        f"({r['baseline_ms_per_row']:.0f} ms/row) is memory-bound and suffers most from it, so "
        "the speedup varies between runs.",
    ]
    s = r["sampled"]
    if s:
        lines += [
            "",
            f"Sampled estimate at n = {s['n']:,} (memmapped, d = {s['d']}): {s['samples']:,} pairs "
            f"in {s['sample_seconds']:.2f} s, 95 % CI ±{100 * s['ci_half_width_rel']:.2f} % "
            f"(D_stru ≈ {s['d_stru_estimate']:.6f}); with the exact O(n·d) D_fea pass "
            f"{s['total_seconds_incl_exact_d_fea']:.1f} s in total.",
        ]
    p = r["projection_cuda_n1e6_seconds"]
    lines += [
        "",
        "## GPU case (n = 1,000,000): projection, not a measurement",
        "",
        f"Run it with `python3 bench/ad.py --device cuda --n 1000000`. The kernel needs "
        f"{big_flops / 1e15:.2f} PFLOP at n = 10⁶, d = {r['d']} (upper-triangular 8192-row blocks, "
        f"one 2d-wide matmul per block). On this CPU it sustained {r['engine_gflops']:.0f} GFLOP/s "
        f"(≈ {big_flops / (r['engine_gflops'] * 1e9) / 3600:.1f} h at n = 10⁶). An H200 offers "
        f"{H200_FP32_TFLOPS:.0f} TFLOP/s in true fp32 (TF32 disabled) and in fp64: at 50–70 % of "
        f"peak that is **{p['70% of peak']:.0f}–{p['50% of peak']:.0f} s (projected)**, plus "
        "~2 s of memory traffic for |ΔG| and the host→device copy.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
