"""``implosion handout``: the lesson's printable handout (HTML, and PDF through Chromium)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    """Add ``implosion handout --out FILE.html [--pdf FILE.pdf] [--pack RUN] [--force]``."""
    p = sub.add_parser(
        "handout", help="printable lesson handout: the story at three levels, AD curve, questions"
    )
    p.add_argument("--out", required=True, help="HTML file to write (e.g. handout.html)")
    p.add_argument("--pdf", default=None, help="also print it to this PDF (needs Chromium)")
    p.add_argument("--pack", default="demo", help="run id, 'demo' (default) or a pack folder")
    p.add_argument("--force", action="store_true", help="replace existing output files")
    p.add_argument(
        "--no-curve",
        action="store_true",
        help="numbers table instead of the AD curve image (no browser needed)",
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from core.lesson.handout import write_handout
    from core.results.runs import get_run, open_run

    info = get_run(args.pack)
    pack = open_run(args.pack)
    handout, notes = write_handout(
        pack,
        Path(args.out),
        Path(args.pdf) if args.pdf else None,
        force=args.force,
        run_label=f"{info.name} ({info.id})",
        with_curve=not args.no_curve,
    )
    levels = ", ".join(str(c) for c in handout.levels)
    print(f"handout: {args.out} (C_P {levels}; {len(handout.questions)} questions)")
    for note in notes:
        print(note)
    return 0
