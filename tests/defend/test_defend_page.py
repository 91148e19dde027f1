"""The Defend page under AppTest (synthetic pack; the defended-sweep job start is patched)."""

from __future__ import annotations

import json

from streamlit.testing.v1 import AppTest

from tests.support import ROOT

TIMEOUT = 120


def run(**state) -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / "defend.py"), default_timeout=TIMEOUT)
    for k, v in state.items():
        at.session_state[k] = v
    return at.run()


def test_defend_page_roc_histogram_and_threshold(assets):
    at = run()
    assert not at.exception, at.exception
    assert at.selectbox(key="def_detector").value == "misalignment"
    assert at.select_slider(key="def_cp").value == 8
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    roc_traces = [t for t in charts[0]["data"] if t["name"] != "chance"]
    assert len(roc_traces) == 4 and all("AUC" in t["name"] for t in roc_traces)
    assert {t["name"].split(" (")[0] for t in charts[1]["data"]} == {"clean", "poisoned"}
    lost = at.metric[2].value
    at.slider(key="def_fpr").set_value(20.0).run()
    assert not at.exception
    assert at.metric[2].value != lost  # more clean pairs lost at a higher FPR
    at.selectbox(key="def_detector").set_value("knn_disagreement").run()
    assert not at.exception
    assert "Why a filter" in at.subheader[0].value


def test_defend_page_launches_the_defended_sweep(assets, monkeypatch):
    import core.sweep.mini.defended

    calls = []

    def fake_start(request):
        calls.append((request.defense, request.levels, request.seeds))
        return "run-123"

    monkeypatch.setattr(core.sweep.mini.defended, "start_defended_job", fake_start)
    at = run()
    at.button(key="def_launch").click().run()
    assert not at.exception, at.exception
    assert calls and calls[0][0].detector == "misalignment" and calls[0][0].fpr == 0.05
    assert "run-123" in at.success[0].value
