"""CLI subcommands; each module exposes ``register(subparsers)`` (see core/cli.py)."""
