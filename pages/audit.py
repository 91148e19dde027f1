"""Audit: how hard is this data to align, which concepts collide, which pairs look poisoned, and
how badly will the model implode? Pick a planned attack on the base (or a folder, a manifest, a
pack level), see the health score, the overlapping-concept graph, the flagged pairs and the
forecast beside the measured outcome; one click launches the run that checks the forecast."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import streamlit as st

from core.audit.figures import forecast_figure, overlap_figure
from core.audit.plan import PlannedAttack, check_run_job
from core.audit.request import AuditRequest, prepare, run_audit
from core.figures.palette import METRIC_LABELS, style
from core.jobs.labels import pack_name
from core.results.pack import list_models, list_packs
from pages._present import show
from pages._ui import export_buttons, route_through_app

route_through_app()

SOURCES = {
    "Planned attack on the base": "plan",
    "Captioned image folder": "dataset",
    "Manifest (upload)": "manifest",
    "Pack level": "pack",
}


@st.cache_resource(show_spinner="Auditing: building and embedding the pairs, AD, detectors…")
def audited(req: AuditRequest):
    """The audit of ``req`` (one core call; cached per request)."""
    return run_audit(prepare(req))


st.title("Audit: predict implosion before training")
st.caption(
    "AD is a property of the training pairs. The audit measures it, shows which concepts make "
    "it hard and which pairs look poisoned, and forecasts the fine-tune's outcome from this "
    "model's finished sweeps (never outside the AD range they cover)."
)

models = list_models()
labels = list(models) or ["shipped base (clean)"]
model_label = st.selectbox("Model", labels, key="a_model", help="The dual encoder and its sweeps.")
model = None if model_label == "shipped base (clean)" else str(models.get(model_label, ""))
source = SOURCES[st.radio("Audit", list(SOURCES), horizontal=True, key="a_source")]

req = None
try:
    if source == "plan":
        c1, c2, c3 = st.columns(3)
        c_p = c1.number_input("C_P (poisoned concepts)", 0, 128, 8, key="a_cp")
        seed = c2.number_input("Seed", 0, 10_000, 20, key="a_seed")
        method = c3.selectbox(
            "Method",
            ["dirty-label", "nightshade"],
            key="a_method",
            help="Nightshade plans run PGD on every poison image (≈ 0.5 s each on a CPU).",
        )
        attack = PlannedAttack(int(c_p), int(seed), method)
        req = AuditRequest("plan", attack=attack, model=model)
    elif source == "dataset":
        folder = st.text_input("Folder of images with same-name .txt captions", key="a_folder")
        if folder:
            req = AuditRequest("dataset", path=folder, model=model)
    elif source == "manifest":
        up = st.file_uploader("Manifest (.jsonl / .csv)", type=["jsonl", "csv"], key="a_upload")
        root = st.text_input("Folder the manifest's image paths are relative to", key="a_root")
        if up is not None and root:
            data = up.getvalue()  # one file per content: reruns reuse it (and the cached audit)
            digest = hashlib.sha256(data).hexdigest()[:16]
            tmp = Path(tempfile.gettempdir()) / f"audit-manifest-{digest}" / Path(up.name).name
            if not tmp.is_file():
                tmp.parent.mkdir(exist_ok=True)
                tmp.write_bytes(data)
            req = AuditRequest("manifest", path=str(tmp), root=root, model=model)
    else:
        packs = list_packs()
        name = st.selectbox("Pack", list(packs), key="a_pack")
        if name:
            from core.results.pack import load_pack

            levels = load_pack(packs[name]).levels
            lv = st.selectbox("Level C_P", levels, index=len(levels) // 2, key="a_level")
            req = AuditRequest("pack", path=str(packs[name]), level=int(lv))
except ValueError as e:
    st.error(str(e))
    st.stop()

if req is None:
    st.info("Give the input above to audit it.")
    st.stop()
if not st.toggle("Run the audit", value=source == "plan", key=f"a_run_{source}"):
    st.stop()
try:
    audit = audited(req)
except (ValueError, FileNotFoundError) as e:
    st.error(str(e))
    st.stop()
rep = audit.report()
h = rep.health

st.subheader("Health")
m = st.columns(5)
m[0].metric("AD", f"{h.ad:.3f}", help="α·D_fea + (1 − α)·D_stru; higher = harder to align")
m[1].metric("D_fea (pairs)", f"{h.d_fea:.3f}")
m[2].metric("D_stru (structure)", f"{h.d_stru:.3f}")
m[3].metric("pairs", f"{h.n:,}")
m[4].metric("flagged", f"{rep.flagged_total:,}", help=", ".join(rep.detectors))
for note in rep.notes:
    st.caption(note)

st.subheader("Forecast")
pr = rep.prediction
if pr is None:
    st.info("No forecast: " + "; ".join(n.removeprefix("prediction: ") for n in rep.notes))
else:
    f = st.columns(4)
    pct = round(100 * pr.level)
    if pr.acc_unpoisoned is not None:
        f[0].metric(
            "Predicted accuracy",
            f"{pr.acc_unpoisoned:.2f}",
            help="Judged accuracy on unpoisoned concepts after the fine-tune",
        )
        f[0].caption(f"{pct} % interval [{pr.low:.2f}, {pr.high:.2f}]")
    else:
        f[0].metric("Predicted accuracy", "—")
    if pr.incoherence is not None:
        f[1].metric("Predicted incoherence", f"{pr.incoherence:.3f}")
        f[1].caption(f"{pct} % interval [{pr.incoherence_low:.3f}, {pr.incoherence_high:.3f}]")
    meas = pr.measured
    if meas:
        acc = meas.get("acc_unpoisoned")
        f[2].metric("Measured accuracy", "—" if acc is None else f"{acc:.2f}")
        f[3].metric("Measured incoherence", f"{meas.get('incoherence') or 0:.3f}")
        st.caption(
            f"Measured: C_P {meas['c_p']}, seed {meas['seed']}"
            + (f", run {meas['run']}" if meas.get("run") else " (a run the calibration saw)")
        )
    for note in pr.notes:
        st.caption(note)
    fitted = ", ".join(pack_name(p) for p in pr.fitted_on)
    st.caption(
        f"Calibration: model {Path(pr.model).name}, fitted on {fitted}.",
        help=f"Model folder {pr.model}; fitted on {', '.join(pr.fitted_on)}.",
    )
    if audit.calibration is not None:
        which = st.radio(
            "Outcome",
            ["acc_unpoisoned", "incoherence"],
            format_func=METRIC_LABELS.get,
            horizontal=True,
            key="a_outcome",
        )
        fig = forecast_figure(audit.calibration, h.ad, pr, which)
        # the app's figure style (16 px text, legend below), as every other page's figures
        style(fig, None, 460).update_yaxes(title=METRIC_LABELS[which])
        show(fig, "a_forecast", use_container_width=True)
        export_buttons(fig, f"audit-forecast-{which}")

if req.source == "plan" and req.attack is not None and audit.calibration is not None:
    try:
        from core.results.pack import load_pack

        job = check_run_job(req.attack, load_pack(Path(audit.calibration.fitted_on[0])).config)
    except ValueError as e:
        st.caption(f"Check run: {e}")
    else:
        if st.button("Launch the run that checks this forecast", type="primary", key="a_launch"):
            from core.jobs import start_job

            try:
                run_id = start_job("finetune", job, device="cpu", queue=True, seed=req.attack.seed)
            except ValueError as e:
                st.error(f"Could not start the run: {e}.")
            else:
                st.session_state["run"] = run_id
                st.switch_page("pages/jobs.py", query_params={"run": run_id})
        st.caption(
            "Trains the clean baseline and this level with the calibration's fine-tune, as "
            "Poison setup does; when it finishes, its measured outcome appears here."
        )

st.subheader("Overlapping concepts")
if rep.overlapping:
    fig = overlap_figure(rep)
    st.plotly_chart(fig, use_container_width=True)
    export_buttons(fig, "audit-overlaps")
else:
    st.caption("Fewer than two concepts: no concept pairs to compare.")

left, right = st.columns(2)
left.markdown("**Largest AD shares**")
left.dataframe(
    [{"concept": c.name, "pairs": c.n, "AD share": round(c.share, 4)} for c in rep.concepts[:10]],
    hide_index=True,
)
if rep.flag_truth:
    t = rep.flag_truth
    right.markdown("**Flags vs ground truth**")
    right.write(
        f"{t['flagged_poisoned']:,} of {t['poisoned']:,} poisoned pairs flagged; "
        f"{t['flagged']:,} flagged in all."
    )

st.subheader("Flagged pairs")
shown = rep.flagged[:12]
if not shown:
    st.caption("No pair fires a detector rule.")
for i, fp in enumerate(shown):
    if i % 6 == 0:  # a row of six at a time, so rows stay level whatever the captions' lengths
        cols = st.columns(6)
    with cols[i % 6]:
        thumb = audit.pairs.thumbnail(fp.index)
        if thumb is not None:
            img = thumb.repeat(3, 0).repeat(3, 1) if hasattr(thumb, "repeat") else thumb
            st.image(img, width=96)
        mark = "" if fp.poisoned is None else (" ×" if fp.poisoned else " ✓")
        st.caption(
            f"#{fp.index}{mark} · {fp.caption or fp.name}\n\n"
            f"{', '.join(fp.reasons)} · 1−cos {fp.scores['misalignment']:.2f}"
        )
