"""What a results pack reproduces of the paper's claims, computed from its records.

Each :class:`Claim` is one measured number with its 95 % t-interval over seeds, the target it is
checked against and whether it holds; :func:`pack_claims` returns them with the honest
limits (targets missed, things not measured), so the app can say both.

Claims (C_P levels of the pack; "clean" = C_P 0 of the same seed):

* ``ad_monotone`` (a): mean AD strictly increasing in C_P.
* ``r_ad_alignment`` (c): Pearson r between mean AD and mean unpoisoned alignment over the levels
  that have unpoisoned concepts; holds when r ≤ −0.9.
* ``implosion_ratio`` (b): at the largest C_P with unpoisoned concepts, the per-seed ratio
  acc_unpoisoned(C_P) / acc_unpoisoned(0); holds when the mean is ≤ 0.5 and the two accuracies'
  CIs do not overlap.
* ``incoherence_ratio`` (b): same level, per-seed ratio of the unpoisoned concepts' incoherence
  (``incoherence_unpoisoned``; packs without it: all concepts' ``incoherence``); holds when it,
  or the ratio of mean ``undefined_rate``, is ≥ 3 with non-overlapping CIs.
* ``related_loss`` (e): for each 0 < C_P ≤ 8, the accuracy each group loses against the clean run
  of the same seed, per concept (``per_concept_acc``), averaged over the group: related = shares
  ≥ 2 attribute words with a poisoned concept. Reported at the level where related/unrelated is
  largest; holds when that ratio is ≥ 2 and the two losses' CIs do not overlap.
* ``longer_training`` (b, steady state) and ``nightshade`` (d): read from ``science.json`` in the
  pack folder (written by bench/science, see :data:`SCIENCE_FILE`) when it was measured.

``science.json``: {"longer_training": {"steps", "preset_steps", "c_p", "ratio", "ci_low",
"ci_high", "n_seeds", "command"}, "nightshade": {"attack_success", "n_poison", "epsilon255",
"ssim", "dirty_label_n80", "command"}, "notes": [str]} — every key optional.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from core.results.aggregate import Interval, interval_at, level_means, paired_ratio, t_interval

if TYPE_CHECKING:
    from core.results.pack import Pack

SCIENCE_FILE = "science.json"
RELATED_MAX_CP = 8  # claim (e) is checked at C_P ≤ 8
IMPLOSION_MAX_RATIO = 0.5
STEADY_MAX_RATIO = 0.6
INCOHERENCE_MIN_RATIO = 3.0
RELATED_MIN_RATIO = 2.0
# claim (e) is judged at any C_P ≤ 8 as the paper states it, but a level whose unrelated group averages fewer
# concepts than this is flagged in the detail (at large C_P nearly every unpoisoned concept shares
# words with a poisoned one: an "unrelated" mean over two concepts says little)
RELATED_MIN_GROUP = 3
R_MAX = -0.9


@dataclass(frozen=True)
class Claim:
    """One checked claim. ``holds``: True / False, or None when the pack cannot tell."""

    key: str
    title: str
    value: float | None
    interval: Interval | None
    target: str
    holds: bool | None
    detail: str

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["interval"] = self.interval.to_dict() if self.interval else None
        return d


@dataclass(frozen=True)
class PackClaims:
    """All claims of a pack and the honest limits (one sentence each)."""

    claims: tuple[Claim, ...]
    limits: tuple[str, ...]

    def get(self, key: str) -> Claim:
        for c in self.claims:
            if c.key == key:
                return c
        raise KeyError(f"no claim {key!r}; known: {[c.key for c in self.claims]}")

    def to_dict(self) -> dict[str, Any]:
        return {"claims": [c.to_dict() for c in self.claims], "limits": list(self.limits)}


def _disjoint(a: Interval, b: Interval) -> bool:
    return a.high < b.low or b.high < a.low


# ---------------------------------------------------------------------------- claims
def ad_monotone(records: list[dict[str, Any]]) -> Claim:
    m = level_means(records, "ad")
    levels = sorted(m)
    ok = len(levels) >= 2 and all(m[a] < m[b] for a, b in zip(levels, levels[1:]))
    detail = (
        f"AD {m[levels[0]]:.3f} at C_P {levels[0]} → {m[levels[-1]]:.3f} at C_P {levels[-1]}"
        if levels
        else "no AD in the records"
    )
    return Claim(
        "ad_monotone",
        "AD rises with the number of poisoned concepts",
        m[levels[-1]] - m[levels[0]] if levels else None,
        None,
        "mean AD strictly increasing in C_P",
        ok if levels else None,
        detail,
    )


def r_ad_alignment(records: list[dict[str, Any]]) -> Claim:
    ad, al = level_means(records, "ad"), level_means(records, "alignment_unpoisoned")
    both = [c for c in sorted(ad) if c in al]
    if len(both) < 3:
        return Claim(
            "r_ad_alignment",
            "Higher AD, worse alignment of unpoisoned concepts",
            None,
            None,
            f"r ≤ {R_MAX}",
            None,
            "needs ≥ 3 levels with unpoisoned concepts",
        )
    r = float(np.corrcoef([ad[c] for c in both], [al[c] for c in both])[0, 1])
    return Claim(
        "r_ad_alignment",
        "Higher AD, worse alignment of unpoisoned concepts",
        r,
        None,
        f"r ≤ {R_MAX}",
        r <= R_MAX,
        f"Pearson r over C_P {both[0]}…{both[-1]} ({len(both)} levels) = {r:.2f}",
    )


def largest_level_with_unpoisoned(records: list[dict[str, Any]]) -> int | None:
    levels = sorted(c for c in level_means(records, "acc_unpoisoned") if c > 0)
    return levels[-1] if levels else None


def implosion_ratio(records: list[dict[str, Any]]) -> Claim:
    title = "Unpoisoned concepts lose accuracy (implosion)"
    target = f"≤ {IMPLOSION_MAX_RATIO:.0%} of clean, CIs not overlapping"
    c = largest_level_with_unpoisoned(records)
    ratio = paired_ratio(records, c, "acc_unpoisoned") if c is not None else None
    if c is None or ratio is None:
        return Claim(
            "implosion_ratio", title, None, None, target, None, "no C_P 0 or no poisoned level"
        )
    a0, ac = interval_at(records, 0, "acc_unpoisoned"), interval_at(records, c, "acc_unpoisoned")
    assert a0 is not None and ac is not None
    sep = _disjoint(a0, ac)
    return Claim(
        "implosion_ratio",
        title,
        ratio.mean,
        ratio,
        target,
        ratio.mean <= IMPLOSION_MAX_RATIO and sep,
        f"C_P {c}: accuracy {ac.mean:.2f} [{ac.low:.2f}, {ac.high:.2f}] vs clean {a0.mean:.2f} "
        f"[{a0.low:.2f}, {a0.high:.2f}]: {ratio.mean:.0%} of clean "
        f"[{ratio.low:.0%}, {ratio.high:.0%}] (per-seed ratio)",
    )


def incoherence_ratio(records: list[dict[str, Any]]) -> Claim:
    title = "Unpoisoned generations become incoherent"
    target = (
        f"incoherence or undefined rate ≥ {INCOHERENCE_MIN_RATIO:g}× clean, CIs not overlapping"
    )
    c = largest_level_with_unpoisoned(records)
    key = (
        "incoherence_unpoisoned"
        if any(r.get("incoherence_unpoisoned") is not None for r in records)
        else "incoherence"
    )
    ratio = paired_ratio(records, c, key) if c is not None else None
    if c is None or ratio is None:
        return Claim(
            "incoherence_ratio", title, None, None, target, None, "no C_P 0 or no poisoned level"
        )
    i0, ic = interval_at(records, 0, key), interval_at(records, c, key)
    assert i0 is not None and ic is not None
    who = "unpoisoned concepts" if key == "incoherence_unpoisoned" else "all concepts"
    holds = ratio.mean >= INCOHERENCE_MIN_RATIO and _disjoint(i0, ic)
    detail = (
        f"C_P {c}, {who}: incoherence {ic.mean:.3f} vs clean {i0.mean:.3f} "
        f"= {ratio.mean:.1f}× clean [{ratio.low:.1f}, {ratio.high:.1f}]"
    )
    # the undefined rate (a judge head's top probability < 0.6) may stand in for incoherence
    u0, uc = interval_at(records, 0, "undefined_rate"), interval_at(records, c, "undefined_rate")
    if u0 is not None and uc is not None and u0.mean > 0:
        u_holds = uc.mean / u0.mean >= INCOHERENCE_MIN_RATIO and _disjoint(u0, uc)
        holds = holds or u_holds
        detail += (
            f"; undefined rate {uc.mean:.3f} vs {u0.mean:.3f} = {uc.mean / u0.mean:.1f}× clean"
            f"{'' if _disjoint(u0, uc) else ' (intervals overlap)'}"
        )
    return Claim("incoherence_ratio", title, ratio.mean, ratio, target, holds, detail)


def _related_ratio(ir: Interval, iu: Interval) -> float:
    # unrelated concepts that lose nothing (or gain) leave the ratio unbounded
    return ir.mean / iu.mean if iu.mean > 1e-9 else (float("inf") if ir.mean > 0 else 0.0)


def _related_holds(ir: Interval, iu: Interval) -> bool:
    return _related_ratio(ir, iu) >= RELATED_MIN_RATIO and ir.low > iu.high


def related_loss(pack: Pack) -> Claim:
    """Claim (e): accuracy lost by related vs unrelated unpoisoned concepts (paired by seed)."""
    title = "Related concepts lose more than unrelated ones (bleed-through)"
    target = f"related loss ≥ {RELATED_MIN_RATIO:g}× unrelated at some C_P ≤ {RELATED_MAX_CP}"
    recs = pack.records
    clean = {int(r["seed"]): r for r in recs if r["c_p"] == 0 and r.get("per_concept_acc")}
    best: tuple[int, Interval, Interval, float, float] | None = None
    for c in sorted({int(r["c_p"]) for r in recs if 0 < r["c_p"] <= RELATED_MAX_CP}):
        lr, lu, nr, nu = [], [], [], []
        for r in recs:
            s = int(r["seed"])
            if r["c_p"] != c or s not in clean or not r.get("per_concept_acc"):
                continue
            if pack.seed_plan(s) is None:  # no record of who this seed poisoned
                continue
            groups = pack.groups(c, s)
            related, unrelated = groups["related"], groups["unrelated"]
            if not related or not unrelated:
                continue
            a0, ac = np.asarray(clean[s]["per_concept_acc"]), np.asarray(r["per_concept_acc"])
            lr.append(float((a0 - ac)[related].mean()))
            lu.append(float((a0 - ac)[unrelated].mean()))
            nr.append(len(related))
            nu.append(len(unrelated))
        if len(lr) < 2:
            continue
        ir, iu = t_interval(lr), t_interval(lu)
        # a level where the claim holds first, then the one where related concepts lose most
        # beyond unrelated ones
        rank = (_related_holds(ir, iu), ir.mean - iu.mean)
        if best is None or rank > (_related_holds(best[1], best[2]), best[1].mean - best[2].mean):
            best = (c, ir, iu, float(np.mean(nr)), float(np.mean(nu)))
    if best is None:
        return Claim(
            "related_loss",
            title,
            None,
            None,
            target,
            None,
            f"needs per-concept accuracy at C_P 0 and, for two seeds, at some 0 < C_P ≤ "
            f"{RELATED_MAX_CP} with both related and unrelated concepts",
        )
    c, ir, iu, n_rel, n_unrel = best
    ratio = _related_ratio(ir, iu)
    holds = _related_holds(ir, iu)
    shown = f"{ratio:.1f}×" if np.isfinite(ratio) else "unrelated lose nothing"
    return Claim(
        "related_loss",
        title,
        ratio if np.isfinite(ratio) else None,
        ir,
        target,
        holds,
        f"C_P {c}: related lose {ir.mean:+.3f} [{ir.low:+.3f}, {ir.high:+.3f}], unrelated "
        f"{iu.mean:+.3f} [{iu.low:+.3f}, {iu.high:+.3f}] accuracy vs clean ({shown}; "
        f"{n_rel:.0f} related and {n_unrel:.0f} unrelated concepts per seed, {ir.n} seeds"
        + (
            f"; with under {RELATED_MIN_GROUP} unrelated concepts the comparison is weak)"
            if n_unrel < RELATED_MIN_GROUP
            else ")"
        ),
    )


def read_science(pack: Pack) -> dict[str, Any]:
    """``science.json`` of the pack folder ({} when absent; ValueError when unreadable)."""
    from core.results.validate import check_science, exists, read_json

    if not exists(pack.root, SCIENCE_FILE):
        return {}
    # a pack file: no links, size and depth limits, the fields the claims below read
    return check_science(read_json(pack.root, SCIENCE_FILE), pack.root, SCIENCE_FILE)


def longer_training(science: dict[str, Any]) -> Claim:
    title = "Implosion holds with longer fine-tuning"
    target = f"≤ {STEADY_MAX_RATIO:.0%} of clean at ≥ 3× the fine-tune steps"
    lt = science.get("longer_training")
    if not lt:
        return Claim(
            "longer_training", title, None, None, target, None, "not measured for this pack"
        )
    iv = None
    if lt.get("ci_low") is not None and lt.get("ci_high") is not None:
        iv = Interval(
            float(lt["ratio"]), float(lt["ci_low"]), float(lt["ci_high"]), int(lt.get("n_seeds", 1))
        )
    ratio = float(lt["ratio"])
    return Claim(
        "longer_training",
        title,
        ratio,
        iv,
        target,
        ratio <= STEADY_MAX_RATIO,
        f"{lt['steps']} fine-tune steps (pack: {lt.get('preset_steps', '?')}), C_P {lt['c_p']}: "
        f"unpoisoned accuracy {ratio:.0%} of clean"
        + (f" [{iv.low:.0%}, {iv.high:.0%}]" if iv is not None and iv.n > 1 else "")
        + f" over {lt.get('n_seeds', 1)} seed(s)",
    )


def nightshade(science: dict[str, Any]) -> Claim:
    title = "Few Nightshade-style poisons do what many dirty-label ones do"
    target = "≥ 80 % attack success with ≤ 1/5 of dirty-label's samples, ε ≤ 16/255"
    ns = science.get("nightshade")
    if not ns:
        return Claim("nightshade", title, None, None, target, None, "not measured for this pack")
    atk = float(ns["attack_success"])
    dl = ns.get("dirty_label_n80")
    n = int(ns["n_poison"])
    holds = atk >= 0.8 and dl is not None and n * 5 <= int(dl) and float(ns["epsilon255"]) <= 16
    dl_txt = f"dirty-label needs {dl}" if dl is not None else "dirty-label never reached 80 %"
    gap = ns.get("latent_gap_closed")
    why = (
        f". Why: this model's VAE encoder is smooth: the perturbation closes only {float(gap):.0%} "
        "of the latent gap to the target concept, where the attack needs most of it (Stable "
        "Diffusion's encoder is far more sensitive); bench/results/science.md, the encoder gate"
        if not holds and gap is not None
        else ""
    )
    return Claim(
        "nightshade",
        title,
        atk,
        None,
        target,
        holds,
        f"{atk:.0%} attack success with {n} poisons at ε {ns['epsilon255']:g}/255 "
        f"(SSIM {float(ns.get('ssim', float('nan'))):.2f}); {dl_txt}{why}",
    )


def pack_claims(pack: Pack) -> PackClaims:
    """Every claim of ``pack`` and its honest limits (see module docstring)."""
    recs = pack.records
    science = read_science(pack)
    claims = (
        ad_monotone(recs),
        r_ad_alignment(recs),
        implosion_ratio(recs),
        incoherence_ratio(recs),
        longer_training(science),
        related_loss(pack),
        nightshade(science),
    )
    limits = [
        f"{c.title}: missed ({c.target}); measured {c.detail}." for c in claims if c.holds is False
    ]
    limits += [f"{c.title}: {c.detail}." for c in claims if c.holds is None]
    limits += [str(n) for n in science.get("notes", [])]
    return PackClaims(claims, tuple(limits))


__all__ = [
    "Claim",
    "Interval",
    "PackClaims",
    "SCIENCE_FILE",
    "pack_claims",
    "read_science",
    "t_interval",
]
