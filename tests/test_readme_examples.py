"""Every ``implosion …`` example in README.md works as written.

Examples are the backtick spans that start with ``implosion``. Each is expanded into concrete
command lines: placeholders (DIR, PACK, FILE.npz, ID, P, N, …) get values, an optional ``[…]``
group is taken once without and once with its first alternative, and ``a|b`` picks each word.
Every line is parsed by the real argparse parser (fast); the quick ones also run for real against
a copy of the demo pack; the heavy ones run in the ``slow`` test on the tiny model.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from itertools import product
from pathlib import Path

import numpy as np
import pytest

from core.cli import COMMANDS, build_parser

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"

# Placeholders in the README's examples and the values the tests give them ({tmp}: a temp folder).
PLACEHOLDERS = {
    "DIR": "{tmp}/out",
    "PACK": "{tmp}/pack",
    "FILE.npz": "{tmp}/emb.npz",
    "ID": "demo",
    "P": "8599",
    "N": "4",
    "S": "0",
    "E": "0.05",
    "A": "auto",
    "R": "1",
    "SD_DIR": "{tmp}/sd",
    "CLIP_DIR": "{tmp}/clip",
    "DATA": "{tmp}/data",
}
# Examples run for real in the fast test (seconds each); the rest are parsed (and run when slow).
QUICK = ("defend", "runs", "jobs list", "ad", "real --help")


def readme_examples() -> list[str]:
    """The ``implosion …`` backtick spans of README.md, whitespace-normalised, ``\\|`` → ``|``."""
    spans = re.findall(r"`(implosion(?:\s[^`]*)?)`", README.read_text())
    return sorted({" ".join(s.replace("\\|", "|").split()) for s in spans})


def _tokens(example: str) -> list[str]:
    """Words of an example; a quoted phrase is one word; an optional ``[…]`` group is one item."""
    return re.findall(r'\[[^\]]*\]|"[^"]*"|\S+', example)


def expand(example: str) -> list[list[str]]:
    """Concrete argument lists (without the leading ``implosion``) for one example. A bare
    ``a|b|c`` word lists subcommands: its lines end at the chosen one (checked with ``--help``)."""
    words = _tokens(example)[1:]
    if words == ["…"] or (words and words[-1] == "…"):
        return []  # prose ("implosion real …"), not a command
    options: list[list[list[str]]] = []
    for i, w in enumerate(words):
        if "|" in w and not w.startswith(("[", '"')):
            words = words[: i + 1] + ["--help"]
            break
    for w in words:
        if w.startswith("["):
            inner = [t for t in _tokens(w[1:-1]) if t]
            first = [t.split("|")[0] if "|" in t and not t.startswith('"') else t for t in inner]
            options.append([[], first])
        elif "|" in w and not w.startswith('"'):
            options.append([[alt] for alt in w.split("|")])
        else:
            options.append([[w]])
    lines = []
    for choice in product(*options):
        argv = [t.strip('"') for part in choice for t in part]
        lines.append([PLACEHOLDERS.get(t, t) for t in argv])
    return lines


def _fill(argv: list[str], tmp: Path) -> list[str]:
    return [a.replace("{tmp}", str(tmp)) for a in argv]


def _parses(argv: list[str]) -> str | None:
    """None if the real parser accepts ``argv``, else argparse's message."""
    try:
        build_parser(argv).parse_args(argv)
    except SystemExit as e:
        return None if e.code == 0 else f"exit {e.code}"
    return None


EXAMPLES = readme_examples()


def test_the_readme_has_examples():
    assert len(EXAMPLES) >= 15
    assert "implosion defend --pack PACK [--json]" in EXAMPLES


@pytest.mark.parametrize("example", EXAMPLES)
def test_every_example_parses(example, tmp_path, capsys):
    lines = expand(example)
    if not lines:
        return
    for argv in lines:
        argv = _fill(argv, tmp_path)
        if not argv:  # plain `implosion`: the command list
            continue
        assert argv[0] in COMMANDS, f"{example}: no command {argv[0]!r}"
        problem = _parses(argv)
        if problem is not None and len(argv) == 1:
            # A command named in prose ("implosion sweep"): it must exist (--help).
            problem = _parses([*argv, "--help"])
        err = capsys.readouterr().err
        assert problem is None, f"README example `{example}` → {argv}: {err.strip()}"


@pytest.fixture
def quick_env(tmp_path):
    shutil.copytree(REPO / "assets" / "demo", tmp_path / "pack")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "emb.npz", image=rng.normal(size=(64, 8)), text=rng.normal(size=(64, 8)))
    return tmp_path


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "core.cli", *argv],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
    )


def test_quick_examples_run_as_written(quick_env):
    ran = []
    for example in EXAMPLES:
        for argv in expand(example):
            argv = _fill(argv, quick_env)
            line = " ".join(argv)
            if not any(line.startswith(q) for q in QUICK) or _parses(argv) is not None:
                continue
            r = _run(argv, quick_env)
            assert r.returncode == 0, f"`{example}` as {argv}: {r.stderr[-800:]}"
            ran.append(line)
    assert any(r.startswith("defend --pack") and "--json" in r for r in ran)
    assert any(r.startswith("ad ") for r in ran) and any(r.startswith("runs show") for r in ran)


@pytest.mark.slow
def test_heavy_examples_run_on_the_tiny_model(tiny_model_dir, tmp_path):
    """The training and sweep examples as written but on the tiny model and ci-smoke sizes."""
    out, pack = tmp_path / "out", tmp_path / "pack"
    steps = [
        ["sweep", "--preset", "ci-smoke", "--model", str(tiny_model_dir), "--out", str(out)],
        ["sweep-pack", str(out), "--out", str(pack)],
        ["defend", "--pack", str(pack), "--json"],
        ["runs", "show", str(pack), "--json"],
        ["finetune", "--concepts", "0", "1", "--steps", "2", "--model", str(tiny_model_dir)]
        + ["--eval-samples", "1", "--wait"],
        ["generate", "--prompt", "a photo of a large red star", "-n", "8", "--seed", "0"]
        + ["--out", str(tmp_path / "grid.png")],
    ]
    for argv in steps:
        r = _run(argv, tmp_path)
        assert r.returncode == 0, f"{argv}: {r.stderr[-800:]}"
