"""AD trajectory: AD, D_fea and D_stru vs C_P with 95 % CIs, implosion metrics on the same
axis, per-concept contributions, and a live theory sandbox on synthetic embeddings."""

import streamlit as st

from core.figures.palette import METRIC_LABELS, spread_levels
from core.figures.trajectory import (
    ad_components_figure,
    compare_figure,
    concept_contributions_figure,
    implosion_figure,
    theory_figure,
    training_steps_figure,
)
from core.jobs.labels import distinct
from pages._claims import render_claims_panel
from pages._present import intro, presenter, show, terms, url_choice, url_keep
from pages._ui import (
    current_pack,
    export_buttons,
    open_pack,
    pack_key,
    route_through_app,
    run_banner,
    run_choices,
    run_label,
    seeds_note,
)

route_through_app()

intro(
    "AD trajectory",
    "How alignment difficulty (AD) and the model's health change as more concepts are poisoned "
    "(C_P): over the levels, during fine-tuning, per concept, and in a small theory sandbox.",
    "C_P",
    "AD",
    "D_fea",
    "D_stru",
    "α",
    "incoherence",
    "attack success",
)
pack = current_pack()
if pack is not None:
    run_banner(pack)
render_claims_panel(pack)

TABS = ["AD and implosion", "Over training steps", "Per-concept contributions", "Theory sandbox"]
TAB_URL = ["curve", "steps", "concepts", "theory"]  # ?tab= names (short, no spaces)
url_tab = st.query_params.get("tab")
if url_tab in TAB_URL and url_tab != st.session_state.get("_traj_tab_url_seen"):
    st.session_state["_traj_tab_url_seen"] = url_tab
    st.session_state["traj_tab"] = TABS[TAB_URL.index(url_tab)]
tabs = st.tabs(TABS, key="traj_tab", on_change="rerun")
open_tab = next((u for t, u in zip(tabs, TAB_URL) if t.open), TAB_URL[0])
url_keep("tab", "traj_tab", open_tab)


with tabs[0]:
    if tabs[0].open and pack is not None:
        st.caption(seeds_note(pack))
        left, right = st.columns(2)
        with left:
            fig_ad = ad_components_figure(pack.summary)
            show(fig_ad, "traj_ad")
            export_buttons(fig_ad, "ad-components")
        with right:
            fig_imp = implosion_figure(pack.summary)
            show(fig_imp, "traj_implosion")
            export_buttons(fig_imp, "ad-and-implosion")
        choices = distinct({c.id: run_label(c) for c in run_choices()})
        st.subheader("Two runs together")
        o1, o2 = st.columns([2, 1])
        other = o1.selectbox(
            "Compare with",
            [None, *[n for n in choices if n != st.session_state.get("pack")]],
            format_func=lambda n: "— choose a run —" if n is None else choices[n],
            key="traj_other",
            help="Draw another run (for example the demo pack) on the same axes as this one.",
        )
        metric = o2.selectbox(
            "Metric",
            list(METRIC_LABELS),
            format_func=METRIC_LABELS.get,
            key="traj_other_metric",
            help=terms("AD", "incoherence", "attack success"),
        )
        other_pack = open_pack(other) if other else None
        if other_pack is not None:
            here = choices.get(st.session_state.get("pack", ""), "this run").split(" · ")[0]
            there = choices[other].split(" · ")[0]
            if there == here:
                there += " (2)"
            fig_cmp = compare_figure({here: pack.summary, there: other_pack.summary}, metric)
            show(fig_cmp, "traj_compare")
            export_buttons(fig_cmp, f"compare-{metric}")
    elif pack is None:
        st.info("Pick a run in the sidebar to see its trajectory; the Theory sandbox needs none.")


@st.cache_data(show_spinner=False, max_entries=32)
def shares(key: tuple[str, float], c_p: int) -> tuple[list[dict], str]:
    a = pack.level_arrays(c_p)
    from core.metrics import per_concept

    scale = pack.config.get("ad_scale")  # the calibration the sweep recorded (None: raw cosines)
    scale = tuple(scale) if scale else None
    result, rows = per_concept(a["image"], a["text"], a["caption_concept"], scale=scale, threads=1)
    how = (
        f"cosines rescaled to [{scale[0]:.2f}, {scale[1]:.2f}]" if scale else "no cosine rescaling"
    )
    return [
        {"label": r.label, "feature": r.feature, "structure": r.structure, "alpha": result.alpha}
        for r in rows
    ], f"exact shares, {result.n:,} pairs, α = {result.alpha:.2f}, {how}"


with tabs[1]:
    if tabs[1].open and pack is not None:
        if not pack.training:
            st.info(
                "This pack has no training curves (training.json); re-run its sweep to get them."
            )
        else:
            seed = (pack.config.get("seeds") or ["?"])[0]
            chosen = st.multiselect(
                "C_P levels",
                pack.levels,
                default=spread_levels(pack.levels, 4) if presenter() else pack.levels,
                key="traj_steps_levels",
                help=terms("C_P") + " Four levels or fewer keep the colours distinct.",
            )
            fig = training_steps_figure(pack.training, chosen)
            show(fig, "traj_steps")
            if any("probe" in v for v in pack.training.values()):
                st.caption(
                    f"Seed {seed}. The training pairs' AD is fixed during a fine-tune, so this tab "
                    "follows the AD of the model's own text→image mapping: pairs (generated image, "
                    "its prompt), one per concept, same noise at every probe step. Accuracy is "
                    "judged on the same images; loss is a 5-step moving average."
                )
            else:
                st.caption(
                    f"Seed {seed}. This pack predates training probes: loss only. Sweeps with "
                    "`probe_every` > 0 (every preset now) also record the AD of the model's "
                    "generations over steps."
                )
            export_buttons(fig, "over-training-steps")


with tabs[2]:
    if tabs[2].open and pack is not None:
        url_choice("cp", "traj_cp", pack.levels, pack.levels[-1])
        c_p = st.select_slider("C_P", options=pack.levels, key="traj_cp", help=terms("C_P"))
        url_keep("cp", "traj_cp", c_p)
        top = st.slider(
            "Show the top N concepts",
            5,
            len(pack.concepts),
            min(20, len(pack.concepts)),
            key="traj_top",
        )
        with st.spinner("Computing each concept's share of AD (exact)…"):
            rows, source = shares(pack_key(pack), c_p)
        if rows:
            fig = concept_contributions_figure(rows, pack.concepts, pack.poisoned_at(c_p), top=top)
            show(fig, "traj_shares")
            st.caption(f"Each concept's share of AD: {source}; pairs grouped by caption concept.")
            export_buttons(fig, f"concept-contributions-cp{c_p}")
        else:
            st.warning(f"Per-concept contributions unavailable: {source}.")


@st.cache_data(show_spinner=False, max_entries=64)
def sandbox(n_concepts: int, noise: float, seed: int) -> dict:
    from core.analysis.theory import ad_curve

    return ad_curve(n_concepts=n_concepts, noise=noise, seed=seed)


with tabs[3]:
    if tabs[3].open:
        st.markdown(
            "Synthetic concepts with aligned text and image vectors. Poisoning concept *i* adds "
            "pairs (caption *i*, image of a target). Move the sliders: AD grows with C_P."
        )
        s1, s2, s3, s4 = st.columns(4)
        k = s1.slider("Concepts", 4, 64, 16, step=4, key="theory_k")
        noise = s2.slider("Noise", 0.0, 2.0, 0.5, step=0.1, key="theory_noise")
        c_mark = s3.slider("C_P", 0, k, min(4, k), key="theory_cp")
        seed = s4.number_input("Seed", 0, 999, 0, key="theory_seed")
        with st.spinner("Computing AD on synthetic embeddings…"):
            curve = sandbox(k, noise, int(seed))
        from core.analysis.theory import compute_ad, synthetic_pairs

        p = synthetic_pairs(k, c_mark, noise, n_per_concept=8, seed=int(seed))
        now, _ = compute_ad(p.image, p.text)
        m1, m2, m3 = st.columns(3)
        m1.metric("AD at this C_P", f"{now['ad']:.3f}", help=terms("AD"))
        m2.metric("D_fea", f"{now['d_fea']:.3f}", help=terms("D_fea"))
        m3.metric("D_stru", f"{now['d_stru']:.3f}", help=terms("D_stru"))
        fig = theory_figure(curve, marker_c=c_mark)
        show(fig, "theory_chart")
        label = curve["source"]
        if label != "core.metrics":
            st.warning(f"AD computed by a {label}.")
        else:
            st.caption("Exact AD of the synthetic pairs (α = 0.8, cosines not rescaled).")
        export_buttons(fig, "theory-sandbox")
