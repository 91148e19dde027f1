"""``scripts/app.sh`` starts without side effects: no install when everything imports, another
checkout's install is never re-pointed, Streamlit's ``--server.port`` spelling passes through.

The script's check part runs for real (APP_CHECK_ONLY=1 stops before the server) with a fake pip:
``python3 -m pip`` and a ``pip`` on PATH both only record that they were called."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _installed_origin() -> str:
    """Where ``import core`` resolves without this folder on the path ("None" when no install of
    the project imports, e.g. an editable install whose checkout was deleted)."""
    return subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            "import importlib.util as u; s = u.find_spec('core'); print(s and s.origin)",
        ],
        capture_output=True,
        text=True,
        cwd="/",
    ).stdout.strip()


def _installed_here() -> bool:
    return _installed_origin() == str(REPO / "core" / "__init__.py")


def _installed_somewhere() -> bool:
    return _installed_origin() not in ("", "None")


@pytest.fixture
def fake_pip(tmp_path):
    """A ``python3`` that records ``-m pip …`` instead of running it, and a recording ``pip``."""
    bin_dir, log = tmp_path / "bin", tmp_path / "pip.log"
    bin_dir.mkdir()
    (bin_dir / "python3").write_text(
        "#!/usr/bin/env bash\n"
        f'if [ "$1" = -m ] && [ "$2" = pip ]; then echo "$@" >> {log}; exit 0; fi\n'
        f'exec {sys.executable} "$@"\n'
    )
    (bin_dir / "pip").write_text(f'#!/usr/bin/env bash\necho "pip $@" >> {log}\n')
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "PYTHON": str(bin_dir / "python3"),
        "APP_CHECK_ONLY": "1",
    }
    env.pop("PYTHONPATH", None)
    return env, log


def _run(script: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(script), *args], capture_output=True, text=True, env=env, timeout=120
    )


@pytest.mark.skipif(not _installed_here(), reason="this checkout is not the installed one")
def test_a_second_start_installs_nothing(fake_pip):
    env, log = fake_pip
    r = _run(REPO / "scripts" / "app.sh", env, "--server.port", "8599", "--server.address=0.0.0.0")
    assert r.returncode == 0, r.stderr
    assert not log.exists(), log.read_text()  # pip never called
    assert r.stdout.strip().endswith("-m core.cli app --port 8599 --host 0.0.0.0")


@pytest.mark.skipif(not _installed_somewhere(), reason="no importable install of the project")
def test_another_checkout_is_never_re_pointed(fake_pip, tmp_path):
    env, log = fake_pip
    other = tmp_path / "other-checkout"
    (other / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "app.sh", other / "scripts" / "app.sh")
    shutil.copy(REPO / "pyproject.toml", other / "pyproject.toml")
    r = _run(other / "scripts" / "app.sh", env, "--port", "8598")
    assert r.returncode == 0, r.stderr
    assert not log.exists(), log.read_text()  # no `pip install -e .` from the other folder
    assert "left as it is" in r.stderr and str(other) in r.stderr
    assert "--port 8598" in r.stdout


@pytest.mark.skipif(not _installed_somewhere(), reason="no importable install of the project")
def test_missing_dependency_installs_this_checkout(fake_pip, tmp_path):
    """A dependency that does not import is installed, without re-pointing the install."""
    env, log = fake_pip
    other = tmp_path / "fresh"
    (other / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "app.sh", other / "scripts" / "app.sh")
    text = (REPO / "pyproject.toml").read_text()
    (other / "pyproject.toml").write_text(
        text.replace("dependencies = [\n", 'dependencies = [\n    "no-such-module-xyz>=1",\n', 1)
    )
    r = _run(other / "scripts" / "app.sh", env)
    assert r.returncode == 0, r.stderr
    calls = log.read_text()
    assert "install" in calls and "no-such-module-xyz>=1" in calls  # dependencies only
    assert "-e ." not in calls  # this project is installed from another checkout: not re-pointed
