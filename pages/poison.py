"""Poison setup: choose the poisoned concepts, method, budget and targets; preview clean vs
poisoned training pairs; estimate the run time; launch the fine-tune as a background job."""

import streamlit as st

from core.poison.plan import (
    TARGET_MODES,
    PoisonPlan,
    choose_targets,
    estimate_seconds,
    preview_pairs,
    random_poison_set,
    world_for,
)
from core.world import valid_n_concepts
from pages._ui import route_through_app

route_through_app()

st.title("Poison setup")
st.caption("Design an attack on the clean base model, then launch it as a background job.")


@st.cache_resource(show_spinner=False)
def world(k: int):
    return world_for(k)


@st.cache_data(show_spinner=False, max_entries=64)
def preview(k: int, src: int, tgt: int, method: str, eps: float):
    return preview_pairs(world(k), src, tgt, method, n=4, epsilon=eps)


ks = valid_n_concepts()
a, b = st.columns(2)
k = a.selectbox(
    "Concepts in the world (K)",
    ks,
    index=ks.index(32) if 32 in ks else 0,
    key="p_k",
    help="Must match the base model (the shipped base has 32).",
)
w = world(k)
pick = b.radio(
    "Choose poisoned concepts", ["Random C_P", "Pick by name"], horizontal=True, key="p_pick"
)
if pick == "Random C_P":
    r1, r2 = st.columns([3, 1])
    c_p = r1.slider("C_P: number of poisoned concepts", 0, k, min(4, k), key="p_cp")
    seed = r2.number_input("Seed", 0, 10_000, 0, key="p_seed")
    poisoned = random_poison_set(k, c_p, int(seed))
else:
    seed = 0
    chosen_names = st.multiselect("Poisoned concepts", w.names, default=w.names[:2], key="p_names")
    poisoned = sorted(w.index(n) for n in chosen_names)
st.markdown(f"**{len(poisoned)} poisoned:** " + (", ".join(w.names[i] for i in poisoned) or "none"))

m1, m2, m3 = st.columns(3)
method = m1.radio(
    "Method",
    ["dirty-label", "nightshade"],
    key="p_method",
    format_func={"dirty-label": "Dirty-label", "nightshade": "Nightshade-style"}.get,
)
budget = m2.number_input("Budget: poisoned samples per concept", 1, 2000, 64, key="p_budget")
eps = m3.slider(
    "Perturbation budget ε (Nightshade)",
    0.02,
    0.5,
    0.1,
    key="p_eps",
    disabled=method != "nightshade",
)

t1, t2 = st.columns([1, 2])
mode = t1.radio(
    "Targets",
    TARGET_MODES,
    key="p_targets",
    help="nearest/farthest = most/fewest attribute words shared with the source",
)

chosen = {}
if mode == "chosen":
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
            st.warning("Choosing by hand is limited to 12 concepts; use another mode for more.")
try:
    targets = choose_targets(w, poisoned, mode, int(seed), chosen)
except ValueError as e:
    st.error(str(e))
    st.stop()

s1, s2, s3 = st.columns(3)
steps = s1.number_input("Fine-tune steps", 10, 20_000, 400, step=50, key="p_steps")
device = s2.selectbox("Device", ["auto", "cpu", "cuda"], key="p_device")
try:
    plan = PoisonPlan(
        k, tuple(poisoned), targets, method, int(budget), float(eps), int(steps), seed=int(seed)
    )
except ValueError as e:
    st.error(str(e))
    st.stop()
est = estimate_seconds(plan, "cuda" if device == "cuda" else "cpu")
s3.metric("Estimated run time", f"{est / 60:.1f} min" if est >= 90 else f"{est:.0f} s")

st.subheader("Preview: clean vs poisoned training pairs")
if poisoned:
    src = st.selectbox("Poisoned concept", poisoned, format_func=lambda i: w.names[i], key="p_prev")
    pv = preview(k, src, targets[src], method, float(eps))
    st.caption(pv["note"])
    c, p = st.columns(2)
    imgs, caps = pv["clean"]
    c.markdown("**Clean pairs** (blue)")
    c.image([im.repeat(4, 0).repeat(4, 1) for im in imgs], caption=caps, width=128)
    imgs, caps = pv["poisoned"]
    p.markdown("**Poisoned pairs ×** (vermillion)")
    p.image([im.repeat(4, 0).repeat(4, 1) for im in imgs], caption=caps, width=128)
else:
    st.info("No poisoned concepts: this would fine-tune on clean data only (a useful control).")

if st.button("Launch fine-tune job", type="primary", key="p_launch"):
    from core.jobs import start_job
    from core.results.pack import list_models

    base = list_models().get("shipped base (clean)")
    try:
        if base is None:
            raise ValueError(
                "the clean base model (assets/base) is missing; build it with "
                "`implosion train-base --out assets/base` or restore it with `git checkout assets/`"
            )
        run_id = start_job(
            "finetune",
            plan.job_config(w.names, str(base)),
            device=device,
            queue=True,
            seed=int(seed),
        )
    except ValueError as e:
        st.error(f"Could not start the job: {e}.")
    else:
        st.session_state["run"] = run_id
        st.switch_page("pages/jobs.py", query_params={"run": run_id})
