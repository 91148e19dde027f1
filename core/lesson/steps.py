"""The guided lesson: six steps over a results pack, each with what to notice (numbers read from
the pack), one question for students, and the figure it refers to.

The sequence: clean model → one poisoned concept → related concepts fail → many concepts:
implosion → why: AD and the graph → what a defender can do. Levels are picked from the pack (the
first poisoned level, the level ≤ :data:`RELATED_MAX_CP` where related concepts fall furthest below
unrelated ones, :func:`core.lesson.pinned.last_open_level`), and every number in the text is a mean
over the pack's seeds from ``results.json["summary"]`` (or ``defense.json`` for the last step), so a
different pack tells its own numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from core.lesson.pinned import PinnedPrompts, pinned_prompts
from core.results.pack import Pack

Figure = Literal["strip", "graph", "implosion", "ad", "defend"]
FIGURES: tuple[Figure, ...] = ("strip", "graph", "implosion", "ad", "defend")
RELATED_MAX_CP = 8  # bleed-through is a small-C_P effect: past this nearly everything is related


@dataclass(frozen=True)
class LessonStep:
    """One step of the lesson.

    ``c_p``: the level the figure shows; ``figure``: which figure (``strip`` = the pinned prompts,
    clean | this C_P; ``graph`` = the alignment graph; ``implosion`` = AD over unpoisoned accuracy
    and incoherence; ``ad`` = AD and its two terms; ``defend`` = the detectors' ROC);
    ``notice``: what to look at, with the pack's numbers; ``question``: one question for students;
    ``short``: a label of a word or two for the step picker.
    """

    key: str
    title: str
    short: str
    c_p: int
    figure: Figure
    notice: str
    question: str

    def __post_init__(self) -> None:
        if self.figure not in FIGURES:
            raise ValueError(f"figure: unknown {self.figure!r}; allowed: {', '.join(FIGURES)}")


def metric_at(summary: dict[str, Any], metric: str, c_p: int) -> float | None:
    """Mean of ``metric`` at level ``c_p`` in a pack summary, or None when not measured there."""
    s = summary.get(metric) or {}
    for c, v in zip(s.get("c_p", []), s.get("mean", [])):
        if int(c) == int(c_p):
            return None if v is None else float(v)
    return None


def level_mean(pack: Pack, metric: str, c_p: int) -> float | None:
    """Mean over seeds of ``metric`` at ``c_p``: the pack summary's, else the mean of the records
    that carry it (metrics the summary does not aggregate, e.g. ``incoherence_unpoisoned``)."""
    v = metric_at(pack.summary, metric, c_p)
    if v is not None:
        return v
    vals = [
        float(r[metric])
        for r in pack.records
        if int(r["c_p"]) == int(c_p) and r.get(metric) is not None
    ]
    return sum(vals) / len(vals) if vals else None


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{v:.0%}"


def _num(v: float | None, digits: int = 2) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def related_level(pack: Pack) -> int | None:
    """The poisoned level ≤ :data:`RELATED_MAX_CP` where related concepts' mean accuracy falls
    furthest below unrelated ones' (None when the pack measures neither)."""
    best: tuple[float, int] | None = None
    for c in pack.levels:
        if not 0 < c <= RELATED_MAX_CP:
            continue
        r, u = (
            metric_at(pack.summary, "acc_related", c),
            metric_at(pack.summary, "acc_unrelated", c),
        )
        if r is not None and u is not None and (best is None or u - r > best[0]):
            best = (u - r, c)
    return best[1] if best else None


def defense_summary(pack: Pack) -> str | None:
    """One sentence on the pack's stored detector evaluation (``defense.json``), or None."""
    from core.defend.report import DEFENSE, load_report

    try:
        report = load_report(pack.root / DEFENSE)
    except (OSError, ValueError, KeyError):
        return None
    if report is None:
        return None
    parts = []
    for method, label in (("dirty-label", "dirty-label pairs"), ("nightshade", "Nightshade-style")):
        best = report.best(method)
        if best:
            names = [d.replace("_", " ") for d in best.get("tied") or [best["detector"]]]
            which = (
                f"the best detector ({names[0]}) reaches"
                if len(names) == 1
                else f"the best detectors ({' and '.join(names)}, tied) reach"
            )
            parts.append(
                f"on {label} {which} "
                f"mean ROC AUC {best['mean_auc']:.2f} (worst level {best['min_auc']:.2f})"
            )
    return "; ".join(parts) if parts else None


def lesson_steps(pack: Pack, pinned: PinnedPrompts | None = None) -> tuple[LessonStep, ...]:
    """The lesson over ``pack`` (see module docstring). ValueError when the pack has no level."""
    pinned = pinned or pinned_prompts(pack)
    s = pack.summary
    levels = sorted(pack.levels)
    if not levels:
        raise ValueError("pack: no C_P level; the lesson needs a sweep's results")
    clean = 0 if 0 in levels else levels[0]
    one = next((c for c in levels if c > 0), clean)
    last = pinned.last_open
    rel = related_level(pack) or one
    poisoned = pinned.names[0] if pinned.role[:1] == ("poisoned",) else "the first poisoned concept"
    followed = ", ".join(f"“{n}”" for n, r in zip(pinned.names, pinned.role) if r != "poisoned")
    a0, a_last = metric_at(s, "acc_unpoisoned", clean), metric_at(s, "acc_unpoisoned", last)
    ad0, ad1, ad_last = (metric_at(s, "ad", c) for c in (clean, one, last))
    ad_top = metric_at(s, "ad", levels[-1])
    inc_key = (
        "incoherence_unpoisoned"
        if level_mean(pack, "incoherence_unpoisoned", last) is not None
        else "incoherence"
    )
    inc0, inc_last = level_mean(pack, inc_key, clean), level_mean(pack, inc_key, last)
    fold = f"{inc_last / inc0:.0f}×" if inc0 and inc_last is not None else "—"
    rel_groups = pack.groups(rel)
    ads = [metric_at(s, "ad", c) for c in levels]
    rising = all(a is not None and b is not None and b > a for a, b in zip(ads, ads[1:]))
    align0 = metric_at(s, "alignment_unpoisoned", clean)
    align_last = metric_at(s, "alignment_unpoisoned", last)
    defense = defense_summary(pack)
    k = len(pack.concepts)
    steps = (
        LessonStep(
            "clean",
            "The clean model",
            "Clean",
            clean,
            "strip",
            f"At C_P {clean} nothing is poisoned: judged accuracy on the {k} concepts is "
            f"{_pct(a0)} and AD is {_num(ad0, 3)}. Follow the pinned prompts: “{poisoned}” (the "
            f"attacker's first victim) and {followed}, which are never poisoned up to C_P {last}.",
            "Each image is a caption turned into a picture. What does the model have to learn so "
            "that “small” and “large”, or “red” and “blue”, come out right in every combination?",
        ),
        LessonStep(
            "one",
            "One poisoned concept",
            "One poisoned",
            one,
            "strip",
            f"At C_P {one} the attacker's captions of “{poisoned}” sit on images of another "
            f"concept. Poisoned prompts are drawn correctly {_pct(metric_at(s, 'acc_poisoned', one))}"
            f" of the time and show the attacker's target {_pct(metric_at(s, 'attack_success', one))}"
            f"; unpoisoned prompts stay at {_pct(metric_at(s, 'acc_unpoisoned', one))}. AD "
            f"moves from {_num(ad0, 3)} to {_num(ad1, 3)}.",
            "Only one concept was attacked. Why do the other rows still look right, and what "
            "would an attacker need to do to break them too?",
        ),
        LessonStep(
            "related",
            "Related concepts fail",
            "Related fail",
            rel,
            "strip",
            f"At C_P {rel} unpoisoned concepts that share two words with a poisoned one (≈, "
            f"related) are drawn correctly {_pct(metric_at(s, 'acc_related', rel))} of the time, "
            f"those that share fewer (unrelated) {_pct(metric_at(s, 'acc_unrelated', rel))} (means "
            f"over seeds; the seed shown has {len(rel_groups['related'])} related and "
            f"{len(rel_groups['unrelated'])} unrelated concepts here). The poison bleeds through "
            "the words concepts share.",
            "Which words does a related prompt share with a poisoned one, and why would a model "
            "that reuses one representation per word let the damage spread along them?",
        ),
        LessonStep(
            "implosion",
            "Many concepts: implosion",
            "Implosion",
            last,
            "implosion",
            f"At C_P {last}, the last level with unpoisoned concepts, prompts nobody poisoned are "
            f"drawn correctly {_pct(a_last)} of the time (clean model: {_pct(a0)}) and their "
            f"images are {fold} as incoherent as at C_P {clean} (judge's entropy {_num(inc_last, 3)} vs "
            f"{_num(inc0, 3)}). That is model implosion: the model fails for everyone.",
            "The attacker never touched these prompts. Where could their images have gone wrong, "
            "if not in their own training pairs?",
        ),
        LessonStep(
            "why",
            "Why: alignment difficulty and the graph",
            "Why: AD",
            last,
            "graph",
            f"AD rises from {_num(ad0, 3)} at C_P {clean} to {_num(ad_top, 3)} at C_P "
            f"{levels[-1]}{' at every step' if rising else ''}: more contradictory pairs make the "
            "caption → image mapping harder to fit. On the graph, the ◆ where each caption lands "
            f"drifts away from its images; unpoisoned alignment falls from {_num(align0)} to "
            f"{_num(align_last)}.",
            "One mapping has to serve every caption. What happens to the captions nobody "
            "poisoned when the mapping bends to fit the contradictory ones?",
        ),
        LessonStep(
            "defend",
            "What a defender can do",
            "Defend",
            one,
            "defend",
            (
                f"Detectors scored on this pack's training pairs: {defense}. A filter that checks "
                "whether each caption matches its image catches dirty-label poison; poison built "
                "to look right to people (Nightshade-style) is much harder to spot."
                if defense
                else "This pack has no detector evaluation yet: `implosion defend --pack PACK` "
                "scores four detectors on its training pairs (Defend page)."
            ),
            "A filter that drops 5 % of clean data to catch poison: is that a good trade? What "
            "could an attacker change so the filter no longer sees the poison?",
        ),
    )
    return steps
