"""Jobs: live progress of background runs (state, progress, ETA counting down, latest grids,
log), the controls that apply to the run's state, and for a finished run the clean-vs-poisoned
table with "Open in the explorer". The run id lives in ``?run=`` so a reload re-attaches.

Polling reads only the run's small JSON files (status, progress, result) and the log tail,
at most every 2 s."""

from pathlib import Path

import streamlit as st

from core import jobs
from core.figures.trajectory import loss_curve_figure
from core.jobs.devices import busy_with
from core.jobs.fair import queue_place
from core.jobs.labels import distinct, run_label
from core.jobs.progress import format_left, time_left
from core.jobs.store import read_json, run_path
from core.results.runs import get_run, run_summary
from core.sweep.mini.config import PRESET_NOTES
from core.sweep.real import config as real_sweep
from pages._class import current_principal
from pages._present import show as show_figure
from pages._ui import markdown_table, route_through_app

route_through_app()

st.title("Jobs")
st.caption("Jobs run in their own processes: closing the tab or reloading does not stop them.")

PRESETS = PRESET_NOTES  # each preset's description and duration, from core/sweep/mini/config.py
POLL_S = 2.0  # at most one refresh of a live run every 2 s


def started(rid: str) -> None:
    st.session_state["run"] = rid
    st.query_params["run"] = rid


def _ints(text: str, field: str) -> list[int] | None:
    if not text.strip():
        return None
    try:
        return [int(x) for x in text.replace(",", " ").split()]
    except ValueError as e:
        raise ValueError(f"{field}: {text!r} is not a list of whole numbers, e.g. 0 2 4") from e


@st.cache_data(show_spinner=False)
def base_names() -> list[str]:
    from core.sweep.mini.finetune import model_world

    try:
        return model_world(None).names
    except ValueError:
        return []


def custom_sweep_config(
    preset: str, levels: str, seeds: str, concepts: list[str], ray_address: str = ""
) -> dict:
    """The ``sweep`` job config for the form, validated here (SweepConfig) before a worker starts.
    ``ray_address``: run the levels as Ray tasks on that cluster ("auto", "ray://host:10001",
    "local" for a Ray started with the sweep); blank: the local executor."""
    from core.sweep.mini.run import preset as make_preset

    names = base_names()
    cfg: dict = {"preset": preset}
    address = ray_address.strip()
    if address:
        from core.sweep.executors import ray_available

        if not ray_available():
            raise ValueError(
                "Ray address: Ray is not installed here; pip install -e '.[cluster]' "
                "(or leave the field blank for the local executor)"
            )
        from core.sweep.executors import app_ray_address

        cfg["executor"] = "ray"
        cluster = app_ray_address(address)  # a cluster only if the server was started allowing it
        if cluster is not None:
            cfg["address"] = cluster
    lv, sd = _ints(levels, "levels"), _ints(seeds, "seeds")
    if lv is not None:
        cfg["levels"] = lv
    if sd is not None:
        cfg["seeds"] = sd
    if concepts:
        cfg["concepts"] = [names.index(n) for n in concepts]
        cfg.setdefault("levels", list(range(0, len(concepts) + 1)))
    job_only = {"preset", "executor", "address"}  # read by the job, not SweepConfig fields
    from core.sweep.mini.checks import check_sweep

    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()}
    sweep = make_preset(preset, **{k: v for k, v in fields.items() if k not in job_only})
    check_sweep(sweep)  # the launcher's checks, as the CLI's: C_P ≤ K, memory
    return cfg


ME = current_principal()  # every job call below acts for this session (a class server's member)

with st.expander("Start a sweep (AD and implosion over C_P)"):
    model_kind = st.radio(
        "Model",
        ["Embedded mini model"] + ([] if ME.role == "student" else ["Real Stable Diffusion"]),
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
        a, b = st.columns(2)
        levels_text = a.text_input("Levels C_P (blank: the preset's)", key="j_levels")
        seeds_text = b.text_input("Seeds (blank: the preset's)", key="j_seeds")
        concepts = st.multiselect(
            "Poison these concepts, in this order (blank: each seed's random order)",
            base_names(),
            key="j_concepts",
            help="Level C_P poisons the first C_P of them; levels default to 0, 1, … up to all.",
        )
        from core.sweep.executors import ALLOW_RAY_ADDRESS_HOW, ray_address_allowed

        clusters = ray_address_allowed()
        ray_address = st.text_input(
            "Ray address (blank: this machine's processes)",
            key="j_ray_address",
            placeholder="local · auto · ray://head-node:10001" if clusters else "local",
            help="Run each level as a Ray task: 'local' starts Ray with the sweep (listening on "
            "127.0.0.1 only), 'auto' joins the cluster this machine belongs to, ray://… a remote "
            "head (docs/cluster.md).",
        )
        if not clusters:
            st.caption(f"Ray clusters are off for this server: 'local' only. To allow them, "
                       f"{ALLOW_RAY_ADDRESS_HOW}.")  # fmt: skip
        if st.button("Start sweep", key="j_start_sweep"):
            try:
                cfg = custom_sweep_config(preset, levels_text, seeds_text, concepts, ray_address)
                with st.spinner("Starting the sweep worker (first start loads the model code)…"):
                    rid = jobs.start_job("sweep", cfg, device="auto", queue=True, actor=ME)
            except ValueError as e:
                st.error(f"Could not start the sweep: {e}")
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
    runs = jobs.list_runs(limit=50, actor=ME)
except ValueError as e:
    st.error(f"Cannot read the runs directory: {e}")
    st.stop()
if not runs:
    st.info(
        "No runs yet. Start one from **Poison setup**, the sweep box above, or the CLI "
        "(`implosion jobs start dummy` for a harmless test job)."
    )
    st.stop()


@st.cache_data(show_spinner=False, max_entries=256)
def run_name(run_id: str) -> str:
    """Readable name of a run from its config (which never changes): core.jobs.labels."""
    try:
        cfg = read_json(run_path(run_id) / "config.json") or {}
    except ValueError:
        return run_id
    return run_label(str(cfg.get("kind") or "job"), cfg.get("config"))


def label(r: dict) -> str:
    # No state in the option label: a keyed selectbox keeps the labels it was first drawn with, so
    # a state here went stale ("running" beside State "completed"); the State metric below is live.
    when = str(r.get("created") or "")[:16].replace("T", " ")
    return f"{run_name(r['run_id'])} · {when}"


by_id = {r["run_id"]: r for r in runs}
ids = list(by_id)
labels = distinct({i: label(r) for i, r in by_id.items()})  # two runs never share a label
# ?run= wins when it changed from outside (deep link, reload, a job just started, another page);
# otherwise the selectbox keeps the user's choice. The choice is mirrored back into the URL.
url_run = st.query_params.get("run")
if url_run and url_run not in ids and url_run != st.session_state.get("j_synced"):
    try:  # say why a ?run= this session may not open is not shown
        jobs.read_run(url_run, actor=ME)
    except ValueError as e:
        st.error(f"Not opened: {e}.")
if url_run in ids and url_run != st.session_state.get("j_synced"):
    st.session_state["j_run"] = url_run
elif st.session_state.get("j_run") not in ids:
    fallback = st.session_state.get("run")
    st.session_state["j_run"] = fallback if fallback in ids else ids[0]
run_id = st.selectbox(
    "Run",
    ids,
    key="j_run",
    format_func=labels.__getitem__,
    help="Name · start (UTC); the state is shown below",
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
        "delete": jobs.remove_job,
    }[action]
    try:
        fn(run_id, actor=ME)
        st.toast(f"{action} requested for {run_id}" if action != "delete" else f"deleted {run_id}")
    except ValueError as e:
        st.error(str(e))
    if action == "delete":
        st.session_state.pop("run", None)
        st.session_state.pop("j_run", None)


# The controls that apply in each state (a finished run can only be deleted).
ACTIONS = {
    "queued": ("cancel",),
    "running": ("pause", "stop", "cancel"),
    "paused": ("resume", "stop", "cancel"),
    "stopped": ("resume", "delete"),
    "failed": ("resume", "delete"),
    "broken": ("resume", "delete"),
    "completed": ("delete",),
    "cancelled": ("delete",),
}


def comparison_rows(ref: str) -> list[dict]:
    """Clean baseline vs poisoned level(s) of a run's pack, one row per C_P (means over seeds)."""

    def f(v: float | None) -> str:
        return "—" if v is None else f"{v:.3f}"

    rows = []
    for s in run_summary(ref, actor=ME):
        rows.append(
            {
                "level": "clean baseline" if s.c_p == 0 else f"poisoned (C_P = {s.c_p})",
                "AD": f(s.ad),
                "accuracy, unpoisoned": f(s.acc_unpoisoned),
                "accuracy, poisoned": f(s.acc_poisoned),
                "incoherence": f(s.incoherence),
                "attack success": f(s.attack_success),
            }
        )
    return rows


def level_states(run_dir: Path) -> list | None:
    """Per-level state of a sweep run (queued / running on which node / done / failed), from the
    driver's levels.json in the run's sweep or pack folder; None for other runs."""
    for sub in ("sweep", "pack"):
        if (run_dir / sub / "levels.json").is_file():
            from core.sweep.engine import read_level_states  # only for sweeps: imports torch

            return read_level_states(run_dir / sub)
    return None


def results(run_dir: Path, state: str) -> None:
    """The pack's table and the explorer link, once a level is saved."""
    try:
        info = get_run(run_dir.name, actor=ME)
    except ValueError:
        return
    if not info.levels_done:
        return
    st.markdown(
        f"**{info.name}** — {'complete' if info.complete else 'levels saved so far'}: "
        f"C_P {', '.join(str(c) for c in info.levels_done)} of {', '.join(map(str, info.levels))}"
    )
    st.markdown(markdown_table(comparison_rows(info.id)))
    if info.complete or state == "completed":  # the result as labelled clean | poisoned rows
        from pages._present import result_rows
        from pages._ui import generations, open_pack, pack_key

        pack = open_pack(info.id)
        if pack is not None:
            result_rows(pack, generations(pack_key(pack)))
    if st.button("Open in the explorer", key=f"j_open_{info.id}", type="primary"):
        st.session_state["pack"] = info.id
        st.switch_page("pages/graph.py", query_params={"pack": info.id})


def show(run_id: str, live: bool = False, drawn: str | None = None) -> None:
    """State, progress, ETA, loss curve, latest grids, results and log tail of one run.

    ``live``: polled; when the run's state is no longer ``drawn`` (the state the page was drawn
    with: queued → running, running → completed) the whole page is redrawn, so the controls and
    the runs table agree with this header."""
    try:
        run = jobs.read_run(run_id, actor=ME)
    except ValueError as e:
        st.error(str(e))
        return
    status, prog = run["status"], run["progress"] or {}
    state = status.get("state", "?")
    step, total = prog.get("step") or 0, prog.get("total")
    left, note = time_left(prog)  # counted down between reports, never 0 s before the end
    fraction = prog.get("fraction")
    if not isinstance(fraction, int | float):
        fraction = step / total if total else None
    m = st.columns(4)
    m[0].metric("State", state)
    m[1].metric("Progress", "—" if fraction is None else f"{100 * fraction:.0f} %")
    m[2].metric("Loss", "—" if prog.get("loss") is None else f"{prog['loss']:.4f}")
    shown = {
        "estimate": "Time left (estimate)",
        "overdue": "Time left (running late)",
        "estimating": "Time left (estimating…)",  # no time until the first steps are measured
    }
    m[3].metric(
        shown.get(note, "Time left") if state == "running" else "Time left",
        "—"
        if state != "running" or left is None
        else format_left(left, "") + ("+" if note == "overdue" else ""),
        help="The up-front estimate blended with this run's own pace; marked as an estimate "
        "until the run has measured enough of its own steps.",
    )
    if state == "queued":
        holder = busy_with(str(status.get("device") or "cpu"), exclude=run_id)
        place = queue_place(run_id)
        where = f"place {place[0]} of {place[1]} in the queue; " if place else ""
        # another student's run is not named to a student: "another run"
        other = f"run {holder} ({run_name(holder)})" if holder in by_id else "another run"
        st.info(
            f"Queued: {where}waiting for {other} to free the device."
            if holder
            else "Queued: the worker is starting."
        )
    if fraction is not None:
        text = prog.get("message") or f"step {step} / {total}"
        if state != "running":  # the last work message ("writing the pack files") is history
            text = f"{state} at step {step} / {total}" if total else state
        st.progress(min(1.0, fraction), text=text)
    if status.get("error_message"):
        st.error(status["error_message"])
    hist = prog.get("history") or []
    if hist:
        show_figure(  # the app's figure style (16 px text), as every explorer page
            loss_curve_figure([h["step"] for h in hist], [h["loss"] for h in hist]),
            f"j_loss_{run_id}",
        )
    run_dir = Path(run["run_dir"])
    grids = [*run_dir.glob("*/grids/*.png"), *(run_dir / "samples").glob("*.png")]
    grids = sorted(grids, key=lambda p: p.stat().st_mtime)[-4:]
    if grids and state != "completed":  # a finished run: labelled rows under its results
        st.markdown("**Latest generations**")
        st.image([str(p) for p in grids], caption=[p.stem for p in grids], width=160)
    levels = level_states(run_dir)
    if levels:
        st.markdown("**Levels**")
        st.dataframe(
            [
                {
                    "C_P": lv.c_p,
                    "seed": lv.seed,
                    "state": lv.state,
                    "node": lv.node or "",
                    "attempts": lv.attempts,
                    "error": lv.error or "",
                }
                for lv in levels
            ],
            hide_index=True,
        )
    results(run_dir, state)
    with st.expander("Log (last 30 lines)"):
        st.code(jobs.read_log(run_id, tail=30, actor=ME) or "(empty)", language=None)
    if live and state != drawn:
        st.rerun()  # redraw the whole page once with the new state (a final one stops polling)


state = by_id[run_id]["state"]
actions = ACTIONS.get(state, ())
if actions:
    c = st.columns(4)
    for col, action in zip(c, actions):
        col.button(
            action.capitalize(),
            key=f"j_{action}",
            on_click=control,
            args=(action,),
            use_container_width=True,
        )
if state in jobs.ACTIVE_STATES:
    st.fragment(run_every=POLL_S)(show)(run_id, live=True, drawn=state)
else:
    show(run_id)


def all_runs(listed: list[dict] | None = None) -> None:
    """The table of every run, listed afresh on each poll while a run is active (``listed``:
    the list the page was drawn from)."""
    rows = listed if listed is not None else jobs.list_runs(limit=50, actor=ME)
    st.markdown(
        markdown_table(
            [
                {
                    "run": run_name(r["run_id"]),
                    **({"owner": r.get("owner") or "—"} if ME.role == "teacher" else {}),
                    "id": r["run_id"],
                    "state": r.get("state"),
                    "progress": f"{r.get('step') or 0}/{r.get('total') or '?'}",
                    "started": str(r.get("created") or "")[:19].replace("T", " "),
                }
                for r in rows
            ]
        )
    )


st.subheader("All runs")
if any(r.get("state") in jobs.ACTIVE_STATES for r in runs):
    st.fragment(run_every=POLL_S)(all_runs)()
else:
    all_runs(runs)
