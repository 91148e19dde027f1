"""Poison setup: choose the model and the poisoned concepts (a sweep level, or by name), preview
clean vs poisoned pairs, see the honest run-time estimate, launch the run (clean baseline +
poisoned level, written as a results pack the explorer opens)."""

import streamlit as st

from core.poison.plan import TARGET_RULES, choose_targets, plan_level, preview_pairs
from core.results.pack import list_models
from core.sweep.mini.estimate import (
    cached_rates,
    estimate,
    format_seconds,
    last_measure_seconds,
    measure_rates,
)
from core.sweep.mini.finetune import FINETUNE_DEFAULTS, finetune_config, job_config, model_world
from pages._ui import route_through_app

route_through_app()

st.title("Poison setup")
st.caption(
    "Design an attack on a base model, then launch it: the run fine-tunes a clean baseline "
    "(C_P = 0) and the poisoned level with the same seed and steps, and saves both as a results "
    "pack you can open in the explorer."
)


@st.cache_resource(show_spinner=False)
def world_of(path: str, stamp: float):
    return model_world(path)


@st.cache_data(show_spinner=False, max_entries=64)
def preview(path: str, stamp: float, src: int, tgt: int, method: str, eps: float):
    return preview_pairs(world_of(path, stamp), src, tgt, method, n=4, epsilon=eps)


models = list_models()
if not models:
    st.error(
        "No base model to poison: the clean base model (assets/base) is missing. Build it with "
        "`implosion train-base --out assets/base` or restore it with `git checkout assets/`."
    )
    st.stop()
labels = list(models)
model_label = st.selectbox(
    "Model",
    labels,
    index=labels.index("shipped base (clean)") if "shipped base (clean)" in labels else 0,
    key="p_model",
    help="K and the concept names come from the model.",
)
model_dir = models[model_label]
stamp = (model_dir / "model.json").stat().st_mtime if (model_dir / "model.json").is_file() else 0.0
try:
    w = world_of(str(model_dir), stamp)
except ValueError as e:
    st.error(str(e))
    st.stop()
k = w.n_concepts

pick = st.radio(
    "Choose poisoned concepts",
    ["Random C_P with seed", "These concepts by name"],
    horizontal=True,
    key="p_pick",
    help="Random C_P with seed is exactly level C_P of a sweep with that seed (same concepts, "
    "same targets).",
)
if pick == "Random C_P with seed":
    r1, r2 = st.columns([3, 1])
    c_p = r1.slider("C_P: number of poisoned concepts", 1, k, min(4, k), key="p_cp")
    seed = int(r2.number_input("Seed", 0, 10_000, 0, key="p_seed"))
    level = plan_level(k, c_p, seed, relation=w.relation)
    poisoned, targets = list(level.poisoned), dict(level.targets)
    target_rule: str | dict = "random"
    st.caption(f"The sweep's level C_P = {c_p} for seed {seed}, targets from the same plan.")
else:
    seed = 0
    names = st.multiselect("Poisoned concepts", w.names, default=w.names[:2], key="p_names")
    poisoned = [w.index(n) for n in names]
    t1, t2 = st.columns([1, 2])
    mode = t1.radio(
        "Targets",
        [*TARGET_RULES, "chosen"],
        key="p_targets",
        help="random: the seed-0 sweep plan's target; nearest / farthest: most / fewest "
        "attribute words shared with the source; chosen: pick each",
    )
    if mode == "chosen":
        chosen = {}
        with t2:
            for i in poisoned[:12]:
                chosen[i] = w.index(
                    st.selectbox(
                        f"Target for {w.names[i]}",
                        [n for n in w.names if n != w.names[i]],
                        key=f"p_tgt_{i}",
                    )
                )
        if len(poisoned) > 12:
            st.warning("Choosing by hand is limited to 12 concepts; use another rule for more.")
            st.stop()
        targets, target_rule = chosen, chosen
    else:
        targets, target_rule = choose_targets(w, poisoned, mode, seed), mode
    level = plan_level(k, len(poisoned), seed, relation=w.relation, order=poisoned, targets=targets)
if not poisoned:
    st.info("Pick at least one concept to poison (the run always includes the clean baseline).")
    st.stop()
st.markdown(
    f"**{len(poisoned)} poisoned:** "
    + ", ".join(f"{w.names[a]} → {w.names[targets[a]]}" for a in poisoned)
    + f"  \n{len(level.related)} related and {len(level.unrelated)} unrelated concepts stay clean."
)

m1, m2, m3 = st.columns(3)
method = m1.radio(
    "Method",
    ["dirty-label", "nightshade"],
    key="p_method",
    format_func={"dirty-label": "Dirty-label", "nightshade": "Nightshade-style"}.get,
)
default_budget = round(FINETUNE_DEFAULTS.poison_ratio * FINETUNE_DEFAULTS.n_clean_per_concept)
budget = m2.number_input(
    "Budget: poisoned samples per concept",
    1,
    2000,
    default_budget,
    key="p_budget",
    help="Poisoned pairs for each chosen concept. Its own clean pairs are left out of the "
    f"fine-tune, so its caption is only ever shown with the target's images; the other concepts "
    f"keep {FINETUNE_DEFAULTS.n_clean_per_concept} clean pairs each.",
)
eps = m3.slider(
    "Perturbation budget ε (Nightshade)",
    0.02,
    0.5,
    0.1,
    key="p_eps",
    disabled=method != "nightshade",
)

s1, s2, s3 = st.columns(3)
steps = s1.number_input(
    "Fine-tune steps per level", 1, 20_000, FINETUNE_DEFAULTS.finetune.steps, key="p_steps"
)
device = s2.selectbox("Device", ["cpu", "cuda"], key="p_device")
if steps < FINETUNE_DEFAULTS.finetune.steps:
    st.warning(
        f"{int(steps)} step{'' if steps == 1 else 's'} is a smoke test, not an experiment: the poisons have barely been "
        f"learnt. The explorer's numbers were measured at {FINETUNE_DEFAULTS.finetune.steps} "
        "steps; use the default for results you compare."
    )
try:
    cfg = finetune_config(
        w,
        poisoned,
        targets=target_rule,
        budget=int(budget),
        steps=int(steps),
        seed=seed,
        model=str(model_dir),
        device=device,
    )
except ValueError as e:
    st.error(str(e))
    st.stop()
rates = cached_rates(str(model_dir), device, cfg.finetune.precision, cfg.finetune.params)
if rates is None:
    s3.metric("Estimated run time", "not measured")
    took = last_measure_seconds()
    about = f"took {format_seconds(took)} last time" if took else "10–60 s"
    if s3.button(f"Measure this machine ({about})", key="p_measure"):
        with st.spinner("Timing fine-tune steps, sampling and judging on this machine…"):
            measured = measure_rates(
                str(model_dir), device, cfg.finetune.precision, params=cfg.finetune.params
            )
        st.session_state["p_measured_s"] = measured.seconds
        st.rerun()
else:
    if st.session_state.get("p_measured_s"):
        s3.caption(
            f"Measured in {format_seconds(st.session_state['p_measured_s'])}; the run reuses "
            "these rates (it does not measure again)."
        )
    est = estimate(cfg, k, rates)
    s3.metric(
        "Estimated run time",
        format_seconds(est.total),
        help=f"Set-up {format_seconds(est.start + est.setup)}, training "
        f"{format_seconds(est.train)}, probes {format_seconds(est.probes)}, evaluation "
        f"{format_seconds(est.evaluate)}; rates measured on this machine at load "
        f"{rates.load:.1f} ({rates.train:.0f} training img/s).",
    )

st.subheader("Preview: clean vs poisoned training pairs")
src = st.selectbox("Poisoned concept", poisoned, format_func=lambda i: w.names[i], key="p_prev")
pv = preview(str(model_dir), stamp, src, targets[src], method, float(eps))
st.caption(pv["note"])
c, p = st.columns(2)
# 160 px: two pairs a row in each half of the 1280 px page (at 128 px three fit, and the fourth
# pair sat alone on a second row)
imgs, caps = pv["clean"]
c.markdown("**Clean pairs** (blue)")
c.image([im.repeat(5, 0).repeat(5, 1) for im in imgs], caption=caps, width=160)
imgs, caps = pv["poisoned"]
p.markdown("**Poisoned pairs ×** (vermillion)")
p.image([im.repeat(5, 0).repeat(5, 1) for im in imgs], caption=caps, width=160)

if method == "nightshade":
    st.info(
        "Runs are dirty-label: the sweep pipeline that writes packs poisons with dirty-label "
        "pairs. Nightshade-style poison is compared with dirty-label by `implosion sweep-budget`. "
        "In the shipped world it does not work yet (0\u00a0% attack success): its small VAE encoder is "
        "smooth, so a 16/255 perturbation moves an image's latent only 20–40\u00a0% of the way to another "
        "concept's (Stable Diffusion's encoder goes most of the way). Encoders of this size that "
        "do go ≥\u00a080\u00a0% of the way exist only before they have learned shapes; the lab notebook "
        "(bench/results/science.md, the encoder gate) has the measurements."
    )
if st.button("Launch run", type="primary", key="p_launch", disabled=method == "nightshade"):
    from core.jobs import start_job
    from pages._class import current_principal

    try:
        run_id = start_job(
            "finetune",
            job_config(cfg, w.names),
            device=device,
            queue=True,
            seed=seed,
            actor=current_principal(),
        )
    except ValueError as e:
        st.error(f"Could not start the run: {e}.")
    else:
        st.session_state["run"] = run_id
        st.switch_page("pages/jobs.py", query_params={"run": run_id})
