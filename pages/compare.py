"""Compare runs and export: overlay metrics of several packs; download figures and run bundles."""

import streamlit as st

from core.figures.palette import METRIC_LABELS
from core.figures.trajectory import compare_figure
from core.jobs.labels import distinct
from pages._present import intro, show, terms, url_choice, url_keep
from pages._ui import (
    _load,
    _stamp,
    chosen_pack_name,
    export_buttons,
    markdown_table,
    pack_choices,
    route_through_app,
    run_choices,
    run_label,
)

route_through_app()

intro(
    "Compare runs & export",
    "One measure of several runs on the same C_P axis, and downloads of figures and whole runs.",
    "C_P",
    "AD",
)
packs = pack_choices()
if not packs:
    st.info("Nothing to compare yet: play the demo from **Home** or finish a sweep in **Jobs**.")
    st.stop()

runs = run_choices()
labels = distinct({r.id: run_label(r) for r in runs})  # name · date · model, not a raw id
# The figure's legend names a run by name and start only (the table below has the rest), so each
# entry fits one line of the 1280 px column.
legend = distinct(
    {r.id: f"{r.name[:1].upper()}{r.name[1:]} · {(r.created or '')[:16].replace('T', ' ')}"
     for r in runs}
)  # fmt: skip
# the compared runs and the metric live in the URL (?runs=a,b&metric=ad): a copied link reopens
url_runs = st.query_params.get("runs")
if url_runs is not None and url_runs != st.session_state.get("_cmp_packs_url_seen"):
    st.session_state["_cmp_packs_url_seen"] = url_runs
    st.session_state["cmp_packs"] = [r for r in url_runs.split(",") if r in packs]
open_run = chosen_pack_name(list(packs))  # the run open in the sidebar picker comes first
if "cmp_packs" not in st.session_state:
    rest = [p for p in packs if p != open_run]
    st.session_state["cmp_packs"] = ([open_run] if open_run in packs else []) + rest[:1]
st.session_state["cmp_packs"] = [r for r in st.session_state["cmp_packs"] if r in packs]
chosen = st.multiselect(
    "Packs / runs",
    list(packs),
    key="cmp_packs",
    format_func=lambda i: labels.get(i, i),
)
url_keep("runs", "cmp_packs", ",".join(chosen) or None)
url_choice("metric", "cmp_metric", list(METRIC_LABELS), list(METRIC_LABELS)[0])
metric = st.selectbox(
    "Metric",
    list(METRIC_LABELS),
    format_func=METRIC_LABELS.get,
    key="cmp_metric",
    help=terms("AD", "D_fea", "D_stru", "incoherence", "attack success", "related"),
)
url_keep("metric", "cmp_metric", metric)

loaded = {}
for name in chosen:
    try:
        loaded[name] = _load(str(packs[name]), _stamp(packs[name]))
    except (FileNotFoundError, ValueError) as e:
        st.error(f"Cannot open “{labels.get(name, name)}”: {e}")
if loaded:
    fig = compare_figure({legend.get(n, n): p.summary for n, p in loaded.items()}, metric)
    show(fig, "cmp_chart")
    export_buttons(fig, f"compare-{metric}")
    st.markdown(
        markdown_table(
            [
                {
                    "pack": labels.get(n, n),
                    "preset": p.config.get("preset"),
                    "concepts": len(p.concepts),
                    "levels": ", ".join(map(str, p.levels)),
                    "seeds": len(p.config.get("seeds", [])),
                }
                for n, p in loaded.items()
            ]
        )
    )

st.subheader("Download a run as a zip bundle")
st.caption(
    "Results with the run's config, training curves, and one labelled image grid per C_P: every "
    "concept's generations, the same sampling seeds as columns at every level. A job's run adds "
    "its log and the images it saved while training. No weights."
)
which = st.selectbox(
    "Run or pack",
    list(packs),
    index=list(packs).index(open_run) if open_run in packs else 0,
    key="cmp_bundle",
    format_func=lambda i: labels.get(i, i),
)
if st.button("Prepare bundle", key="cmp_prepare"):
    from core.results.export import bundle_run

    with st.spinner("Zipping…"):
        try:
            st.session_state["bundle"] = (which, bundle_run(packs[which]))
        except (OSError, ValueError) as e:  # a broken pack (core.results.validate) says why
            st.session_state.pop("bundle", None)
            st.error(f"Cannot bundle “{labels.get(which, which)}”: {e}")
if st.session_state.get("bundle"):
    name, data = st.session_state["bundle"]
    st.download_button(
        f"Download {name}.zip ({len(data) / 1e6:.1f} MB)",
        data,
        file_name=f"{name}.zip",
        mime="application/zip",
        key="cmp_download",
    )
