"""Lesson and Story under AppTest: the step and the level live in the URL (a copied link reopens
the view), the Story's pinned prompts stay the same across levels, ▶ Play restarts below the last
level with unpoisoned concepts, Home opens the lesson and shows the glossary."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.app.conftest import page

TIMEOUT = 60


def run(name: str, query: dict[str, str] | None = None, **state) -> AppTest:
    at = AppTest.from_file(page(name), default_timeout=TIMEOUT)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    for k, v in state.items():
        at.session_state[k] = v
    return at.run()


def _demo():
    from core.results.pack import demo_dir, load_pack

    return load_pack(demo_dir())


def _row_names(at: AppTest, names) -> list[str]:
    """The pinned prompts' names as the page wrote them, in page order."""
    found = []
    for m in at.markdown:
        for n in names:
            if m.value.lstrip(":red[*").lstrip("×≈ ").startswith(n):
                found.append(n)
    return found


def test_lesson_step_round_trips_through_the_url(assets):
    from core.lesson import lesson_steps

    steps = lesson_steps(_demo())
    at = run("lesson", query={"step": "3"})
    assert not at.exception, at.exception
    assert at.query_params["step"] == "3"
    assert any(steps[2].question in i.value for i in at.info)
    at.button(key="lesson_fwd").click().run()
    assert not at.exception, at.exception
    assert at.query_params["step"] == "4"
    assert any(steps[3].question in i.value for i in at.info)
    at.button(key="lesson_back").click().run()
    assert at.query_params["step"] == "3"
    # a step past the end opens the last one; a step that is no number, the first
    at = run("lesson", query={"step": "99"})
    assert not at.exception, at.exception
    assert at.query_params["step"] == str(len(steps))
    at = run("lesson", query={"step": "abc"})
    assert not at.exception, at.exception
    assert at.query_params["step"] == "1"


def test_every_lesson_step_renders_its_figure(assets):
    from core.lesson import lesson_steps

    for n, step in enumerate(lesson_steps(_demo()), start=1):
        at = run("lesson", query={"step": str(n)})
        assert not at.exception, (n, at.exception)
        drawn = len(at.get("image")) if step.figure == "strip" else len(at.get("plotly_chart"))
        assert drawn or step.figure == "defend", (n, step.figure)  # synthetic: no defense.json


def test_story_pinned_prompts_stay_the_same_across_levels(assets):
    from core.lesson import pinned_prompts

    pinned = pinned_prompts(_demo())
    seen = []
    for c in (2, 4, 8):
        at = run("story", query={"cp": str(c)})
        assert not at.exception, at.exception
        assert at.select_slider(key="story_cp").value == c
        assert at.query_params["cp"] == str(c)
        seen.append(_row_names(at, pinned.names))
        assert len(at.get("image")) == 2 * len(pinned.ids)  # clean | this C_P per pinned row
    assert seen[0] == seen[1] == seen[2] == list(pinned.names)


def test_story_level_from_the_url_and_back(assets):
    at = run("story", query={"cp": "8"})
    assert at.select_slider(key="story_cp").value == 8
    at.select_slider(key="story_cp").set_value(2).run()
    assert not at.exception, at.exception
    assert at.query_params["cp"] == "2"
    at = run("story", query={"cp": "not-a-level"})
    assert not at.exception, at.exception
    assert at.select_slider(key="story_cp").value in (0, 2, 4, 8, 16)


def test_play_restarts_below_the_last_level_with_unpoisoned_concepts(assets):
    from core.lesson import play_levels

    pack = _demo()
    played = play_levels(pack, pack.levels)
    assert played[-1] < max(pack.levels)  # C_P 16 of 16 poisons everything: not played
    at = run("story", query={"cp": str(max(pack.levels))})
    at.toggle(key="story_play").set_value(True).run()
    assert not at.exception, at.exception
    assert at.select_slider(key="story_cp").value == played[0]


def test_home_opens_the_lesson_and_shows_the_glossary(assets):
    at = run("home")
    assert not at.exception, at.exception
    assert at.button(key="start_lesson")
    assert any(h.value == "Words used in this app" for h in at.subheader)
    assert not [e for e in at.expander if "Words" in e.label]  # not folded away


def test_explorer_views_round_trip_through_the_url(assets):
    at = run("graph", query={"cp": "8"})
    assert not at.exception, at.exception
    assert at.select_slider(key="graph_cp").value == 8 and at.query_params["cp"] == "8"
    assert any("Run:" in c.value for c in at.caption)  # the run banner
    at = run("generations", query={"cp": "2", "view": "every C_P", "seed": "1"})
    assert not at.exception, at.exception
    assert at.select_slider(key="gen_ref").value == 2
    assert at.radio(key="gen_view").value == "every C_P"
    assert at.number_input(key="gen_sample").value == 1
    at.select_slider(key="gen_ref").set_value(16).run()
    assert at.query_params["cp"] == "16" and at.query_params["seed"] == "1"
    at = run("trajectory", query={"cp": "4"})
    assert not at.exception, at.exception
    assert at.query_params["tab"] == "curve"
    at = run("trajectory", query={"tab": "theory"})  # a link to the theory sandbox opens it
    assert not at.exception, at.exception
    assert at.slider(key="theory_k") and at.query_params["tab"] == "theory"
    at = run("compare", query={"runs": "demo", "metric": "acc_unpoisoned"})
    assert not at.exception, at.exception
    assert at.multiselect(key="cmp_packs").value == ["demo"]
    assert at.selectbox(key="cmp_metric").value == "acc_unpoisoned"
    assert at.query_params["runs"] == "demo"


def test_a_smoke_test_run_is_flagged_on_every_explorer_page(assets):
    import os
    from pathlib import Path

    from core.results.synthetic import write_synthetic_demo_pack

    runs = Path(os.environ["IMPLOSION_RUNS"])
    root = runs / "20260101-000000-sweep-smoke"
    write_synthetic_demo_pack(root, n_concepts=16, levels=(0, 4))
    import json

    results = json.loads((root / "results.json").read_text())
    results["config"].update({"preset": "ci-smoke", "finetune": {"steps": 2}})
    (root / "results.json").write_text(json.dumps(results))
    for name in ("story", "graph", "generations", "trajectory", "lesson"):
        at = run(name, query={"pack": root.name})
        assert not at.exception, (name, at.exception)
        assert any("Smoke-test run" in w.value for w in at.warning), name


def test_jobs_shows_a_finished_runs_result_as_labelled_rows(assets):
    from core.io import runs_dir
    from core.jobs import start_job, wait_job
    from core.lesson import pinned_prompts
    from core.results.pack import load_pack
    from core.results.synthetic import write_synthetic_demo_pack

    run_id = start_job("dummy", {"steps": 2, "step_seconds": 0.01}, device="cpu")
    wait_job(run_id, timeout=60)
    write_synthetic_demo_pack(runs_dir() / run_id / "pack", n_concepts=16, levels=(0, 4))
    pinned = pinned_prompts(load_pack(runs_dir() / run_id / "pack"))
    at = run("jobs", query={"run": run_id})
    assert not at.exception, at.exception
    assert any("Result: clean | poisoned at C_P 4" in m.value for m in at.markdown)
    labels = [m.value for m in at.markdown]
    for name in pinned.names:
        assert any(v.lstrip("×≈ ") == name for v in labels), name
    assert len(at.get("image")) == 4 * len(pinned.ids)  # two clean, two poisoned per row


def test_claims_panel_reconciles_a_missed_implosion_with_failing_prompts(tmp_path):
    """On the shipped demo (implosion target missed by a point while prompts visibly fail), the
    panel says what was measured against what the target asks."""
    from core.analysis.claims import pack_claims
    from core.results.pack import demo_dir, load_pack
    from tests.app.conftest import ROOT

    if not (demo_dir() / "results.json").is_file():
        import pytest

        pytest.skip("assets/demo is missing")
    claim = pack_claims(load_pack(demo_dir())).get("implosion_ratio")
    script = tmp_path / "panel.py"
    script.write_text(
        f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
        "from pathlib import Path\n"
        "from pages._claims import render_claims_panel\n"
        f"render_claims_panel(Path({str(demo_dir())!r}))\n"
    )
    at = AppTest.from_file(str(script), default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    text = " ".join(m.value for m in at.markdown)
    if claim.holds is False:
        assert "Both are true" in text and f"{claim.value:.0%}" in text
    else:
        assert "Both are true" not in text
