"""``defense.json`` is the pack's own derived cache: settings it covers answer from it, others
recompute and replace it; a file the user named with ``--out`` is never replaced."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core.defend.report import DEFENSE, load_report, pack_report
from core.results.pack import load_pack

DEMO = Path(__file__).resolve().parents[2] / "assets" / "demo"


@pytest.fixture
def demo_copy(tmp_path):
    out = tmp_path / "demo"
    shutil.copytree(DEMO, out, ignore=shutil.ignore_patterns("*nightshade*"))
    return out


def test_the_readme_example_prints_the_report(demo_copy):
    r = subprocess.run(
        [sys.executable, "-m", "core.cli", "defend", "--pack", str(demo_copy), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert not out["computed"]  # the stored report covers dirty-label on every scorable level
    assert {row["method"] for row in out["rows"]} == {"dirty-label"}
    report = load_report(demo_copy / DEFENSE)
    assert report is not None
    stored = report.settings
    scored = len(stored["detectors"]) - len(out["unavailable"])  # one row per level each
    assert len(out["rows"]) == scored * len(stored["levels"])
    assert scored >= 4 and set(out["unavailable"]) <= {"reconstruction"}


def test_other_settings_recompute_the_pack_cache_atomically(demo_copy):
    pack = load_pack(demo_copy)
    stored = json.loads((demo_copy / DEFENSE).read_text())
    stored["settings"]["levels"] = [1]  # a cache that does not cover the default levels
    stored["rows"] = [r for r in stored["rows"] if r["c_p"] == 1]
    (demo_copy / DEFENSE).write_text(json.dumps(stored))
    report, path, fresh = pack_report(pack, detectors=["misalignment"])
    assert fresh and path == demo_copy / DEFENSE
    again = load_report(path)
    assert again is not None and again.settings["levels"] == report.settings["levels"]
    assert len(again.settings["levels"]) > 1
    assert not list(demo_copy.glob(".*tmp*"))  # replaced through a temp file, none left


def test_a_user_out_file_is_never_replaced(demo_copy, tmp_path):
    pack = load_pack(demo_copy)
    mine = tmp_path / "mine.json"
    mine.write_text(json.dumps({"settings": {"levels": [99]}, "rows": [], "metadata": {}}))
    with pytest.raises(ValueError, match="nothing was overwritten"):
        pack_report(pack, mine, detectors=["misalignment"])
    assert json.loads(mine.read_text())["settings"] == {"levels": [99]}
