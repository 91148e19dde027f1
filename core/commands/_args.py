"""Argument types shared by the subcommands: checked at parse time, before any work, and
reported by argparse as ``error: argument --seeds: …`` (the option is always named)."""

from __future__ import annotations

import argparse
from typing import Any


def seed(text: str) -> int:
    """A random seed: an integer ≥ 0 (numpy and torch refuse negative seeds mid-run)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds are whole numbers ≥ 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"seeds are whole numbers ≥ 0, got {value}")
    return value


def add_finetune_args(p: argparse.ArgumentParser) -> None:
    """``--params`` / ``--lora-rank`` / ``--lr``: which UNet weights a fine-tune trains and how fast
    (core.training.config.FinetuneConfig validates the values; None keeps the preset's)."""
    from core.training.config import PARAMS

    p.add_argument(
        "--params",
        default=None,
        choices=list(PARAMS),
        help="UNet weights the fine-tune trains: all, cross-attention, or lora (low-rank "
        "adapters on cross-attention); default: the preset's",
    )
    p.add_argument(
        "--lora-rank", type=int, default=None, help="adapter rank with --params lora (1–64)"
    )
    p.add_argument("--lr", type=float, default=None, help="fine-tune learning rate")


def finetune_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The fine-tune fields set on the command line (see :func:`add_finetune_args`)."""
    given = {"params": args.params, "lora_rank": args.lora_rank, "lr": args.lr}
    return {k: v for k, v in given.items() if v is not None}
