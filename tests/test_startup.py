"""Start-up stays light: commands that need no model never import torch/diffusers/transformers.

Each case runs the real CLI in a fresh interpreter and reports, at exit, which heavy modules got
imported (asserted on modules, not on seconds: timings are in bench/results/ad.md).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core import cli

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "diffusers", "transformers", "accelerate", "peft", "streamlit")

_PROBE = f"""
import atexit, json, sys
atexit.register(lambda: sys.stderr.write(
    "HEAVY=" + json.dumps([m for m in {HEAVY!r} if m in sys.modules]) + "\\n"))
"""


def _heavy_after(
    code: str, tmp_path: Path, *args: str
) -> tuple[list[str], subprocess.CompletedProcess]:
    env = {**os.environ, "IMPLOSION_RUNS": str(tmp_path / "runs"), "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE + code, *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("HEAVY=")]
    assert lines, f"probe did not report (rc={proc.returncode}):\n{proc.stderr[-2000:]}"
    return json.loads(lines[-1][len("HEAVY=") :]), proc


def _cli(tmp_path: Path, *args: str) -> tuple[list[str], subprocess.CompletedProcess]:
    code = "import sys\nfrom core.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    return _heavy_after(code, tmp_path, *args)


def test_help_imports_no_heavy_module(tmp_path):
    heavy, proc = _cli(tmp_path, "--help")
    assert proc.returncode == 0, proc.stderr
    assert heavy == []
    for name in cli.COMMANDS:
        assert name in proc.stdout  # every subcommand is still listed


def test_jobs_list_imports_no_heavy_module(tmp_path):
    heavy, proc = _cli(tmp_path, "jobs", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    assert heavy == []
    assert json.loads(proc.stdout) == []


def test_runs_list_imports_no_heavy_module(tmp_path):
    if "runs" not in cli.COMMANDS:
        pytest.skip("no `implosion runs` in this checkout")
    heavy, proc = _cli(tmp_path, "runs", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    assert heavy == []
    assert isinstance(json.loads(proc.stdout), list)


def test_ad_on_embeddings_needs_numpy_only(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 16)).astype(np.float32)
    np.savez(tmp_path / "e.npz", image=x, text=x + rng.standard_normal(x.shape).astype(np.float32))
    for extra in ([], ["--sample", "2000"]):
        heavy, proc = _cli(
            tmp_path, "ad", "--embeddings", str(tmp_path / "e.npz"), "--json", *extra
        )
        assert proc.returncode == 0, proc.stderr
        assert heavy == []
        assert 0.0 < json.loads(proc.stdout)["ad"] < 2.0


def test_job_worker_does_not_import_torch_before_the_job(tmp_path):
    heavy, proc = _heavy_after("import core.jobs.worker\n", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert heavy == []


def _registered() -> dict[str, tuple[str, str | None]]:
    """Register every command module for real: subcommand → (module, help)."""
    sub = argparse.ArgumentParser().add_subparsers()
    out: dict[str, tuple[str, str | None]] = {}
    for module in cli.COMMAND_MODULES:
        before = len(sub._choices_actions)
        importlib.import_module(module).register(sub)
        for action in sub._choices_actions[before:]:
            out[action.dest] = (module, action.help)
    return out


def test_command_table_matches_the_modules():
    """cli.COMMANDS (what --help shows without importing anything) is in sync with the modules."""
    registered = _registered()
    missing = sorted(set(registered) - set(cli.COMMANDS))
    assert not missing, f"add {missing} to core.cli.COMMANDS (name → (module, help))"
    assert {k: v for k, v in cli.COMMANDS.items() if k in registered} == registered
    stale = sorted(
        k for k, (m, _) in cli.COMMANDS.items() if m in cli.COMMAND_MODULES and k not in registered
    )
    assert not stale, f"core.cli.COMMANDS lists commands no module registers: {stale}"


@pytest.mark.parametrize("argv", [["ad", "--help"], ["jobs", "--help"]])
def test_lazy_parser_registers_only_the_chosen_module(argv, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 0
    assert f"usage: implosion {argv[0]}" in capsys.readouterr().out


@pytest.mark.parametrize(
    "change",
    [
        {"ad": "core.commands.app", "zz-moved": "core.commands.ad"},  # command not where listed
        {"ad": "core.commands.jobs", "jobs": "core.commands.ad"},  # placeholder name clashes
    ],
)
def test_out_of_date_table_falls_back_to_every_module(change, monkeypatch, capsys):
    table = dict(cli.COMMANDS)
    for name, module in change.items():
        table[name] = (module, table.get(name, ("", "moved"))[1])
    monkeypatch.setattr(cli, "COMMANDS", table)
    with pytest.raises(SystemExit) as e:
        cli.main(["ad", "--help"])
    assert e.value.code == 0
    assert "usage: implosion ad" in capsys.readouterr().out
