"""What a walk through the explorer pages found, kept fixed: units that match their captions, no
signed zero, captions that name what is shown."""

from __future__ import annotations

import io
import json
import re
import zipfile

import pytest
from streamlit.testing.v1 import AppTest

from tests.app.conftest import ROOT, page

TIMEOUT = 60


@pytest.fixture()
def demo(monkeypatch, tmp_path):
    """The shipped demo pack (it records each prompt's judged accuracy), runs in a temp folder."""
    if not (ROOT / "assets" / "demo" / "results.json").is_file():
        pytest.skip("assets/demo is missing: restore it with `git checkout assets/`")
    monkeypatch.setenv("IMPLOSION_ASSETS", str(ROOT / "assets"))
    monkeypatch.setenv("IMPLOSION_RUNS", str(tmp_path / "runs"))


def _figures(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def test_generations_row_changes_are_percentage_points_without_a_signed_zero(demo):
    at = AppTest.from_file(page("generations"), default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    caption = " ".join(c.value for c in at.caption)
    assert "percentage points, pp" in caption and "25 pp or more" in caption
    rows = [t for fig in _figures(at) for t in fig["layout"]["yaxis"].get("ticktext") or []]
    changes = [re.findall(r"\(([^()]*)\)", r)[-1] for r in rows]  # "× name (−25 pp) ▼"
    assert changes and all(re.fullmatch(r"0 pp|[+−][1-9]\d* pp", c) for c in changes), changes


def test_compare_bundle_caption_names_what_the_bundle_holds(demo):
    from core.results.export import bundle_run

    at = AppTest.from_file(page("compare"), default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    caption = next(c.value for c in at.caption if "grid per C_P" in c.value)
    # the demo's bundle: results, curves and one grid per level whose columns are sampling seeds
    names = zipfile.ZipFile(io.BytesIO(bundle_run(ROOT / "assets" / "demo"))).namelist()
    assert {"results.json", "training.json"} <= set(names)
    assert any(n.startswith("grids/generations_cp") for n in names)
    assert "sampling seeds" in caption and "samples" not in caption.replace("sampling", "")


def test_compare_legend_fits_a_line_and_keeps_runs_of_one_name_apart(demo):
    import os
    from pathlib import Path

    from core.results.synthetic import write_synthetic_demo_pack

    runs = Path(os.environ["IMPLOSION_RUNS"])
    twins = ["20260101-000000-sweep-aaaaaa", "20260101-000000-sweep-bbbbbb"]
    for run in twins:  # same preset, written in the same minute: the same picker label
        write_synthetic_demo_pack(runs / run / "sweep", n_concepts=16)
    at = AppTest.from_file(page("compare"), default_timeout=TIMEOUT)
    at.query_params["runs"] = ",".join(["demo", *twins])
    at.run()
    assert not at.exception, at.exception
    fig = _figures(at)[0]
    names = [t["name"] for t in fig["data"] if t.get("mode") == "lines+markers"]
    assert len(names) == 3 and len(set(names)) == 3, names  # one legend entry per run
    assert all(len(n) <= 60 for n in names), names  # one line of the 1280 px column
    assert len(set(at.multiselect(key="cmp_packs").options)) == 3


def test_sidebar_gives_a_broken_runs_reason_in_full(demo):
    import os
    from pathlib import Path

    from core.results.synthetic import write_synthetic_demo_pack

    pack = Path(os.environ["IMPLOSION_RUNS"]) / "20260101-000000-sweep-cccccc" / "sweep"
    write_synthetic_demo_pack(pack, n_concepts=16)
    results = json.loads((pack / "results.json").read_text())
    results["records"][0]["c_p"] = "x"
    (pack / "results.json").write_text(json.dumps(results))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    reason = 'results.json: records[0].c_p is a string ("x"), expected an integer'
    picker = at.sidebar.selectbox(key="pack_select")
    assert any(o.startswith("⚠ ") and reason[:20] in o for o in picker.options)
    # the picker's one line is cut at the sidebar's width: the reason is also given whole
    shown = [t.value for e in at.sidebar.expander for t in e.text]
    assert any(reason in t for t in shown), shown
