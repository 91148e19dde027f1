"""Argument types shared by the subcommands: checked at parse time, before any work, and
reported by argparse as ``error: argument --seeds: …`` (the option is always named)."""

from __future__ import annotations

import argparse


def seed(text: str) -> int:
    """A random seed: an integer ≥ 0 (numpy and torch refuse negative seeds mid-run)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds are whole numbers ≥ 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"seeds are whole numbers ≥ 0, got {value}")
    return value
