"""The ``implosion`` command line: one headless entry point that the UI also uses.

Each subcommand lives in ``core/commands/<name>.py`` exposing ``register(subparsers)``; it parses
arguments, calls one core function and prints. Errors that are the user's to fix are raised as
``CliError`` / ``ValueError`` and printed as one line naming the field and the fix (exit code 2).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Order here is the order in ``implosion --help``.
COMMAND_MODULES: tuple[str, ...] = (
    "core.commands.base",  # train-base, eval-base, generate
    "core.commands.ad",  # ad
    "core.commands.sweep",  # sweep, finetune
    "core.commands.jobs",  # jobs
    "core.commands.real",  # real: SD 1.x/2.x models and real datasets
    "core.commands.app",  # app
)


class CliError(Exception):
    """A user error: printed without a traceback, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="implosion",
        description="Implosion Lab: poisoning and model implosion in text-to-image diffusion.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:  # command not built yet in this checkout
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except (CliError, ValueError, FileNotFoundError) as e:
        print(f"implosion {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"implosion {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
