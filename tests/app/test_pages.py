"""Every page under AppTest: renders without exception, key widgets present, heavy calls patched."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.app.conftest import ROOT, page

TIMEOUT = 60


def run(name: str, query: dict[str, str] | None = None, **state) -> AppTest:
    at = AppTest.from_file(page(name), default_timeout=TIMEOUT)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    for k, v in state.items():
        at.session_state[k] = v
    return at.run()


def test_app_routes_only(assets):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    assert not at.exception
    assert at.title[0].value == "Implosion Lab"  # the default page is Home


def test_home_story_and_play_button(assets):
    at = run("home")
    assert not at.exception
    assert at.button(key="play_demo")
    assert len(at.latex) >= 2
    assert any("AD" in latex.value for latex in at.latex)
    assert [h.value for h in at.subheader][:5] == [
        "1 · Cross-attention aligns two graphs",
        "2 · Alignment difficulty (AD) measures how hard that mapping is",
        "3 · Poisoning adds contradictory supervision",
        "4 · Implosion: the mapping breaks for everyone",
        "5 · What to try",
    ]


def test_home_missing_demo_offers_synthetic(tmp_path, monkeypatch):
    monkeypatch.setenv("IMPLOSION_ASSETS", str(tmp_path / "empty"))
    at = run("home")
    at.button(key="play_demo").click().run()
    assert not at.exception
    assert "demo pack is missing" in at.error[0].value
    assert at.button(key="synthetic_demo")


def test_graph_page(assets):
    at = run("graph")
    assert not at.exception, at.exception
    assert at.select_slider(key="graph_cp").value == 4
    assert at.radio(key="graph_layout").value == "PCA"
    assert at.toggle(key="graph_thumbs").value is False
    at.select_slider(key="graph_cp").set_value(16).run()
    at.toggle(key="graph_pairs").set_value(True).run()
    assert not at.exception
    assert at.query_params["pack"] == "demo" or at.query_params["pack"] == "demo"


def _chart_spec(at) -> dict:
    import json

    return json.loads(at.get("plotly_chart")[0].proto.spec)


def test_graph_thumbnails_and_concept_panel(assets):
    at = run("graph")
    assert not _chart_spec(at)["layout"].get("images")
    at.toggle(key="graph_thumbs").set_value(True).run()
    assert not at.exception, at.exception
    images = _chart_spec(at)["layout"]["images"]
    assert len(images) == 2 * 16  # clean beside each caption, generated beside each ◆
    assert {i["xref"] for i in images} == {"x", "x2"}
    # the chart reports clicked points; the side panel follows the concept selectbox
    assert at.get("plotly_chart")[0].proto.selection_mode  # on_select is on
    assert at.subheader[0].value == "Selected concept"
    from core.results.pack import load_pack

    pack = load_pack(assets / "demo")
    p = pack.poisoned_at(4)[0]
    at.selectbox(key="graph_concept").set_value(p).run()
    assert not at.exception, at.exception
    panel = " ".join(m.value for m in at.markdown)
    assert pack.concepts[p] in panel and "poisoned" in panel
    assert f"images of **{pack.concepts[pack.targets[p]]}**" in panel
    assert "training pairs with this caption" in panel and "lands nearest to" in panel
    assert len(at.image) >= 3  # clean image, generated at C_P = 0 and at C_P = 4


def test_trajectory_page_and_tabs(assets):
    at = run("trajectory")
    assert not at.exception, at.exception
    assert len(at.tabs) == 4
    assert at.tabs[3].label == "Theory sandbox"


def test_trajectory_over_training_steps(assets):
    at = AppTest.from_file(page("trajectory"), default_timeout=TIMEOUT)
    at.session_state["traj_tab"] = "Over training steps"
    at.run()
    assert not at.exception
    assert at.multiselect(key="traj_steps_levels").value == [0, 2, 4, 8, 16]


def test_trajectory_sandbox_and_shares(assets):
    at = AppTest.from_file(page("trajectory"), default_timeout=TIMEOUT)
    at.session_state["traj_tab"] = "Theory sandbox"
    at.run()
    assert not at.exception, at.exception
    assert at.slider(key="theory_k").value == 16
    assert any(m.label == "AD at this C_P" for m in at.metric)
    at = AppTest.from_file(page("trajectory"), default_timeout=TIMEOUT)
    at.session_state["traj_tab"] = "Per-concept contributions"
    at.run()
    assert not at.exception, at.exception
    assert at.select_slider(key="traj_cp").value == 16


def test_generations_page(assets):
    at = run("generations")
    assert not at.exception, at.exception
    assert at.select_slider(key="gen_ref")
    assert at.selectbox(key="gen_big")
    assert any("No model to sample from" in i.value for i in at.info)  # no assets/base here


def test_generations_custom_prompt_patched(assets, monkeypatch, tmp_path):
    import numpy as np
    import torch

    import core.results.pack

    monkeypatch.setattr(core.results.pack, "list_models", lambda: {"fake": tmp_path})

    class FakeLDM:
        def sample(self, prompts, seed=0, **kw):
            return torch.zeros(len(prompts), 3, 32, 32)

    import core.models.ldm as ldm_mod

    monkeypatch.setattr(ldm_mod.MiniLDM, "from_pretrained", staticmethod(lambda p: FakeLDM()))
    at = run("generations")
    assert at.text_input(key="gen_prompt").value == "a photo of a large red star"
    submit = next(b for b in at.button if b.label == "Generate")
    submit.click().run()
    assert not at.exception, at.exception
    assert at.image  # the generated images are shown
    _ = np


def test_attention_page_without_models(assets):
    at = run("attention")
    assert not at.exception
    assert "No model to inspect yet" in at.info[0].value


def test_compare_page(assets):
    at = run("compare")
    assert not at.exception, at.exception
    assert at.multiselect(key="cmp_packs").value == ["demo"]
    at.button(key="cmp_prepare").click().run()
    assert not at.exception, at.exception
    assert at.session_state["bundle"][0] == "demo"


def test_compare_page_exports_png_svg_html(assets, monkeypatch):
    """The export expander offers HTML, PNG and SVG when kaleido + Chromium are here (else HTML
    and a caption naming what to install); each button's deferred data is the real file."""
    from streamlit.runtime.media_file_manager import MediaFileManager

    from core.figures.export import static_export_problem

    made: dict[str, object] = {}
    original = MediaFileManager.add_deferred

    def record(self, fn, mimetype, *args, **kwargs):
        made[kwargs.get("file_name") or args[1]] = fn
        return original(self, fn, mimetype, *args, **kwargs)

    monkeypatch.setattr(MediaFileManager, "add_deferred", record)
    at = run("compare")
    assert not at.exception, at.exception
    labels = [b.proto.label for b in at.get("download_button")]
    problem = static_export_problem()
    if problem:
        assert labels[:1] == ["Download HTML"] and "Download PNG" not in labels
        assert any(problem in c.value for c in at.caption)
        pytest.skip(f"PNG/SVG buttons not offered here: {problem}")
    assert labels[:3] == ["Download HTML", "Download PNG", "Download SVG"]
    png = made["compare-ad.png"]()  # what the browser downloads on click
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert made["compare-ad.svg"]().lstrip()[:4] == b"<svg"


@pytest.fixture()
def tiny_base(tmp_path, monkeypatch):
    """An untrained tiny 8-concept model as the only base (Poison setup reads K and names)."""
    import core.results.pack
    from core.models.config import ModelConfig
    from core.models.ldm import MiniLDM
    from core.world import WorldConfig

    base = tmp_path / "base"
    MiniLDM.build(WorldConfig(n_concepts=8), ModelConfig.tiny()).save_pretrained(base)
    monkeypatch.setattr(core.results.pack, "list_models", lambda: {"shipped base (clean)": base})
    return base


def test_poison_page(assets, tiny_base):
    at = run("poison")
    assert not at.exception, at.exception
    assert at.slider(key="p_cp").value == 4
    assert at.radio(key="p_method").value == "dirty-label"
    assert any(m.label == "Estimated run time" for m in at.metric)
    at.radio(key="p_method").set_value("nightshade").run()
    assert not at.exception, at.exception
    at.radio(key="p_pick").set_value("These concepts by name").run()
    at.radio(key="p_targets").set_value("chosen").run()
    assert not at.exception, at.exception


def test_poison_launch_reports_errors(assets, tiny_base, monkeypatch):
    import core.jobs
    import core.results.pack

    monkeypatch.setattr(core.results.pack, "list_models", lambda: {})
    at = run("poison")  # no base model
    assert not at.exception
    assert "assets/base" in at.error[0].value

    def refuse(*a, **k):
        raise ValueError("device cpu is busy with run x; wait, stop it, or pass --queue")

    monkeypatch.setattr(core.jobs, "start_job", refuse)
    monkeypatch.setattr(
        core.results.pack, "list_models", lambda: {"shipped base (clean)": tiny_base}
    )
    at = run("poison")
    at.button(key="p_launch").click().run()
    assert not at.exception
    assert "Could not start the run" in at.error[0].value
    assert "busy with run x" in at.error[0].value


def test_jobs_page_empty(assets):
    at = run("jobs")
    assert not at.exception
    assert "No runs yet" in at.info[0].value


@pytest.fixture()
def finished_run(assets):
    from core.jobs import start_job, wait_job

    run_id = start_job("dummy", {"steps": 5, "step_seconds": 0.01}, device="cpu")
    wait_job(run_id, timeout=60)
    return run_id


def test_jobs_page_reattaches_from_query(finished_run):
    at = run("jobs", query={"run": finished_run})
    assert not at.exception, at.exception
    assert at.selectbox(key="j_run").value == finished_run
    states = {m.label: m.value for m in at.metric}
    assert states["State"] == "completed"
    assert states["Progress"] == "100 %"  # fraction of the work (core/jobs/progress.py)
    keys = {b.key for b in at.button}
    assert not keys & {"j_pause", "j_resume", "j_stop", "j_cancel"}  # nothing to control
    assert any(finished_run in m.value and "completed" in m.value for m in at.markdown)


def test_poison_launch_starts_finetune_job(assets, tiny_base, monkeypatch):
    import core.jobs
    import core.results.pack

    seen = {}

    def fake_start(kind, config, **kw):
        seen.update(kind=kind, config=config, **kw)
        return "20260101-000000-finetune-abcdef"

    monkeypatch.setattr(core.jobs, "start_job", fake_start)
    # through app.py, so st.switch_page to the Jobs page can resolve it
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page("pages/poison.py").run()
    at.button(key="p_launch").click().run()
    assert not at.exception, at.exception
    assert seen["kind"] == "finetune" and seen["queue"] is True
    assert at.title[0].value == "Jobs"  # switched to Jobs with ?run=<id>
    cfg = seen["config"]  # the two-level sweep: clean baseline + the sweep's level 4
    assert list(cfg["levels"]) == [0, 4] and len(cfg["concepts"]) == 4
    assert cfg["preset"] == "finetune"
    assert cfg["model"] == str(tiny_base) and cfg["method"] == "dirty-label"
    assert " + " in seen["config"]["name"]


def test_play_demo_switches_to_the_story(assets):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.button(key="play_demo").click().run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Story"
    assert at.session_state["pack"] == "demo"
    assert at.query_params["pack"] == "demo"


def test_jobs_page_selects_a_newly_started_sweep(finished_run, monkeypatch):
    import core.jobs

    real_start = core.jobs.start_job
    started = {}

    def fake_sweep(kind, config, **kw):
        assert kind == "sweep" and config == {"preset": "ci-smoke"}
        started["id"] = real_start("dummy", {"steps": 2, "step_seconds": 0.01}, device="cpu")
        return started["id"]

    import core.sweep.mini.finetune as experiment
    from core.world import World, WorldConfig

    # the launcher's checks read K from the model folder (this test's assets have none)
    monkeypatch.setattr(experiment, "model_world", lambda model=None: World(WorldConfig(32)))
    at = run("jobs", query={"run": finished_run})
    assert at.selectbox(key="j_run").value == finished_run
    monkeypatch.setattr(core.jobs, "start_job", fake_sweep)
    at.button(key="j_start_sweep").click().run()
    assert not at.exception, at.exception
    assert at.selectbox(key="j_run").value == started["id"]
    assert at.query_params["run"] in (started["id"], [started["id"]])
    core.jobs.wait_job(started["id"], timeout=60)


def test_jobs_page_shows_level_states_and_starts_on_ray(finished_run, monkeypatch):
    """A sweep run's levels.json is a table (state, node, attempts, error); a Ray address in the
    sweep form becomes executor 'ray' in the job config ('local': a Ray started with the sweep)."""
    import json

    import core.jobs
    import core.sweep.executors as executors
    from core.jobs.store import run_path

    sweep = run_path(finished_run) / "sweep"
    sweep.mkdir()
    rows = [
        {"c_p": 0, "seed": 0, "state": "done", "node": "10.0.0.2", "pid": 7, "attempts": 2},
        {"c_p": 4, "seed": 0, "state": "failed", "attempts": 1, "error": "MemoryError: x"},
    ]
    (sweep / "levels.json").write_text(json.dumps({"executor": "ray", "levels": rows}))
    at = run("jobs", query={"run": finished_run})
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert list(table["state"]) == ["done", "failed"] and list(table["attempts"]) == [2, 1]
    assert table["node"][0] == "10.0.0.2" and "MemoryError" in table["error"][1]

    seen = {}

    def fake_start(kind, config, **kw):
        seen.update(config)
        return finished_run

    monkeypatch.setattr(core.jobs, "start_job", fake_start)
    monkeypatch.setattr(executors, "ray_available", lambda: True)
    import core.sweep.mini.finetune as experiment
    from core.world import World, WorldConfig

    # the launcher's checks read K from the model folder (this test's assets have none)
    monkeypatch.setattr(experiment, "model_world", lambda model=None: World(WorldConfig(32)))
    # a cluster address only when the server was started allowing it (implosion app
    # --allow-ray-address); otherwise local only, with how to allow it
    monkeypatch.delenv(executors.ALLOW_RAY_ADDRESS_ENV, raising=False)
    at.text_input(key="j_ray_address").input("ray://head:10001").run()
    at.button(key="j_start_sweep").click().run()
    assert not at.exception, at.exception
    assert not seen and "--allow-ray-address" in at.error[0].value
    monkeypatch.setenv(executors.ALLOW_RAY_ADDRESS_ENV, "1")
    at.button(key="j_start_sweep").click().run()
    assert not at.exception, at.exception
    assert seen["executor"] == "ray" and seen["address"] == "ray://head:10001"
    seen.clear()
    monkeypatch.delenv(executors.ALLOW_RAY_ADDRESS_ENV)
    at.text_input(key="j_ray_address").input("local").run()
    at.button(key="j_start_sweep").click().run()
    assert seen["executor"] == "ray" and "address" not in seen  # a local Ray needs no permission
    monkeypatch.setattr(executors, "ray_available", lambda: False)
    at.text_input(key="j_ray_address").input("local").run()
    at.button(key="j_start_sweep").click().run()
    assert "pip install -e '.[cluster]'" in at.error[0].value
    # the launcher's checks run before a job is accepted (here: C_P beyond the model's K)
    seen.clear()
    at.text_input(key="j_ray_address").input("").run()
    at.text_input(key="j_levels").input("0 33").run()
    at.button(key="j_start_sweep").click().run()
    assert not seen and "exceed K=32" in at.error[0].value


def test_route_through_app_flips_the_legacy_flag_once(monkeypatch):
    """On a fresh server, a deep link runs the page file directly (legacy pages/ mode); the page
    clears the flag and reruns so app.py's st.navigation routes it."""
    from streamlit.runtime.pages_manager import PagesManager

    import pages._ui as ui
    from tests.app.conftest import _real_route

    reruns = []
    monkeypatch.setattr(ui.st, "rerun", lambda: reruns.append(1))
    monkeypatch.setattr(PagesManager, "uses_pages_directory", True)
    _real_route()
    assert PagesManager.uses_pages_directory is False and reruns == [1]
    _real_route()  # already routed through app.py: nothing to do
    assert reruns == [1]


def test_jobs_page_real_sweep_form(assets, monkeypatch, tmp_path):
    """The real-SD form: validation errors are shown; valid input starts one ``real-sweep``."""
    import core.sweep.real.config as real_sweep

    at = run("jobs")
    at.radio(key="j_sweep_model").set_value("Real Stable Diffusion").run()
    at.text_input(key="j_real_model").set_value(str(tmp_path / "no-model"))
    at.text_input(key="j_real_clip").set_value(str(tmp_path / "clip"))
    at.text_input(key="j_real_data").set_value(str(tmp_path))
    at.button(key="j_start_real").click().run()
    assert not at.exception, at.exception
    assert "model" in at.error[0].value and "no such folder" in at.error[0].value
    at.text_area(key="j_real_concepts").set_value("dog, puppy\ncat")
    at.text_input(key="j_real_levels").set_value("0 3")
    at.button(key="j_start_real").click().run()
    assert "levels: C_P=3 > 2 concepts" in at.error[0].value

    seen, rid = {}, "20260101-000000-real-sweep-abcdef"

    def fake_start(form, **kw):
        seen.update(form=form, **kw)
        return rid

    monkeypatch.setattr(real_sweep, "start_real_sweep_job", fake_start)
    at.text_input(key="j_real_levels").set_value("0 1 2")
    at.selectbox(key="j_real_mode").set_value("lora")
    at.number_input(key="j_real_steps").set_value(7)
    at.button(key="j_start_real").click().run()
    assert not at.exception and not at.error, at.error
    assert seen["device"] == "auto" and seen["queue"] is True
    f = seen["form"]
    assert [f["concepts"], f["levels"], f["mode"], f["steps"]] == [
        "dog, puppy\ncat",
        "0 1 2",
        "lora",
        7,
    ]
    assert at.query_params["run"] in (rid, [rid])


# ---------------------------------------------------------------- on stage (issue 14, 10.4)
def test_story_page_one_control_drives_three_views(assets):
    at = run("story")
    assert not at.exception, at.exception
    assert at.title[0].value == "Story"
    assert at.select_slider(key="story_cp").value == 4
    charts = at.get("plotly_chart")
    assert len(charts) == 2  # graph and AD curve; the strip is images
    n_images = len(at.get("image"))
    assert n_images > 0 and n_images % 2 == 0  # clean | poisoned per prompt
    at.select_slider(key="story_cp").set_value(16).run()
    assert not at.exception, at.exception
    assert any("C_P 16" in m.value for m in at.markdown)
    # the pinned prompts stay (all poisoned at C_P 16 of 16), clean | C_P = 16 each
    assert len(at.get("image")) == n_images
    at.toggle(key="story_play").set_value(True).run()  # the player is a fragment: no error
    assert not at.exception, at.exception


# AppTest re-runs app.py's page directly after the first run (legacy pages/ detection, see
# conftest), so the sidebar app.py draws is checked on the first run and pages via their URL.
def test_presenter_mode_from_the_url(assets):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.query_params["present"] = "1"
    at.run()
    assert not at.exception, at.exception
    assert at.toggle(key="present_toggle").value is True
    assert at.query_params["present"] == "1"
    at = run("graph", query={"present": "1"})
    assert not at.exception, at.exception
    assert at.toggle(key="graph_drift").value is True  # presenter default: drift arrows
    assert at.query_params["present"] == "1" and at.query_params["pack"] == "demo"
    at = run("graph", query={"present": "1"}, present="0", _present_url_seen="1")
    assert "present" not in at.query_params  # switched off in this session: the URL follows


def test_run_picker_lists_runs_and_pages_follow_the_url(assets):
    import os
    from pathlib import Path

    from core.results.synthetic import write_synthetic_demo_pack

    runs = Path(os.environ["IMPLOSION_RUNS"])
    write_synthetic_demo_pack(runs / "20260101-000000-sweep-mine", n_concepts=16, levels=(0, 4))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.query_params["pack"] = "20260101-000000-sweep-mine"
    at.run()
    assert not at.exception, at.exception
    picker = at.selectbox(key="pack_select")
    assert picker.value == "20260101-000000-sweep-mine"
    name, day, model, levels, state = picker.options[0].split(" · ")
    assert name == "Demo pack" and model == "shipped base" and levels == "C_P 0, 2, 4, 8, 16"
    assert state in ("complete", "partial")
    assert any("C_P 0, 4" in o for o in picker.options)
    at = run("trajectory", query={"pack": "20260101-000000-sweep-mine"})
    assert not at.exception, at.exception
    assert at.session_state["pack"] == "20260101-000000-sweep-mine"
    # a sidebar page switch drops the query: the session's choice is written back
    at = run("generations", pack="20260101-000000-sweep-mine")
    assert at.query_params["pack"] == "20260101-000000-sweep-mine"


def test_generations_clean_beside_poisoned(assets):
    at = run("generations")
    assert not at.exception, at.exception
    assert at.radio(key="gen_view").value == "clean vs this C_P"
    assert at.number_input(key="gen_sample").proto.disabled
    at.radio(key="gen_view").set_value("every C_P").run()
    assert not at.exception, at.exception


def test_graph_second_view(assets):
    at = run("graph")
    at.selectbox(key="graph_other_run").set_value("demo").run()
    assert not at.exception, at.exception
    at.select_slider(key="graph_other_cp").set_value(16).run()
    assert not at.exception, at.exception
    assert len(at.get("plotly_chart")) == 2


def test_trajectory_two_runs_together(assets):
    import os
    from pathlib import Path

    from core.results.synthetic import write_synthetic_demo_pack

    write_synthetic_demo_pack(
        Path(os.environ["IMPLOSION_RUNS"]) / "20260101-000000-sweep-b", n_concepts=16
    )
    at = run("trajectory")
    at.selectbox(key="traj_other").set_value("20260101-000000-sweep-b").run()
    assert not at.exception, at.exception
    assert len(at.get("plotly_chart")) == 3


def test_story_of_a_run_still_filling_in(assets):
    """A pack shows up as soon as its first level is saved: the story offers saved levels only."""
    import json
    import os
    from pathlib import Path

    from core.results.synthetic import write_synthetic_demo_pack

    d = write_synthetic_demo_pack(
        Path(os.environ["IMPLOSION_RUNS"]) / "20260101-000000-sweep-partial",
        n_concepts=16,
        levels=(0, 4, 8),
    )
    results = json.loads((d / "results.json").read_text())
    results["records"] = [r for r in results["records"] if r["c_p"] != 8]
    (d / "results.json").write_text(json.dumps(results))
    at = run("story", query={"pack": "20260101-000000-sweep-partial"})
    assert not at.exception, at.exception
    assert at.select_slider(key="story_cp").options == ["0", "4"]
