"""Defend: can the AD view of the training data find the poison, and does removing it help?"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st
from streamlit.errors import StreamlitAPIException

from core.defend.config import DETECTOR_NAMES, DefenseConfig
from core.defend.figures import DETECTOR_LABELS, defended_figure, roc_figure, score_histogram
from core.defend.pairs import level_pairs, nightshade_file, reconstruction_level
from core.defend.reconstruction import RECON, Unavailable
from core.defend.report import DEFENSE, load_report, scorable_levels
from core.defend.roc import roc, threshold_at_fpr
from core.sweep.mini.defended import DefendedSweep, defended_packs, start_defended_job
from pages._present import show
from pages._ui import (
    _load,
    _stamp,
    current_pack,
    export_buttons,
    markdown_table,
    pack_key,
    route_through_app,
)

route_through_app()


@st.cache_data(show_spinner="Scoring every training pair…", max_entries=64)
def scores(
    key: tuple[str, float], c_p: int, method: str, detector: str
) -> tuple[np.ndarray, np.ndarray]:
    from core.defend.detectors import score

    p = level_pairs(_load(*key), c_p, method)
    return score(detector, p.image, p.text, p.caption_concept), p.poisoned


@st.cache_data(show_spinner="Reading the reconstruction scores…", max_entries=64)
def recon_scores(
    key: tuple[str, float], c_p: int, method: str
) -> tuple[np.ndarray, np.ndarray] | str:
    """(scores, truth) of the reconstruction detector, or why it is unavailable on this pack."""
    try:
        return reconstruction_level(_load(*key), c_p, method)
    except Unavailable as e:
        return str(e)


def defended_estimate(
    pack_dir: str, defense: DefenseConfig, levels: tuple[int, ...], seeds: tuple[int, ...]
) -> str:
    """One line: the defended sweep's estimated run time from this machine's measured rates."""
    from core.sweep.mini.defended import defended_config
    from core.sweep.mini.estimate import cached_rates, estimate, format_seconds

    try:
        sc = defended_config(Path(pack_dir), defense, levels, seeds)
    except (ValueError, FileNotFoundError) as e:
        return f"Cannot run: {e}"
    ft = sc.finetune
    rates = cached_rates(sc.model, sc.device, ft.precision, ft.params)
    n = len(levels) * len(seeds)
    if rates is None:
        return (
            f"{n} fine-tunes of {ft.steps} steps. Time not estimated: this machine has not been "
            "measured for this model yet (Poison setup → Measure this machine); the Jobs page "
            "shows the time left from the run's own pace."
        )
    est = estimate(sc, len(pack.concepts), rates)
    return (
        f"Estimated run time: about {format_seconds(est.total)} ({n} fine-tunes of {ft.steps} "
        f"steps; rates measured on this machine at load {rates.load:.1f}). The Jobs page "
        "corrects it with the run's own pace."
    )


st.title("Defend: detect the poison")
st.caption(
    "Each detector scores every training pair of a level from the same image/text embeddings AD "
    "is computed on; the sweep recorded which pairs were poisoned, so we can see how well it works."
)
pack = current_pack()
if pack is None:
    st.stop()
if pack.config.get("defense"):
    d = pack.config["defense"]
    st.info(
        f"This pack is itself a defended sweep ({d['detector']} at {d['fpr']:.0%} FPR); its levels "
        "hold the pairs that survived the filter. Pick the attacked pack to evaluate detectors."
    )
key = pack_key(pack)
poisoned_levels = scorable_levels(pack)  # C_P > 0 with clean pairs left to tell apart
if not poisoned_levels:
    st.warning("This pack has no poisoned level (C_P > 0): nothing to detect.")
    st.stop()

ns_ready = nightshade_file(pack, 16 / 255, 60).is_file()
c1, c2, c3 = st.columns(3)
detector = c1.selectbox(
    "Detector", DETECTOR_NAMES, format_func=DETECTOR_LABELS.get, key="def_detector"
)
method = c2.radio(
    "Poison",
    ["dirty-label", "nightshade"] if ns_ready else ["dirty-label"],
    horizontal=True,
    key="def_method",
    help="Nightshade-style poisons are built once per pack: `implosion defend --pack P --methods "
    "nightshade` (a few minutes on CPU).",
)
c_p = c3.select_slider(
    "C_P (poisoned concepts)",
    poisoned_levels,
    key="def_cp",
    value=poisoned_levels[min(2, len(poisoned_levels) - 1)],
)
fpr_pct = st.slider(
    "Threshold: false-positive rate (% of clean pairs dropped)",
    0.0,
    50.0,
    5.0,
    0.5,
    key="def_fpr",
)

try:
    s, truth = scores(key, c_p, method, detector)
except (FileNotFoundError, ValueError) as e:
    st.error(f"Cannot score this level: {e}")
    st.stop()
tau = threshold_at_fpr(s[~truth], fpr_pct / 100) if fpr_pct > 0 else float("inf")
flag = s >= tau
m1, m2, m3, m4 = st.columns(4)
m1.metric("pairs", f"{s.size:,}", help=f"{int(truth.sum())} poisoned")
m2.metric("poisoned pairs caught", f"{(flag & truth).sum() / truth.sum():.0%}")
m3.metric(
    "clean pairs lost",
    f"{int((flag & ~truth).sum()):,}",
    f"{(flag & ~truth).sum() / (~truth).sum():.1%} of the clean pairs",
    delta_color="off",
    delta_arrow="off",  # a share, not a change: no arrow
)
m4.metric("threshold", "none" if not np.isfinite(tau) else f"{tau:.4g}")

left, right = st.columns(2)
with left:
    curves = {}
    for det in DETECTOR_NAMES:
        sd, td = scores(key, c_p, method, det)
        curves[det] = roc(sd, td).to_dict()
    rec = recon_scores(key, c_p, method)
    if not isinstance(rec, str):
        curves[RECON] = roc(*rec).to_dict()
    fig_roc = roc_figure(curves, fpr_pct / 100)
    show(fig_roc, "def_roc")
    export_buttons(fig_roc, f"roc-{method}-cp{c_p}")
    st.caption(
        f"{DETECTOR_LABELS[RECON]}: "
        + (
            f"unavailable: {rec}"
            if isinstance(rec, str)
            else "the level's poison images against clean renders of the same concepts (it "
            "reads pixels with the pack's VAE, not these pairs' embeddings)"
        ),
        help="IMPRESS-style: a poison is an image the VAE does not reproduce consistently, "
        "‖E(D(E(x))) − E(x)‖ / ‖E(x)‖ (core/defend/reconstruction.py).",
    )
with right:
    fig_hist = score_histogram(s, truth, tau, detector)
    show(fig_hist, "def_hist")
    export_buttons(fig_hist, f"scores-{detector}-{method}-cp{c_p}")

st.subheader("Why a filter that catches dirty-label pairs can miss Nightshade")
stored = load_report(pack.root / DEFENSE)
best = {m: stored.best(m) for m in ("dirty-label", "nightshade")} if stored else {}
measured = ""
if best.get("dirty-label") and best.get("nightshade"):
    dl, ns = best["dirty-label"], best["nightshade"]
    ns_mis = [
        r["auc"]
        for r in stored.rows
        if r["method"] == "nightshade" and r["detector"] == "misalignment"
    ]
    measured = (
        f" **On this pack:** the best detector on dirty-label pairs ({DETECTOR_LABELS[dl['detector']]}) "
        f"reaches mean AUC {dl['mean_auc']:.3f}; on Nightshade-style pairs the misalignment filter "
        f"gets mean AUC {np.mean(ns_mis):.3f} and the best detector ({DETECTOR_LABELS[ns['detector']]}) "
        f"{ns['mean_auc']:.3f}."
    )
st.markdown(
    "A dirty-label pair shows concept B under A's caption, so the image embedding sits far from the "
    "caption's: pair misalignment, the CLIP-score filter, sees it at once, and so does any structure "
    "check. A Nightshade-style poison is an image *of A* under A's caption with a small perturbation "
    "aimed at the diffusion model's VAE, not at the embedder the filter uses; to the filter it looks "
    "like a well-aligned pair, and its neighbours in image-embedding space are other A images. It "
    "only shows up where the perturbation leaks into the embedding (a slightly lower alignment), "
    "which is the small margin a detector has to work with."
    + measured
    + (
        ""
        if measured
        else " (Run `implosion defend --pack P --methods dirty-label nightshade` to "
        "measure it on this pack.)"
    )
)
st.subheader("Both detector families on Nightshade-style poisons")


def span(values: list[float], fmt: str = ".2f") -> str:
    """'lo–hi' of ``values`` as shown, one number when both read the same."""
    lo, hi = format(min(values), fmt), format(max(values), fmt)
    return lo if lo == hi else f"{lo}–{hi}"


stored_rows = stored.rows if stored else []
ns_rows = {(r["detector"], r["c_p"]): r for r in stored_rows if r["method"] == "nightshade"}
dl_mis = [
    r["auc"]
    for r in stored_rows
    if r["method"] == "dirty-label" and r["detector"] == "misalignment"
]
gone = (stored.settings.get("unavailable") or {}) if stored else {}
mis_ns = [r for (d, _), r in ns_rows.items() if d == "misalignment"]
if mis_ns and dl_mis:
    aucs = [r["auc"] for r in mis_ns]
    r1 = [r["recall_at_1pct_fpr"] for r in mis_ns]
    st.markdown(
        f"**The CLIP-misalignment filter that catches dirty-label poisons (AUC "
        f"{span(dl_mis)}) "
        "misses Nightshade-style ones:** AUC "
        f"{span(aucs)} over C_P, and at 1 % of clean pairs dropped it flags "
        f"{span(r1, '.0%')} of the poisons. The reconstruction detector looks where the "
        "attack acts: at the pixels, through the VAE."
    )
    table = []
    for c in sorted({c for _, c in ns_rows}):
        row: dict[str, object] = {"C_P": c}
        for det, name in (("misalignment", "CLIP misalignment"), (RECON, "VAE reconstruction")):
            r = ns_rows.get((det, c))
            row[name] = (
                f"AUC {r['auc']:.3f} · recall {r['recall_at_1pct_fpr']:.0%} / "
                f"{r['recall_at_5pct_fpr']:.0%} at 1 / 5 % FPR"
                if r
                else "unavailable"
            )
        table.append(row)
    st.markdown(markdown_table(table))
    if RECON in gone:
        st.caption(f"VAE reconstruction detector unavailable on this pack: {gone[RECON]}")
    rec_ns = [r for (d, _), r in ns_rows.items() if d == RECON]
    if rec_ns:
        rr = [r["recall_at_1pct_fpr"] for r in rec_ns]
        ra = [r["auc"] for r in rec_ns]
        where = (
            f"our reconstruction detector flags {min(rr):.0%}–{max(rr):.0%} of them at 1 % FPR "
            f"(AUC {min(ra):.3f}–{max(ra):.3f}) on this pack"
        )
    else:
        where = "this pack holds no reconstruction scores to set beside it"
    st.markdown(
        "For scale: LightShed (USENIX Security 2025), a detector trained knowing the poisoning "
        "tool, reports TPR 99.98 % at TNR 100 % on Nightshade poisons; " + where + "."
    )
else:
    st.caption(
        "Run `implosion defend --pack P --methods dirty-label nightshade` to compare the two "
        "families on this pack."
    )

if stored:
    with st.expander("All stored results (defense.json)"):
        st.markdown(
            markdown_table(
                [
                    {k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()}
                    for r in stored.table()
                ]
            )
        )

st.subheader("Defended sweep: drop the flagged pairs and fine-tune again")
st.caption(
    "The pack's own sweep, same model, poison and seeds, with the pairs this detector flags at "
    "this false-positive rate removed at every level; the result is a pack the explorer lists "
    "beside this one (Compare & export overlays them)."
)
fpr_run = max(fpr_pct, 0.5) / 100
defense = DefenseConfig(detector, fpr_run)
lv = st.multiselect("Levels", pack.levels, default=pack.levels, key="def_levels")
seeds = st.multiselect(
    "Seeds",
    pack.config.get("seeds", [0]),
    default=pack.config.get("seeds", [0])[:1],
    key="def_seeds",
)
if lv and seeds and not pack.config.get("defense"):
    st.caption(defended_estimate(str(pack.root), defense, tuple(sorted(lv)), tuple(seeds)))
if st.button(
    f"Launch defended sweep ({detector}, {fpr_run:.1%} FPR)",
    key="def_launch",
    disabled=not lv or not seeds or bool(pack.config.get("defense")),
):
    try:
        rid = start_defended_job(DefendedSweep(pack.root, defense, levels=sorted(lv), seeds=seeds))
        st.session_state["def_job"] = rid
    except (ValueError, FileNotFoundError) as e:
        st.error(str(e))
if st.session_state.get("def_job"):
    rid = st.session_state["def_job"]
    st.success(f"Started the defended sweep (job `{rid}`).")
    try:
        st.page_link(
            "pages/jobs.py", label="Follow it on the Jobs page", icon="▶", query_params={"run": rid}
        )
    except StreamlitAPIException:  # the page run on its own (no app navigation): a plain link
        st.markdown(f"[Follow it on the Jobs page](/jobs?run={rid})")

others = defended_packs(pack.root)
if others:
    from core.defend.compare import compare

    name = st.selectbox("Defended run to compare", list(others), key="def_compare")
    try:
        dp = _load(str(others[name]), _stamp(Path(others[name])))
        cmp = compare(pack, dp)
    except (FileNotFoundError, ValueError) as e:
        st.info(f"Not comparable yet: {e}")
    else:
        fig_cmp = defended_figure(cmp.rows)
        show(fig_cmp, "def_cmp_chart")
        export_buttons(fig_cmp, f"defended-{name}")
        if cmp.recovered is not None:
            verdict = (
                "meets"
                if cmp.recovered >= 0.5
                else f"falls short by {0.5 - cmp.recovered:.0%} of the gap"
            )
            st.markdown(
                f"At C_P = {cmp.c_recovery} the attack costs {cmp.gap:.3f} of unpoisoned accuracy; "
                f"the defense recovers **{cmp.recovered:.0%}** of that gap ({verdict} the ½ target). "
                f"AD lower at every C_P ≥ 4: **{cmp.ad_lower_from_4}**."
            )
        st.markdown(
            markdown_table(
                [
                    {
                        "C_P": r["c_p"],
                        "AD attacked": round(r["ad_attacked"], 4),
                        "AD defended": round(r["ad_defended"], 4),
                        "acc attacked": r["acc_unpoisoned_attacked"]
                        and round(r["acc_unpoisoned_attacked"], 3),
                        "acc defended": r["acc_unpoisoned_defended"]
                        and round(r["acc_unpoisoned_defended"], 3),
                        "pairs removed": r["defense_removed"] and int(r["defense_removed"]),
                        "poison recall": r["defense_recall"] and round(r["defense_recall"], 3),
                    }
                    for r in cmp.rows
                ]
            )
        )
else:
    st.caption("No defended run of this pack yet.")
