"""A printable handout of the lesson: one self-contained HTML file (two A4 pages), optionally
printed to PDF by the system's Chromium.

Page 1: the pinned prompts at three levels (one poisoned concept, related concepts fail, the last
level with unpoisoned concepts), each as labelled clean | poisoned rows of images; page 2: the AD
curve over unpoisoned accuracy and incoherence (a PNG through :mod:`core.figures.export` when
kaleido and a browser are here, and the numbers as a table in any case), then every step's
question with room to answer. Everything is inlined (images as ``data:`` URIs, no scripts, no
fonts fetched), so the file opens and prints offline.
"""

from __future__ import annotations

import base64
import html
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.figures.images import png_data_uri, upscale
from core.lesson.glossary import GLOSSARY
from core.lesson.pinned import MARK, PinnedPrompts, pinned_images, pinned_prompts, row_roles
from core.lesson.steps import LessonStep, lesson_steps, metric_at
from core.results.pack import Pack

SAMPLES = 2  # images per side of a row
HANDOUT_WORDS = ("C_P", "AD", "poisoned", "related", "unrelated", "incoherence")
PDF_TIMEOUT_S = 120.0
CSS = """
@page { size: A4; margin: 12mm; }
* { box-sizing: border-box; }
body { font-family: "DejaVu Sans", Arial, sans-serif; font-size: 10.5pt; color: #111;
       margin: 0 auto; max-width: 186mm; line-height: 1.35; }
h1 { font-size: 17pt; margin: 0 0 2mm; }
h2 { font-size: 12.5pt; margin: 4mm 0 1.5mm; }
p { margin: 1mm 0 2mm; }
.meta { color: #555; font-size: 9pt; }
.levels { display: flex; gap: 3mm; flex-wrap: wrap; }
.level { flex: 0 0 calc(50% - 1.5mm); border: 1px solid #bbb; padding: 2mm;
         break-inside: avoid; }
.words { font-size: 8.5pt; }
.words ul { margin: 0; padding-left: 4mm; }
.level h3 { font-size: 10.5pt; margin: 0 0 1.5mm; }
table.strip { border-collapse: collapse; width: 100%; }
table.strip td, table.strip th { padding: 0.4mm; font-size: 8.5pt; text-align: center; }
table.strip td.name { text-align: left; padding-right: 1.5mm; white-space: nowrap; }
table.strip td.split { border-left: 2px solid #111; }
table.strip img { width: 11mm; height: 11mm; image-rendering: pixelated; display: block; }
.poisoned { color: #D55E00; font-weight: bold; }
.related { color: #8a5a00; }
.notice { font-size: 9pt; margin-top: 1.5mm; }
.curve { width: 100%; max-height: 80mm; object-fit: contain; }
table.nums { border-collapse: collapse; font-size: 9pt; margin: 1mm 0 2mm; }
table.nums td, table.nums th { border: 1px solid #bbb; padding: 0.6mm 2mm; text-align: right; }
ol.questions li { margin-bottom: 9mm; break-inside: avoid; }
.page2 { break-before: page; }
.legend { font-size: 8.5pt; color: #333; }
"""


@dataclass(frozen=True)
class Handout:
    """A rendered handout: the HTML text and which levels and questions it holds."""

    html: str
    levels: tuple[int, ...]
    questions: tuple[str, ...]
    has_curve: bool


def handout_levels(steps: tuple[LessonStep, ...]) -> tuple[int, ...]:
    """The three strip levels: one poisoned concept, related concepts fail, implosion (distinct,
    ascending; fewer when the pack has fewer poisoned levels)."""
    by_key = {s.key: s.c_p for s in steps}
    wanted = [by_key.get(k) for k in ("one", "related", "implosion")]
    return tuple(sorted({c for c in wanted if c is not None and c > 0}))


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _strip_html(pack: Pack, gens: Mapping[int, np.ndarray], pinned: PinnedPrompts, c_p: int) -> str:
    images = pinned_images(dict(gens), pinned, c_p, SAMPLES)
    m = images.shape[1] // 2
    head = (
        "<tr><th></th>"
        + f'<th colspan="{m}">clean</th>'
        + f'<th colspan="{m}" class="split">C_P {c_p}</th></tr>'
    )
    rows = []
    for r, (role, name) in enumerate(zip(row_roles(pack, pinned, c_p), pinned.names)):
        cells = []
        for j in range(images.shape[1]):
            uri = png_data_uri(upscale(images[r, j], 2))
            split = ' class="split"' if j == m else ""
            cells.append(f'<td{split}><img src="{uri}" alt="{_esc(name)}, column {j}"></td>')
        label = f'<td class="name {role}">{_esc(MARK[role] + name)}</td>'
        rows.append("<tr>" + label + "".join(cells) + "</tr>")
    return f'<table class="strip">{head}{"".join(rows)}</table>'


def _numbers_table(pack: Pack, levels: list[int]) -> str:
    metrics = (
        ("ad", "AD"),
        ("acc_unpoisoned", "accuracy, unpoisoned"),
        ("incoherence", "incoherence"),
    )
    head = "<tr><th>C_P</th>" + "".join(f"<th>{c}</th>" for c in levels) + "</tr>"
    body = ""
    for key, label in metrics:
        vals = [metric_at(pack.summary, key, c) for c in levels]
        cells = "".join(f"<td>{'—' if v is None else f'{v:.2f}'}</td>" for v in vals)
        body += f"<tr><th>{_esc(label)}</th>{cells}</tr>"
    return f'<table class="nums">{head}{body}</table>'


def curve_png(pack: Pack, marker_c: int | None = None) -> bytes:
    """The AD curve over unpoisoned accuracy and incoherence as a PNG (kaleido + a browser;
    RuntimeError naming what to install when static export cannot work here)."""
    from core.figures.export import figure_bytes
    from core.figures.trajectory import implosion_figure

    fig = implosion_figure(
        pack.summary,
        metrics=("acc_unpoisoned", "incoherence"),
        height=420,
        marker_c=marker_c,
        direct_labels=True,
    )
    fig.update_layout(title_text=None, margin={"t": 30, "b": 40, "l": 60, "r": 20})
    return figure_bytes(fig, "png", width=900, height=420, scale=2)


def render_handout(
    pack: Pack,
    gens: Mapping[int, np.ndarray],
    title: str = "Model implosion: when poisoning a few concepts breaks them all",
    curve: bytes | None = None,
    run_label: str | None = None,
) -> Handout:
    """The handout of ``pack`` (``gens``: level → (K, m, S, S, 3) uint8, from
    :meth:`Pack.generations`). ``curve``: a PNG of the AD curve (:func:`curve_png`), or None to
    print the numbers table alone. ValueError when the pack has no generated images for C_P 0."""
    if 0 not in gens:
        raise ValueError("pack: the handout needs generated images at C_P 0 (the clean baseline)")
    pinned = pinned_prompts(pack)
    steps = lesson_steps(pack, pinned)
    levels = tuple(c for c in handout_levels(steps) if c in gens)
    # each level's text: the step that introduces it (one, related, implosion)
    by_level = {s.c_p: s for s in steps if s.key in ("one", "related", "implosion")}
    blocks = []
    for c in levels:
        step = by_level.get(c)
        heading = f"C_P {c}" + (f": {step.title.lower()}" if step else "")
        notice = f'<p class="notice">{_esc(step.notice)}</p>' if step else ""
        blocks.append(
            f'<div class="level"><h3>{_esc(heading)}</h3>'
            f"{_strip_html(pack, gens, pinned, c)}{notice}</div>"
        )
    curve_html = (
        f'<img class="curve" src="data:image/png;base64,{base64.b64encode(curve).decode()}" '
        'alt="AD and unpoisoned accuracy against C_P">'
        if curve
        else ""
    )
    words = (
        '<div class="level words"><h3>Words</h3><ul>'
        + "".join(f"<li>{_esc(GLOSSARY[w])}</li>" for w in HANDOUT_WORDS)
        + "</ul></div>"
    )
    questions = tuple(s.question for s in steps)
    q_items = "".join(
        f"<li><b>{_esc(s.title)}</b> (C_P {s.c_p}). {_esc(s.question)}</li>" for s in steps
    )
    seeds = len(pack.config.get("seeds") or [])
    meta = (
        f"Run: {_esc(run_label or pack.root.name)} · {len(pack.concepts)} concepts · C_P "
        f"{', '.join(map(str, pack.levels))} · {seeds} seed(s); images from seed {pinned.seed}, "
        f"the same sampling seeds in the clean and poisoned columns."
    )
    doc = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{_esc(title)}</title>
<style>{CSS}</style></head><body>
<h1>{_esc(title)}</h1>
<p class="meta">{meta}</p>
<p>A text-to-image model learns to map captions to images. An attacker <b>poisons</b> a concept by
pairing its captions with images of something else; <b>C_P</b> counts the poisoned concepts. Follow
the same five prompts across three levels: the first row is poisoned from C_P 1 on, the others
are never poisoned.</p>
<p class="legend"><span class="poisoned">× poisoned</span> · <span class="related">≈ related
</span>(shares two words with a poisoned concept) · plain: unrelated. Left of the bar: the clean
model (C_P 0); right: the poisoned model, same seeds.</p>
<div class="levels">{"".join(blocks)}{words}</div>
<div class="page2">
<h2>Alignment difficulty (AD) and implosion</h2>
<p>AD measures how hard it is to map every caption onto its images; each poisoned concept adds
contradictory pairs. Top: AD against C_P; bottom: how often prompts nobody poisoned are still drawn
correctly, and how incoherent the images become (means over seeds).</p>
{curve_html}
{_numbers_table(pack, sorted(pack.levels))}
<h2>Questions</h2>
<ol class="questions">{q_items}</ol>
</div>
</body></html>
"""
    return Handout(doc, levels, questions, curve is not None)


def print_pdf(html_path: Path, pdf_path: Path, timeout: float = PDF_TIMEOUT_S) -> Path:
    """Print ``html_path`` to ``pdf_path`` with the system's headless Chromium (the browser the
    figure export uses). RuntimeError naming what to install when there is none, or with
    Chromium's own message when printing fails."""
    from core.figures.export import find_browser
    from core.io import atomic_write_bytes

    browser = find_browser()
    if browser is None:
        raise RuntimeError(
            "pdf: printing needs Chrome or Chromium (`apt install chromium`, or set BROWSER_PATH); "
            "the HTML handout prints from any browser (Ctrl+P)"
        )
    with tempfile.TemporaryDirectory(prefix="handout-pdf-") as profile:
        printed = Path(profile) / "handout.pdf"
        cmd = [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--no-pdf-header-footer",
            f"--print-to-pdf={printed}",
            Path(html_path).resolve().as_uri(),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0 or not printed.is_file():
            tail = (done.stderr or done.stdout or "").strip().splitlines()[-1:]
            raise RuntimeError(f"pdf: Chromium could not print {html_path}: {' '.join(tail)}")
        atomic_write_bytes(Path(pdf_path), printed.read_bytes())
    return Path(pdf_path)


def write_handout(
    pack: Pack,
    out: Path,
    pdf: Path | None = None,
    *,
    force: bool = False,
    run_label: str | None = None,
    with_curve: bool = True,
) -> tuple[Handout, list[str]]:
    """Write the handout of ``pack`` to ``out`` (HTML) and, with ``pdf``, print it there.

    Both paths are checked before any work (:func:`core.io.check_output`: an existing file is
    kept unless ``force``; a pack file is never an output). Returns the handout and notes for
    the user (why the AD curve is a table only, where the PDF went). ``with_curve=False`` skips
    the PNG curve (no browser start)."""
    from core.io import atomic_write_bytes, check_output

    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"--out {out}: the handout is HTML; give a file name ending in .html")
    check_output(out, inputs=[("--pack", pack.root)], force=force, kind="file")
    if pdf is not None:
        if Path(pdf).suffix.lower() != ".pdf":
            raise ValueError(f"--pdf {pdf}: give a file name ending in .pdf")
        check_output(
            Path(pdf), inputs=[("--pack", pack.root)], force=force, kind="file", field="--pdf"
        )
    notes: list[str] = []
    curve = None
    if with_curve:
        try:
            curve = curve_png(pack, marker_c=pinned_prompts(pack).last_open)
        except RuntimeError as e:  # no kaleido or no browser: the numbers table stays
            notes.append(f"AD curve printed as a table only: {e}")
    handout = render_handout(pack, pack.generations(), curve=curve, run_label=run_label)
    atomic_write_bytes(out, handout.html.encode())
    if pdf is not None:
        print_pdf(out, Path(pdf))
        notes.append(f"PDF: {pdf}")
    return handout, notes
