"""``implosion defend``: poison detectors on a pack (ROC, AUC, recall at 1 %/5 % FPR), the
defended sweep, and the attacked-vs-defended comparison."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from core.defend.config import DETECTOR_NAMES, METHODS, REPORT_DETECTORS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "defend",
        help="detect poisoned training pairs (ROC/AUC per detector × method × C_P); defended sweep",
        description=(
            "Without --sweep/--compare: score every training pair of each poisoned level with each "
            "detector, print AUC and recall at 1 % / 5 % FPR, store them in the pack "
            "(defense.json, recomputed when other settings are asked for). --sweep: re-run the pack's sweep with the flagged pairs removed. "
            "--compare DIR: attacked vs defended AD and unpoisoned accuracy."
        ),
    )
    p.add_argument("--pack", required=True, help="pack folder or name (e.g. demo, a run id)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--detectors", nargs="+", default=list(REPORT_DETECTORS), choices=REPORT_DETECTORS
    )
    p.add_argument("--methods", nargs="+", default=["dirty-label"], choices=METHODS)
    p.add_argument("--levels", type=int, nargs="+", default=None, help="C_P values (default all)")
    p.add_argument("--epsilon", type=float, default=16 / 255, help="Nightshade L∞ bound")
    p.add_argument("--pgd-steps", type=int, default=60, help="Nightshade PGD steps")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="report file, never overwritten (default PACK/defense.json, the pack's own cache, "
        "replaced when recomputed); with --sweep the output folder "
        "(default runs/<pack>-defended-<detector>-fpr<pct>)",
    )
    p.add_argument("--sweep", action="store_true", help="run the defended sweep")
    p.add_argument("--detector", default="misalignment", choices=DETECTOR_NAMES)
    p.add_argument("--fpr", type=float, default=0.05, help="false-positive rate of the filter")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="with --sweep: seed subset")
    p.add_argument("--workers", type=int, default=1, help="with --sweep: level processes")
    p.add_argument(
        "--background", action="store_true", help="with --sweep: run as a job, print its id"
    )
    p.add_argument("--compare", type=Path, default=None, help="defended pack to compare with")
    p.set_defaults(func=_defend)


def resolve_pack(arg: str) -> Path:
    """A pack folder from a path or a name the app lists (demo, run ids)."""
    from core.results.pack import find_pack_dir, list_packs

    path = Path(arg)
    if path.exists():
        found = find_pack_dir(path)
        if found is None:
            raise ValueError(f"pack: {path} has no results.json; is it a finished sweep?")
        return found
    packs = list_packs()
    if arg in packs:
        return packs[arg]
    raise ValueError(f"pack: {arg!r} is neither a folder nor a known pack ({', '.join(packs)})")


def _defend(args: argparse.Namespace) -> int:
    from core.defend.config import DefenseConfig
    from core.defend.report import check_attack
    from core.results.pack import load_pack

    check_attack(args.epsilon, args.pgd_steps)  # before any work: --epsilon inf is one line
    pack_dir = resolve_pack(args.pack)
    if args.compare is not None:
        return _compare(pack_dir, resolve_pack(str(args.compare)), args.json)
    if args.sweep:
        defense = DefenseConfig(args.detector, args.fpr)
        return _sweep(pack_dir, defense, args)
    from core.defend.report import pack_report

    pack = load_pack(pack_dir)
    report, path, fresh = pack_report(
        pack,
        args.out,
        detectors=args.detectors,
        methods=args.methods,
        levels=args.levels,
        epsilon=args.epsilon,
        steps=args.pgd_steps,
    )
    if args.json:
        gone = report.settings.get("unavailable") or {}
        out = {"file": str(path), "computed": fresh, "rows": report.table(), "unavailable": gone}
        print(json.dumps(out, indent=1))
        return 0
    print(f"{'stored in' if fresh else 'already in'} {path}")
    print(f"{'detector':<20} {'method':<12} {'C_P':>4} {'AUC':>6} {'R@1%':>6} {'R@5%':>6}")
    for r in report.rows:
        print(
            f"{r['detector']:<20} {r['method']:<12} {r['c_p']:>4} {r['auc']:>6.3f} "
            f"{r['recall_at_1pct_fpr']:>6.3f} {r['recall_at_5pct_fpr']:>6.3f}"
        )
    for det, why in (report.settings.get("unavailable") or {}).items():
        print(f"{det}: unavailable: {why}")
    return 0


def _sweep(pack_dir: Path, defense: Any, args: argparse.Namespace) -> int:
    from core.sweep.mini.defended import DefendedSweep, run_defended_sweep, start_defended_job

    request = DefendedSweep(pack_dir, defense, args.out, args.levels, args.seeds, args.workers)
    if args.background:
        print(start_defended_job(request))
        return 0

    def progress(i: int, total: int, msg: str) -> None:
        if not args.json:
            print(f"[{i}/{total}] {msg}", flush=True)

    res, out = run_defended_sweep(request, progress)
    if not res.get("complete"):
        print(f"stopped; resume with the same command (output in {out})")
        return 1
    return _compare(pack_dir, out, args.json)


def _compare(attacked: Path, defended: Path, as_json: bool) -> int:
    from core.defend.compare import compare
    from core.results.pack import load_pack

    c = compare(load_pack(attacked), load_pack(defended))
    if as_json:
        print(json.dumps({"attacked": str(attacked), "defended": str(defended), **c.to_dict()}))
        return 0
    print(f"attacked {attacked}  vs  defended {defended}")
    print(
        f"{'C_P':>4} {'AD att':>7} {'AD def':>7} {'acc att':>8} {'acc def':>8} {'removed':>8} {'recall':>7}"
    )
    for r in c.rows:

        def f(v: Any, w: int) -> str:
            return f"{v:>{w}.3f}" if isinstance(v, float) else f"{'—':>{w}}"

        print(
            f"{r['c_p']:>4} {f(r['ad_attacked'], 7)} {f(r['ad_defended'], 7)} "
            f"{f(r['acc_unpoisoned_attacked'], 8)} {f(r['acc_unpoisoned_defended'], 8)} "
            f"{f(r['defense_removed'], 8)} {f(r['defense_recall'], 7)}"
        )
    if c.recovered is not None:
        print(
            f"C_P {c.c_recovery}: implosion gap {c.gap:.3f}, defense recovers {c.recovered:.0%} "
            f"of it (target ≥ 50 %); AD lower at every C_P ≥ 4: {c.ad_lower_from_4}"
        )
    return 0
