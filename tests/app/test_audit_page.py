"""The Audit page: a pack level audited for real; a planned attack with the core call patched,
its forecast beside the measured value and the launch of the check run."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from tests.app.conftest import ROOT, page

TIMEOUT = 90


def test_audit_page_pack_level(assets):
    at = AppTest.from_file(page("audit"), default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    at.radio(key="a_source").set_value("Pack level").run()
    at.toggle(key="a_run_pack").set_value(True).run()
    assert not at.exception, at.exception
    labels = {m.label for m in at.metric}
    assert {"AD", "D_fea (pairs)", "D_stru (structure)", "pairs"} <= labels
    assert "Predicted accuracy" in labels  # the synthetic demo calibrates itself
    assert "Measured accuracy" in labels  # the pack's own level (in-sample)
    assert any(s.value == "Overlapping concepts" for s in at.subheader)


def _plan_audit(demo: Path):
    """What run_audit returns for a plan, built from the synthetic demo's level 4 pairs."""
    from core.audit import Audit, calibration_for, from_pack

    cal = calibration_for()
    return Audit(from_pack(demo, 4), calibration=cal, c_p=4, seed=0)


def test_audit_page_plan_forecast_and_launch(assets, monkeypatch):
    import core.audit.plan
    import core.audit.request
    import core.jobs

    audit = _plan_audit(assets / "demo")
    monkeypatch.setattr(core.audit.request, "run_audit", lambda prep: audit)
    monkeypatch.setattr(core.audit.request, "prepare", lambda req: req)
    job = {"sweep": {"levels": [0, 4], "seeds": [0]}, "name": "x"}
    monkeypatch.setattr(core.audit.plan, "check_run_job", lambda *a, **k: job)
    seen: dict = {}

    def fake_start(kind, config, **kw):
        seen.update(kind=kind, config=config, **kw)
        return "20260101-000000-finetune-abcdef"

    monkeypatch.setattr(core.jobs, "start_job", fake_start)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page("pages/audit.py").run()
    assert not at.exception, at.exception
    labels = {m.label for m in at.metric}
    assert "Predicted accuracy" in labels and "Measured accuracy" in labels
    assert any("interval" in c.value for c in at.caption)
    at.button(key="a_launch").click().run()
    assert not at.exception, at.exception
    assert seen["kind"] == "finetune" and seen["config"] is job and seen["queue"] is True
    assert at.title[0].value == "Jobs"
