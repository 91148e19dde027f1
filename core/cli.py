"""The ``implosion`` command line: one headless entry point that the UI also uses.

Each subcommand lives in ``core/commands/<name>.py`` exposing ``register(subparsers)``; it parses
arguments, calls one core function and prints. Errors that are the user's to fix are raised as
``CliError`` / ``ValueError`` and printed as one line naming the field and the fix (exit code 2).

Start-up is lazy: ``COMMANDS`` names every subcommand with its module and one-line help, so
``implosion --help`` imports no command module and ``implosion ad …`` imports only
``core.commands.ad`` (whose register() may pull in config dataclasses, and those import torch).
A module listed in ``COMMAND_MODULES`` but missing from ``COMMANDS`` still works: it is imported
and registered on every call (slow but correct); tests/test_startup.py flags it.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

# Subcommand → (module, help). Order here is the order in ``implosion --help``; the help text must
# equal the module's own add_parser(help=...) (tests/test_startup.py checks both).
COMMANDS: dict[str, tuple[str, str]] = {
    "train-base": ("core.commands.base", "train the mini latent diffusion model from scratch"),
    "eval-base": (
        "core.commands.base",
        "judge generations of every concept (accuracy, incoherence)",
    ),
    "generate": ("core.commands.base", "generate a grid of images for a prompt"),
    "ad": ("core.commands.ad", "Alignment Difficulty (AD) of image/text embedding pairs"),
    "sweep": (
        "core.commands.sweep",
        "AD and implosion metrics over C_P (number of poisoned concepts)",
    ),
    "sweep-budget": (
        "core.commands.sweep",
        "attack success vs poison count, Nightshade-style vs dirty-label",
    ),
    "sweep-pack": ("core.commands.sweep", "copy a finished sweep into a demo pack the app opens"),
    "finetune": (
        "core.commands.runs",
        "poison chosen concepts and fine-tune: clean baseline + poisoned level, as a pack",
    ),
    "audit": (
        "core.commands.audit",
        "AD audit of a dataset or a planned attack: health, overlaps, flagged pairs, forecast",
    ),
    "defend": (
        "core.commands.defend",
        "detect poisoned training pairs (ROC/AUC per detector × method × C_P); defended sweep",
    ),
    "jobs": ("core.commands.jobs", "list, inspect and control background jobs"),
    "runs": ("core.commands.runs", "results packs: the demo pack and every sweep or fine-tune"),
    "real": (
        "core.commands.real",
        "real Stable Diffusion models and datasets (load, poison, fine-tune, evaluate)",
    ),
    "handout": (
        "core.commands.handout",
        "printable lesson handout: the story at three levels, AD curve, questions",
    ),
    "app": ("core.commands.app", "start the interactive explorer in your browser"),
}

# Every command module, in help order.
COMMAND_MODULES: tuple[str, ...] = (
    "core.commands.base",  # train-base, eval-base, generate
    "core.commands.ad",  # ad
    "core.commands.sweep",  # sweep, finetune
    "core.commands.audit",  # audit: AD audit of a dataset or a planned attack
    "core.commands.defend",  # defend: poison detectors, defended sweep
    "core.commands.jobs",  # jobs
    "core.commands.runs",  # runs: results packs (demo, sweeps, fine-tunes)
    "core.commands.real",  # real: SD 1.x/2.x models and real datasets
    "core.commands.handout",  # handout: the lesson's printable handout
    "core.commands.app",  # app
)


class CliError(Exception):
    """A user error: printed without a traceback, exit code 2."""


def tune_blas_for_cpu() -> None:
    """Use OpenBLAS's AVX-512 (SkylakeX) kernels on AMD CPUs that have AVX-512.

    numpy's bundled OpenBLAS (0.3.31) does not recognise Zen 5 (family 0x1A) and falls back to its
    AVX2 "Haswell" kernels: float32 GEMM at ~60 instead of ~110–135 GFLOP/s on a 2-core EPYC
    (measured, bench/results/ad.md). ``OPENBLAS_CORETYPE`` is read when numpy loads OpenBLAS, so
    this runs before any numpy import; an explicit setting by the user always wins.
    """
    if "OPENBLAS_CORETYPE" in os.environ or "numpy" in sys.modules:
        return
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            head = f.read(8192)
    except OSError:
        return
    flags: set[str] = set()
    for line in head.splitlines():
        if line.startswith("flags"):
            flags = set(line.partition(":")[2].split())
            break
    needed = {"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"}
    if "AuthenticAMD" in head and needed <= flags:
        os.environ["OPENBLAS_CORETYPE"] = "SkylakeX"


tune_blas_for_cpu()


def _module_of(name: str) -> str | None:
    entry = COMMANDS.get(name)
    return entry[0] if entry else None


def _selected(argv: Sequence[str]) -> str | None:
    """The subcommand named on the command line: the first non-option argument."""
    for arg in argv:
        if not arg.startswith("-"):
            return arg
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser. With ``argv``, only the module of the subcommand it names is imported and the
    other subcommands are name-and-help placeholders; without, every module is registered. If
    ``COMMANDS`` is out of date with a module (the named command is not where the table says),
    every module is registered: slower, never wrong."""
    if argv is not None:
        chosen = _selected(argv)
        try:
            parser, real = _parser(_module_of(chosen or ""), everything=False)
        except argparse.ArgumentError:  # a placeholder name clashes with a module's command
            return _parser(None, everything=True)[0]
        if chosen is None or chosen in real or chosen not in COMMANDS:
            return parser
    return _parser(None, everything=True)[0]


def _parser(chosen: str | None, everything: bool) -> tuple[argparse.ArgumentParser, set[str]]:
    """Parser registering module ``chosen`` (or every module), and modules missing from
    ``COMMANDS``, for real and the rest as placeholders; also the names registered for real."""
    parser = argparse.ArgumentParser(
        prog="implosion",
        description="Implosion Lab: poisoning and model implosion in text-to-image diffusion.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    known = {module for module, _ in COMMANDS.values()}
    order = list(dict.fromkeys([m for m, _ in COMMANDS.values()] + list(COMMAND_MODULES)))
    real: set[str] = set()
    for name in order:
        if everything or name == chosen or name not in known:
            before = set(sub.choices)
            _register(name, sub)
            real |= set(sub.choices) - before
            continue
        for cmd, (module, help_) in COMMANDS.items():
            if module == name:
                sub.add_parser(cmd, help=help_, add_help=False)
    return parser, real


def _register(name: str, sub: argparse._SubParsersAction) -> None:
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name == name:  # command not built yet in this checkout
            return
        raise
    module.register(sub)


def describe_os_error(e: OSError) -> str:
    """One line for an OSError: what failed, on which path, and what to do."""
    import errno

    fixes = {
        errno.EISDIR: "it is a folder; give a file path",
        errno.ENOTDIR: "a part of the path is a file, not a folder",
        errno.EACCES: "no permission; choose a path you can read or write",
        errno.EPERM: "not permitted; choose another path",
        errno.ENOSPC: "the disk is full; free space or write to another disk",
        errno.EROFS: "read-only file system; write somewhere else",
        errno.ENAMETOOLONG: "a name is too long (at most 255 bytes per name)",
        errno.ELOOP: "a symbolic link is in the way; remove it",
        errno.EEXIST: "it already exists; choose a new path",
    }
    what = e.strerror or str(e)
    fix = fixes.get(e.errno or -1, "check the path and try again")
    return f"{what}: {e.filename} ({fix})" if e.filename is not None else f"{what} ({fix})"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        if getattr(args, "device", None) is not None:  # every --device, before any work
            from core.jobs.devices import check_device

            check_device(args.device)
        return int(args.func(args) or 0)
    except (CliError, ValueError, FileNotFoundError) as e:
        print(f"implosion {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a path that is a folder, no permission, disk full…: one line
        print(f"implosion {args.command}: error: {describe_os_error(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"implosion {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
