"""Every reader of packs survives every crafted pack (tests/results/crafted.py): the validating
reader refuses each with a reason; ``runs list`` lists each as ``broken (reason)``; ``runs show``,
``defend`` and ``sweep-pack`` refuse each with one line and exit 2, writing nothing outside
``--out`` and copying no linked content; every page shows an error instead of a traceback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from core.cli import main
from core.results.pack import load_pack
from core.results.runs import list_runs
from core.results.validate import BrokenPack, json_depth
from tests.results.crafted import CASES, GRID_ONLY, NOT_COPIED, SECRET, write_corpus

APP_CASES = sorted(set(CASES) - GRID_ONLY)  # what the app reads (it never decodes the grids)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Runs folder with one run per crafted case and a valid ``control`` run; ``../outside``
    holds the secret and the link targets."""
    base = tmp_path_factory.mktemp("corpus")
    write_corpus(base / "runs", base / "outside")
    return base


@pytest.fixture()
def runs(corpus, monkeypatch, tmp_path) -> Path:
    monkeypatch.setenv("IMPLOSION_RUNS", str(corpus / "runs"))
    monkeypatch.setenv("IMPLOSION_ASSETS", str(tmp_path / "no-assets"))  # no demo: runs only
    return corpus / "runs"


def _one_line_error(rc: int, capsys) -> str:
    out, err = capsys.readouterr()
    assert rc == 2, (rc, out, err)
    assert "Traceback" not in out + err
    assert len(err.strip().splitlines()) == 1, err
    return err


def _no_secret_under(folder: Path) -> None:
    for p in folder.rglob("*"):
        if p.is_file() and not p.is_symlink():
            assert SECRET.encode() not in p.read_bytes(), p


# ---------------------------------------------------------------- the reader
@pytest.mark.parametrize("case", APP_CASES)
def test_reader_refuses_each_crafted_pack(runs, case):
    with pytest.raises(BrokenPack) as e:
        pack = load_pack(runs / case)
        pack.embeddings()
        pack.generations()
    assert e.value.reason and "\n" not in e.value.reason


def test_control_pack_reads_whole(runs):
    pack = load_pack(runs / "control")
    assert pack.levels == [0, 2, 4, 8] and len(pack.concepts) == 8
    assert set(pack.generations()) == {0, 2, 4, 8}
    assert pack.embeddings()["caption_concept_8"].max() < 8


def test_json_depth_is_measured_on_bytes():
    assert json_depth(b'{"a": [1, {"b": "[[[["}]}') == 3
    assert json_depth(b"[" * 200_000) == 200_000
    assert json_depth(b'"\\"[[["') == 0


# ---------------------------------------------------------------- runs list / show
def test_runs_list_lists_every_crafted_pack_as_broken(runs, capsys):
    infos = {r.id: r for r in list_runs()}
    assert not infos["control"].broken
    broken = {i for i, r in infos.items() if r.broken}
    assert broken == set(APP_CASES)
    assert all(infos[c].reason for c in APP_CASES)
    assert main(["runs", "list"]) == 0
    out = capsys.readouterr().out
    for case in APP_CASES:
        line = next(ln for ln in out.splitlines() if ln.startswith(case + " "))
        assert "broken (" in line, line
    assert main(["runs", "list", "--json"]) == 0
    rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["embeddings-declared-64tib"]["state"] == "broken"
    assert "text_concept" in rows["embeddings-declared-64tib"]["reason"]


@pytest.mark.parametrize("case", APP_CASES)
def test_runs_show_refuses_with_one_line(runs, case, capsys):
    err = _one_line_error(main(["runs", "show", case]), capsys)
    assert "broken" in err


# ---------------------------------------------------------------- defend
@pytest.mark.parametrize("case", APP_CASES)
def test_defend_refuses_with_one_line(runs, case, capsys):
    report = runs / case / "defense.json"
    before = report.lstat() if report.is_symlink() or report.exists() else None
    _one_line_error(main(["defend", "--pack", str(runs / case), "--json"]), capsys)
    if before is None:
        assert not report.exists()
    else:  # a crafted report is left as it was, never replaced or followed
        assert report.lstat().st_mtime_ns == before.st_mtime_ns


@pytest.mark.parametrize("eps", ["inf", "nan", "0", "-0.1", "2"])
def test_defend_refuses_epsilon_outside_0_1(runs, eps, capsys):
    args = ["defend", "--pack", str(runs / "control"), "--methods", "nightshade"]
    err = _one_line_error(main([*args, "--epsilon", eps]), capsys)
    assert "epsilon" in err
    assert not (runs / "control" / "defense.json").exists()


def test_defend_refuses_a_crafted_defense_report(runs, tmp_path, capsys):
    pack = tmp_path / "pack"
    shutil.copytree(runs / "control", pack)
    (pack / "defense.json").write_text('{"settings": [], "rows": {}}')
    err = _one_line_error(main(["defend", "--pack", str(pack)]), capsys)
    assert "defense.json" in err


# ---------------------------------------------------------------- sweep-pack
@pytest.mark.parametrize("case", sorted(set(CASES) - NOT_COPIED))
def test_sweep_pack_refuses_and_writes_nothing(runs, corpus, case, tmp_path, capsys):
    out = tmp_path / "work" / "pack"
    err = _one_line_error(main(["sweep-pack", str(runs / case), "--out", str(out)]), capsys)
    assert "broken pack" in err or "symbolic link" in err
    assert not out.exists()
    assert not (tmp_path / "work").exists() or not any((tmp_path / "work").iterdir())
    assert not list(tmp_path.rglob("evil*")) and not list(corpus.rglob("victim"))
    _no_secret_under(tmp_path)


@pytest.mark.parametrize("case", sorted(NOT_COPIED))
def test_sweep_pack_leaves_extras_behind(runs, corpus, case, tmp_path):
    out = tmp_path / "pack"
    assert main(["sweep-pack", str(runs / case), "--out", str(out)]) == 0
    assert not (out / "science.json").exists() and not (out / "defense.json").exists()
    _no_secret_under(tmp_path)


def test_sweep_pack_copies_a_valid_sweep(runs, tmp_path, capsys):
    out = tmp_path / "pack"
    assert main(["sweep-pack", str(runs / "control"), "--out", str(out)]) == 0
    assert sorted(p.name for p in (out / "grids").iterdir()) == [
        f"cp{c}_seed0.png" for c in (0, 2, 4, 8)
    ]
    for name in ("results.json", "embeddings.npz", "generations.npz", "training.json"):
        assert (out / name).read_bytes() == (runs / "control" / name).read_bytes()
    assert load_pack(out).levels == [0, 2, 4, 8]


def test_sweep_pack_force_replaces_only_a_pack(runs, tmp_path, capsys):
    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "thesis.tex").write_text("mine")
    err = _one_line_error(
        main(["sweep-pack", str(runs / "control"), "--out", str(mine), "--force"]), capsys
    )
    assert str(mine) in err and "not a pack" in err
    assert (mine / "thesis.tex").read_text() == "mine"
    # a pack folder holding something else is not replaced either
    shutil.copytree(runs / "control", tmp_path / "mixed")
    (tmp_path / "mixed" / "thesis.tex").write_text("mine")
    err = _one_line_error(
        main(["sweep-pack", str(runs / "control"), "--out", str(tmp_path / "mixed"), "--force"]),
        capsys,
    )
    assert "thesis.tex" in err
    # a pack is replaced
    old = tmp_path / "old"
    assert main(["sweep-pack", str(runs / "control"), "--out", str(old)]) == 0
    assert main(["sweep-pack", str(runs / "control"), "--out", str(old), "--force"]) == 0
    assert load_pack(old).levels == [0, 2, 4, 8]


# ---------------------------------------------------------------- pages
PAGES = [
    "story",
    "graph",
    "trajectory",
    "generations",
    "attention",
    "compare",
    "defend",
    "lesson",
]
# Compare opens the runs ticked in its own list, not the chosen one; Cross-attention opens the
# chosen run only when a model exists to inspect (none in these tests).
NOT_OPENING = frozenset({"compare", "attention"})
# One case per place a pack can fail: results.json text, its schema, a link, the zip, the array
# headers, the array values.
PAGE_CASES = [
    "results-deep-nesting",
    "record-cp-string",
    "embeddings-link-proc-environ",
    "generations-truncated",
    "embeddings-declared-64tib",
    "embeddings-ids-out-of-range",
]


def _page(name: str, query: dict[str, str]):
    from streamlit.testing.v1 import AppTest

    from tests.app.conftest import page

    at = AppTest.from_file(page(name), default_timeout=60)
    for k, v in query.items():
        at.query_params[k] = v
    return at.run()


def _existing(pages: list[str]) -> list[str]:
    from tests.app.conftest import ROOT

    return [p for p in pages if (ROOT / "pages" / f"{p}.py").is_file()]


def _assert_clear(at, case: str) -> None:
    assert not at.exception, at.exception
    text = " ".join(e.value for e in at.error)
    assert "cannot be opened" in text or "Cannot open" in text, text


@pytest.mark.parametrize("name", _existing(PAGES))
@pytest.mark.parametrize("case", PAGE_CASES)
def test_page_shows_a_broken_pack_as_an_error(runs, name, case):
    at = _page(name, {"pack": case})
    if name in NOT_OPENING:
        assert not at.exception, at.exception
        return
    _assert_clear(at, case)


@pytest.mark.slow
@pytest.mark.parametrize("name", _existing(PAGES))
@pytest.mark.parametrize("case", APP_CASES)
def test_every_page_every_crafted_pack(runs, name, case):
    at = _page(name, {"pack": case})
    assert not at.exception, at.exception
    if name not in NOT_OPENING:
        _assert_clear(at, case)


@pytest.mark.parametrize("name", _existing(["home", "jobs", "poison", "compare"]))
def test_pages_listing_runs_survive_the_whole_corpus(runs, name):
    assert not _page(name, {}).exception


def test_app_picker_lists_broken_runs(runs):
    from streamlit.testing.v1 import AppTest

    from tests.app.conftest import ROOT

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.query_params["pack"] = "records-a-dict"
    at.run()
    assert not at.exception, at.exception
    picker = at.sidebar.selectbox(key="pack_select")
    assert picker.value == "records-a-dict"
    labels = list(picker.options)  # AppTest holds the formatted labels
    assert any("broken (results.json: records is an object" in x for x in labels), labels
    assert sum("broken (" in x for x in labels) == len(APP_CASES)


def test_link_to_a_missing_run_says_so(runs):
    at = _page("story", {"pack": "no-such-run"})
    assert not at.exception
    assert any("No run “no-such-run”" in e.value for e in at.error)
