"""What one sweep level asks of Ray and whether a cluster can give it, without importing Ray:
the launching process checks a local Ray's request against this machine before a job is
accepted, the Ray executor against every alive node of the cluster before it submits."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.sweep.executors import ExecutorOptions


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and IPv4-mapped loopback (``::ffff:127.0.0.1``)."""
    try:
        ip = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool((mapped or ip).is_loopback)


def level_request(options: ExecutorOptions) -> dict[str, float]:
    """Ray resources of one level: {"CPU": cpus_per_level or 1, "GPU": gpus_per_level or 0}."""
    cpus = options.cpus_per_level if options.cpus_per_level is not None else 1.0
    return {"CPU": cpus, "GPU": options.gpus_per_level or 0.0}


_FLAGS = {"CPU": "--cpus-per-level", "GPU": "--gpus-per-level"}


def check_fits(
    request: Mapping[str, float], nodes: Sequence[Mapping[str, float]], where: str
) -> None:
    """ValueError unless one level's ``request`` fits the total resources of at least one
    node (``nodes``: each alive node's resources, as ``ray.nodes()`` lists them); the message
    names the flag and what the largest node offers."""
    if any(all(node.get(k, 0.0) >= v for k, v in request.items() if v > 0) for node in nodes):
        return
    for k, v in request.items():
        most = max((node.get(k, 0.0) for node in nodes), default=0.0)
        if v > most:
            raise ValueError(
                f"{_FLAGS.get(k, k)}: a level asks for {v:g} {k} but {where} has "
                f"{'at most ' if len(nodes) > 1 else ''}{most:g} {k}"
                f"{f' on one of its {len(nodes)} nodes' if len(nodes) > 1 else ''}; lower "
                f"{_FLAGS.get(k, k)} or add a node that has it (nothing was started)"
            )
    raise ValueError(
        f"no node of {where} has {', '.join(f'{v:g} {k}' for k, v in request.items())} "
        "at once; lower --cpus-per-level / --gpus-per-level (nothing was started)"
    )


def this_machine() -> dict[str, float]:
    """The resources a local Ray would find here: CPUs (``os.cpu_count``) and CUDA GPUs."""
    gpus = 0
    try:
        import torch

        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    except ImportError:  # torch is a dependency; a broken install has no GPUs to offer
        pass
    return {"CPU": float(os.cpu_count() or 1), "GPU": float(gpus)}
