"""``implosion audit``: the AD audit of a dataset or a planned attack, before any training.

    implosion audit --plan --c-p N --seed S [--method dirty-label|nightshade] [--concepts …]
    implosion audit --dataset DIR | --manifest FILE | --embeddings FILE.npz | --pack P --level C_P
                    [--json] [--graphml FILE] [--csv FILE] [--calibrate-on PACK …]

``--json`` prints one line: ``ad, feature, structure, n, concepts, overlapping, flagged,
prediction`` (``{"acc_unpoisoned", "low", "high", "incoherence", "model", "fitted_on", …}`` or
null where no calibration applies), see core/audit/result.py.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

from core.commands._args import seed as seed_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "audit",
        help="AD audit of a dataset or a planned attack: health, overlaps, flagged pairs, forecast",
        description=(
            "How hard the pairs are to align (AD, D_fea, D_stru), which concepts collide, which "
            "pairs look poisoned, and the fine-tune's predicted unpoisoned accuracy and "
            "incoherence with intervals, from a calibration fitted on the model's sweeps."
        ),
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--plan", action="store_true", help="a planned poisoning of the base's data")
    src.add_argument("--dataset", metavar="DIR", help="folder of images with same-name .txt")
    src.add_argument("--manifest", metavar="FILE", help=".jsonl/.csv/.parquet: image, caption")
    src.add_argument("--embeddings", metavar="FILE.npz", help="npz with image, text (n×d)")
    src.add_argument("--pack", metavar="PACK", help="results pack (folder or name, e.g. demo)")
    p.add_argument("--level", type=int, default=None, help="with --pack: the C_P level")
    p.add_argument("--c-p", type=int, default=None, help="with --plan: poisoned concepts")
    p.add_argument("--seed", type=seed_arg, default=None, help="with --plan: the seed")
    p.add_argument(
        "--method", default="dirty-label", choices=["dirty-label", "nightshade"], help="poison"
    )
    p.add_argument(
        "--concepts", nargs="+", default=None, help="with --plan: concepts to poison (names/ids)"
    )
    p.add_argument("--epsilon", type=float, default=16 / 255, help="Nightshade L∞ bound")
    p.add_argument("--pgd-steps", type=int, default=60, help="Nightshade PGD steps")
    p.add_argument("--model", default=None, help="mini model folder (default: shipped base)")
    p.add_argument("--clip", default=None, help="local CLIP folder for real images")
    p.add_argument(
        "--calibrate-on", nargs="+", default=None, metavar="PACK", help="packs to calibrate on"
    )
    p.add_argument("--labels", default=None, help="with --embeddings: npz key of concept ids")
    scale = p.add_mutually_exclusive_group()
    scale.add_argument("--scale", nargs=2, type=float, metavar=("LO", "HI"), default=None)
    scale.add_argument("--no-scale", action="store_true", help="raw matched cosines")
    p.add_argument("--top", type=int, default=50, help="flagged pairs / overlaps listed (50)")
    p.add_argument("--graphml", type=Path, default=None, help="write the alignment graph")
    p.add_argument("--csv", type=Path, default=None, help="write the flagged pairs")
    p.add_argument("--json", action="store_true", help="print one JSON line")
    p.set_defaults(func=run)


def request_from(args: argparse.Namespace) -> Any:
    """The AuditRequest of the parsed arguments (ValueError naming the flag)."""
    from core.audit.plan import PlannedAttack, resolve_plan_concepts
    from core.audit.request import AuditRequest

    attack = None
    if args.plan:
        if args.c_p is None and args.concepts is None:
            raise ValueError("--c-p: --plan needs the number of poisoned concepts, e.g. --c-p 8")
        if args.seed is None:
            raise ValueError("--seed: --plan needs the seed of the poisoning plan, e.g. --seed 20")
        concepts = resolve_plan_concepts(args.concepts, args.model) if args.concepts else None
        c_p = args.c_p if args.c_p is not None else len(concepts or ())
        attack = PlannedAttack(c_p, args.seed, args.method, concepts, args.epsilon, args.pgd_steps)
    else:
        for flag, val in (
            ("--c-p", args.c_p),
            ("--seed", args.seed),
            ("--concepts", args.concepts),
        ):
            if val is not None:
                raise ValueError(f"{flag}: only with --plan")
        if args.method != "dirty-label":
            raise ValueError("--method: only with --plan")
    source = next(
        s for s in ("plan", "dataset", "manifest", "embeddings", "pack") if getattr(args, s)
    )
    path = None
    if source == "pack":
        from core.commands.defend import resolve_pack

        path = str(resolve_pack(args.pack))
    elif source != "plan":
        path = str(getattr(args, source))
    scale = None if args.no_scale else (tuple(args.scale) if args.scale else None)
    from core.metrics.result import CLIP_SCALE

    return AuditRequest(
        source,  # type: ignore[arg-type]
        path=path,
        level=args.level,
        attack=attack,
        model=args.model,
        clip=args.clip,
        calibrate_on=tuple(args.calibrate_on or ()),
        labels=args.labels,
        scale=scale if (args.no_scale or args.scale) else CLIP_SCALE,
        top=args.top,
        progress=True,  # a bar on stderr; stdout keeps the JSON line
    )


def _check_outputs(args: argparse.Namespace) -> None:
    for flag, path in (("--graphml", args.graphml), ("--csv", args.csv)):
        if path is None:
            continue
        if path.exists():
            raise ValueError(f"{flag}: {path} exists; choose a new file (nothing was overwritten)")
        if not path.parent.is_dir():
            raise ValueError(f"{flag}: folder {path.parent} does not exist")


def write_csv(report: Any, path: Path) -> None:
    """The flagged pairs, one row each (index, concept, caption, path, poisoned, reasons, scores)."""
    names = sorted({k for f in report.flagged for k in f.scores})
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["index", "concept", "name", "caption", "path", "poisoned", "reasons", *names])
        for f in report.flagged:
            w.writerow(
                [
                    f.index,
                    f.concept,
                    f.name,
                    f.caption or "",
                    f.path or "",
                    "" if f.poisoned is None else int(f.poisoned),
                    ";".join(f.reasons),
                    *[f"{f.scores.get(k, float('nan')):.6g}" for k in names],
                ]
            )
    tmp.replace(path)


def run(args: argparse.Namespace) -> int:
    from core.audit.request import prepare, run_audit

    req = request_from(args)
    _check_outputs(args)
    prep = prepare(req)  # every check that needs no embedding, before any work
    audit = run_audit(prep)
    report = audit.report()
    if args.graphml is not None:
        from core.audit.graph import write_graphml

        write_graphml(audit, args.graphml)
    if args.csv is not None:
        write_csv(report, args.csv)
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        print(format_report(report))
    return 0


def _fmt(v: float | None, p: int = 3) -> str:
    return "—" if v is None else f"{v:.{p}f}"


def format_report(report: Any) -> str:
    """Human-readable summary of an AuditReport."""
    h = report.health
    lines = [
        f"AD audit of {report.source}",
        f"  health: AD {h.ad:.4f} = {h.alpha:g}·D_fea {h.d_fea:.4f} + {1 - h.alpha:g}·D_stru "
        f"{h.d_stru:.4f}   n={h.n:,}",
    ]
    if h.ci is not None:
        lo, hi = h.ci["ad"]
        lines.append(f"  95% CI on AD [{lo:.4f}, {hi:.4f}] ({h.ci['samples']:,} sampled pairs)")
    lines.append("  concepts with the largest AD share:")
    for c in report.concepts[:5]:
        lines.append(f"    {c.name:<28}{c.n:>7} pairs  AD share {c.share:6.1%}")
    if report.overlapping:
        lines.append("  overlapping concepts (image vs caption similarity disagree most):")
        for o in report.overlapping[:5]:
            lines.append(
                f"    {o.names[0]} × {o.names[1]}: |Δcos| {o.disagreement:.3f} "
                f"(image {o.image_sim:+.2f}, caption {o.text_sim:+.2f})"
            )
    lines.append(
        f"  flagged pairs: {report.flagged_total:,} of {h.n:,} ({', '.join(report.detectors)})"
    )
    if report.flag_truth:
        t = report.flag_truth
        lines.append(
            f"    vs ground truth: {t['flagged_poisoned']:,} of {t['poisoned']:,} poisoned "
            f"flagged, precision {_fmt(t['precision'], 2)}"
        )
    pr = report.prediction
    if pr is None:
        lines.append("  prediction: none")
    else:
        pct = round(100 * pr.level)
        lines.append(
            f"  prediction ({pct}% interval; {pr.model}, fitted on {', '.join(pr.fitted_on)}):"
        )
        lines.append(
            f"    unpoisoned accuracy {_fmt(pr.acc_unpoisoned)} [{_fmt(pr.low)}, {_fmt(pr.high)}]"
            f"   incoherence {_fmt(pr.incoherence)} [{_fmt(pr.incoherence_low)}, "
            f"{_fmt(pr.incoherence_high)}]"
        )
        if pr.measured:
            m = pr.measured
            lines.append(
                f"    measured (C_P={m['c_p']}, seed {m['seed']}): accuracy "
                f"{_fmt(m.get('acc_unpoisoned'))}, incoherence {_fmt(m.get('incoherence'))}"
            )
        lines += [f"    note: {n}" for n in pr.notes]
    lines += [f"  note: {n}" for n in report.notes]
    return "\n".join(lines)
