"""Audit figures are pure functions of the report: assert on their traces."""

from __future__ import annotations

from core.audit import Audit, calibration_for, from_pack
from core.audit.figures import forecast_figure, overlap_figure


def test_overlap_and_forecast_traces(demo_assets):
    cal = calibration_for()
    audit = Audit(from_pack(demo_assets / "demo", 4), calibration=cal, c_p=4, seed=0)
    rep = audit.report()
    fig = overlap_figure(rep, top=5)
    names = [t.name for t in fig.data]
    assert names[-1] == "concept" and len(fig.data[-1].x) == len(
        {c for o in rep.overlapping[:5] for c in (o.a, o.b)}
    )
    lines = [t for t in fig.data if t.mode == "lines"]
    assert sum(t.x.count(None) for t in lines) == 5  # one segment per listed pair
    f = forecast_figure(cal, rep.health.ad, rep.prediction)
    assert {"fitted runs (C_P × seed)", "fit", "predicted", "measured"} <= {t.name for t in f.data}
    far = cal.predict(5.0)
    f2 = forecast_figure(cal, 5.0, far)
    assert "predicted" not in {t.name for t in f2.data}
    assert any("outside" in (a.text or "") for a in f2.layout.annotations)
