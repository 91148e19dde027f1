"""Jobs: live progress of background runs (step, loss curve, ETA, samples, log), controls,
past runs. The run id lives in ``?run=`` so a reload re-attaches to the same run."""

from pathlib import Path

import streamlit as st

from core import jobs
from core.figures.trajectory import loss_curve_figure
from core.results.pack import find_pack_dir
from core.sweep import real_config as real_sweep
from pages._ui import markdown_table, route_through_app

route_through_app()

st.title("Jobs")
st.caption("Jobs run in their own processes: closing the tab or reloading does not stop them.")

PRESETS = {
    "ci-smoke": "seconds, tiny model (tests)",
    "cpu-quick": "about 6 min on 2 CPU cores: C_P 0–32, 3 seeds",
    "cpu-full": "about 25 min on 2 CPU cores: gpu-full's levels, 5 seeds (the demo pack)",
    "gpu-full": "the full sweep, one GPU",
}


def started(rid: str) -> None:
    st.session_state["run"] = rid
    st.query_params["run"] = rid


with st.expander("Start a sweep (AD and implosion over C_P)"):
    model_kind = st.radio(
        "Model",
        ["Embedded mini model", "Real Stable Diffusion"],
        horizontal=True,
        key="j_sweep_model",
        help="Real: a diffusers SD 1.x/2.x folder, a CLIP folder and a captioned image folder "
        "(same as `implosion real sweep`).",
    )
    if model_kind == "Embedded mini model":
        preset = st.radio(
            "Preset",
            list(PRESETS),
            format_func=lambda p: f"{p} — {PRESETS[p]}",
            horizontal=True,
            key="j_preset",
        )
        if st.button("Start sweep", key="j_start_sweep"):
            try:
                with st.spinner("Starting the sweep worker (first start loads the model code)…"):
                    rid = jobs.start_job("sweep", {"preset": preset}, device="auto", queue=True)
            except ValueError as e:
                st.error(f"Could not start the sweep: {e}. Check `implosion sweep --help` works.")
            else:
                started(rid)
    else:
        a, b = st.columns(2)
        form = {
            "model": a.text_input("SD model folder", key="j_real_model",
                                  placeholder="/models/stable-diffusion-v1-5"),
            "clip": b.text_input("CLIP folder", key="j_real_clip",
                                 placeholder="/models/clip-vit-base-patch32"),
            "data": a.text_input("Dataset folder (images + same-name .txt captions)",
                                 key="j_real_data"),
            "concepts": b.text_area("Concepts: one per line, comma-separated keywords (empty: "
                                    "most frequent caption words)", key="j_real_concepts",
                                    placeholder="dog, puppy\ncat, kitten\ncar", height=100),
            "levels": a.text_input("Levels C_P", "0 1 2", key="j_real_levels"),
            "seeds": b.text_input("Seeds", "0", key="j_real_seeds"),
            "mode": a.selectbox("Fine-tune", ["xattn", "lora", "full"], key="j_real_mode"),
            "steps": b.number_input("Steps per level", 1, 100_000, 100, key="j_real_steps"),
        }  # fmt: skip
        if st.button("Start real sweep", key="j_start_real"):
            try:
                with st.spinner("Checking the folders and captions, then starting the worker…"):
                    rid = real_sweep.start_real_sweep_job(form, device="auto", queue=True)
            except (ValueError, FileNotFoundError) as e:
                st.error(f"Could not start the real sweep: {e}")
            else:
                started(rid)

try:
    runs = jobs.list_runs(limit=50)
except ValueError as e:
    st.error(f"Cannot read the runs directory: {e}")
    st.stop()
if not runs:
    st.info(
        "No runs yet. Start one from **Poison setup**, the sweep box above, or the CLI "
        "(`implosion jobs start dummy` for a harmless test job)."
    )
    st.stop()

ids = [r["run_id"] for r in runs]
# ?run= wins when it changed from outside (deep link, reload, a job just started, another page);
# otherwise the selectbox keeps the user's choice. The choice is mirrored back into the URL.
url_run = st.query_params.get("run")
if url_run in ids and url_run != st.session_state.get("j_synced"):
    st.session_state["j_run"] = url_run
elif st.session_state.get("j_run") not in ids:
    fallback = st.session_state.get("run")
    st.session_state["j_run"] = fallback if fallback in ids else ids[0]
run_id = st.selectbox(
    "Run", ids, key="j_run", help="Run ids read <UTC time>-<kind>-<random>; the state is below."
)
st.session_state["run"] = st.session_state["j_synced"] = run_id
if st.query_params.get("run") != run_id:
    st.query_params["run"] = run_id


def control(action: str) -> None:
    fn = {
        "stop": jobs.stop_job,
        "pause": jobs.pause_job,
        "resume": jobs.resume_job,
        "cancel": jobs.cancel_job,
    }[action]
    try:
        fn(run_id)
        st.toast(f"{action} requested for {run_id}")
    except ValueError as e:
        st.error(str(e))


c = st.columns(4)
for col, action in zip(c, ("pause", "resume", "stop", "cancel")):
    col.button(
        action.capitalize(),
        key=f"j_{action}",
        on_click=control,
        args=(action,),
        use_container_width=True,
    )


def show(run_id: str, live: bool = False) -> None:
    """Status, progress bar, ETA, loss curve, latest samples and log tail of one run."""
    try:
        run = jobs.read_run(run_id)
    except ValueError as e:
        st.error(str(e))
        return
    status, prog = run["status"], run["progress"] or {}
    state = status.get("state", "?")
    step, total = prog.get("step") or 0, prog.get("total")
    eta = prog.get("eta_seconds")
    m = st.columns(4)
    m[0].metric("State", state)
    m[1].metric("Step", f"{step} / {total}" if total else str(step))
    m[2].metric("Loss", "—" if prog.get("loss") is None else f"{prog['loss']:.4f}")
    m[3].metric("ETA", "—" if eta is None or state != "running" else f"{eta:.0f} s")
    if total:
        st.progress(min(1.0, step / total), text=prog.get("message") or f"step {step}")
    if status.get("error_message"):
        st.error(status["error_message"])
    hist = prog.get("history") or []
    if hist:
        st.plotly_chart(
            loss_curve_figure([h["step"] for h in hist], [h["loss"] for h in hist]),
            key=f"j_loss_{run_id}",
        )
    samples = sorted(Path(run["run_dir"], "samples").glob("*.png"), key=lambda p: p.stat().st_mtime)
    if samples:
        st.markdown("**Latest probe samples**")
        st.image([str(p) for p in samples[-4:]], caption=[p.name for p in samples[-4:]], width=160)
    if state == "completed" and find_pack_dir(Path(run["run_dir"])) is not None:
        if st.button("Open this run's results", key=f"j_open_{run_id}", type="primary"):
            st.session_state["pack"] = run_id
            st.switch_page("pages/trajectory.py", query_params={"pack": run_id})
    if run["result"]:
        st.success(
            "Finished. Results: "
            + ", ".join(f"{k} = {v}" for k, v in list(run["result"].items())[:6])
        )
    with st.expander("Log (last 30 lines)"):
        st.code(jobs.read_log(run_id, tail=30) or "(empty)", language=None)
    if live and state in jobs.TERMINAL_STATES:
        st.rerun()  # stop polling: redraw the whole page once with the final state


state = next(r["state"] for r in runs if r["run_id"] == run_id)
if state in jobs.ACTIVE_STATES:
    st.fragment(run_every=1.0)(show)(run_id, live=True)
else:
    show(run_id)

st.subheader("All runs")
st.markdown(
    markdown_table(
        [
            {
                k: (round(r[k], 4) if k == "loss" and r.get(k) is not None else r.get(k))
                for k in ("run_id", "kind", "state", "step", "total", "loss", "created")
            }
            for r in runs
        ]
    )
)
