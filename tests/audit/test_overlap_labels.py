"""The overlapping-concept circle's names never print over each other at 1280 px wide, for the
pair counts the Audit page shows (15 pairs: up to 30 concepts)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from core.audit.figures import overlap_figure
from core.world import World, WorldConfig

# The figure as the Audit page draws it in a 1280 px window: 520 px high, its y range ±1.3 sets
# the scale (the wider x range follows), 12 px text about 5.6 px a character, 14 px a line.
PX_PER_UNIT = (520 - 30 - 10 - 40) / 2.6
CHAR_PX, LINE_PX = 5.6, 14.0


def label_boxes(fig) -> list[tuple[str, float, float, float, float]]:
    """(text, x0, x1, y0, y1) in px of every text label, as Plotly places ``textposition``
    beside a marker (its radius plus a 3 px pad) or beside a bare text point."""
    boxes = []
    for t in fig.data:
        if not t.mode or "text" not in t.mode or t.text is None:
            continue
        sizes = t.marker.size if "markers" in t.mode else 0
        for i, text in enumerate(t.text):
            pos = t.textposition if isinstance(t.textposition, str) else t.textposition[i]
            vert, horiz = pos.split()
            size = sizes[i] if isinstance(sizes, tuple | list) else (sizes or 0)
            off = size / 2 + 3
            x, y = t.x[i] * PX_PER_UNIT, t.y[i] * PX_PER_UNIT
            w = len(text) * CHAR_PX
            x0 = {"left": x - off - w, "right": x + off, "center": x - w / 2}[horiz]
            y0 = {"top": y + off, "bottom": y - off - LINE_PX, "middle": y - LINE_PX / 2}[vert]
            boxes.append((text, x0, x0 + w, y0, y0 + LINE_PX))
    return boxes


def overlapping_labels(fig) -> list[tuple[str, str]]:
    b = label_boxes(fig)
    return [
        (p[0], q[0])
        for i, p in enumerate(b)
        for q in b[i + 1 :]
        if p[1] < q[2] and q[1] < p[2] and p[3] < q[4] and q[3] < p[4]
    ]


def report(n_concepts: int, n_pairs: int = 15):
    """A report with ``n_pairs`` overlapping pairs covering ``n_concepts`` concepts of the world
    (the figure reads only the pairs and each concept's AD share)."""
    names = World(WorldConfig(n_concepts=32)).names
    ids = list(range(n_concepts))
    pairs = [(2 * k % n_concepts, (2 * k + 1) % n_concepts) for k in range(n_pairs)]
    overlapping = [
        SimpleNamespace(a=a, b=b, names=(names[a], names[b]), disagreement=0.1 + 0.01 * k,
                        image_sim=0.5 if k % 2 else 0.2, text_sim=0.3)
        for k, (a, b) in enumerate(pairs)
    ]  # fmt: skip
    concepts = [SimpleNamespace(concept=c, share=0.09 if c % 3 == 0 else 0.02) for c in ids]
    return SimpleNamespace(overlapping=overlapping, concepts=concepts)


@pytest.mark.parametrize("n_concepts", [6, 12, 15, 20, 30])
def test_no_two_concept_names_overlap(n_concepts):
    fig = overlap_figure(report(n_concepts))  # type: ignore[arg-type]
    shown = sorted(t for trace in fig.data if trace.text for t in trace.text)
    assert len(shown) == n_concepts  # every concept named once
    assert not overlapping_labels(fig)
    for _, _, _, y0, y1 in label_boxes(fig):  # inside the y range ±1.3
        assert -1.3 * PX_PER_UNIT <= y0 and y1 <= 1.3 * PX_PER_UNIT
