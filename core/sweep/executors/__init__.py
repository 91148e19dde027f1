"""Executors of the one sweep driver: where levels run.

- ``local`` (the embedded default, nothing to install): levels in this process, or with
  ``workers`` > 1 in that many local worker processes (:mod:`core.sweep.executors.local`);
- ``ray``: each level a Ray task with declared CPUs/GPUs, retried on a lost worker, on a local
  Ray instance started for the sweep or on a cluster (``address``); needs the ``cluster`` extra
  (:mod:`core.sweep.executors.ray_executor`, docs/cluster.md).

Every executor reports to the same driver (core/sweep/engine.py), so resume, stop/pause,
progress, ``levels.json`` and the pack are the same whichever runs the levels.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from core.sweep.executors.base import Control, Events, Executor, LevelFailed, LevelTask
from core.sweep.executors.local import ProcessExecutor, SerialExecutor

ExecutorName = Literal["local", "ray"]
EXECUTORS: tuple[str, ...] = ("local", "ray")
RAY_MISSING = (
    "executor 'ray' needs Ray, an optional extra: pip install -e \".[cluster]\" "
    "(or pip install 'ray>=2.9'); or use --executor local"
)


@dataclass(frozen=True)
class ExecutorOptions:
    """Where and how levels run. ``workers``: local processes (local executor); ``address``:
    a Ray cluster (``ray://host:10001`` or ``host:6379``; None starts a local Ray for the
    sweep); ``gpus_per_level`` / ``cpus_per_level``: Ray resources of one level (fractions
    allowed: 0.25 GPU packs four mini levels per GPU); ``max_retries``: Ray retries of a level
    whose worker died (a level's own exception is never retried)."""

    workers: int = 1
    address: str | None = None
    gpus_per_level: float | None = None
    cpus_per_level: float | None = None
    max_retries: int = 3

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"workers must be ≥ 1, got {self.workers}")
        for name in ("gpus_per_level", "cpus_per_level"):
            v = getattr(self, name)
            if v is not None and not v > 0:
                raise ValueError(f"{name} must be > 0, got {v}; omit it for the default")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be ≥ 0, got {self.max_retries}")


def ray_available() -> bool:
    return importlib.util.find_spec("ray") is not None


# A server that may send sweeps to a Ray cluster named in its UI: results come back from the
# cluster as cloudpickle (code runs in this process), so only its operator can allow it, when
# starting it (`implosion app --allow-ray-address` sets this), never a visitor of a page.
ALLOW_RAY_ADDRESS_ENV = "IMPLOSION_ALLOW_RAY_ADDRESS"
ALLOW_RAY_ADDRESS_HOW = (
    "start the app with `implosion app --allow-ray-address` (or IMPLOSION_ALLOW_RAY_ADDRESS=1) "
    "on a trusted network (docs/cluster.md)"
)


def ray_address_allowed(env: Mapping[str, str] | None = None) -> bool:
    """Whether this server was started with permission to use a Ray cluster address."""
    value = (os.environ if env is None else env).get(ALLOW_RAY_ADDRESS_ENV, "")
    return value.strip().lower() in ("1", "true", "yes")


def app_ray_address(text: str, env: Mapping[str, str] | None = None) -> str | None:
    """The Ray address a UI form asks for: None for "local" (a Ray started with the sweep, on
    127.0.0.1 only), the address itself if this server was started with permission
    (:func:`ray_address_allowed`); ValueError saying how to allow it otherwise."""
    address = text.strip()
    if address in ("", "local"):
        return None
    if not ray_address_allowed(env):
        raise ValueError(
            f"Ray address {address!r}: this server runs Ray on this machine only ('local'); to "
            f"send sweeps to a cluster, {ALLOW_RAY_ADDRESS_HOW}"
        )
    return address


def make_executor(name: str, options: ExecutorOptions | None = None) -> Executor:
    """The executor called ``name`` (one of :data:`EXECUTORS`) with ``options``."""
    opts = options or ExecutorOptions()
    if name == "local":
        ray_only = [
            flag
            for flag, v in (
                ("address", opts.address),
                ("gpus_per_level", opts.gpus_per_level),
                ("cpus_per_level", opts.cpus_per_level),
            )
            if v is not None
        ]
        if ray_only:
            raise ValueError(f"{', '.join(ray_only)}: only for executor 'ray' (--executor ray)")
        return SerialExecutor() if opts.workers == 1 else ProcessExecutor(opts.workers)
    if name == "ray":
        if not ray_available():
            raise ValueError(RAY_MISSING)
        from core.sweep.executors.ray_executor import RayExecutor

        return RayExecutor(opts)
    raise ValueError(f"executor must be one of {list(EXECUTORS)}, got {name!r}")


__all__ = [
    "ALLOW_RAY_ADDRESS_ENV",
    "EXECUTORS",
    "RAY_MISSING",
    "Control",
    "Events",
    "Executor",
    "ExecutorName",
    "ExecutorOptions",
    "LevelFailed",
    "LevelTask",
    "ProcessExecutor",
    "SerialExecutor",
    "app_ray_address",
    "make_executor",
    "ray_address_allowed",
    "ray_available",
]
