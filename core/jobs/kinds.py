"""Job kinds: names mapped to ``"module.path:function"`` targets.

A kind function has the signature ``fn(config: dict, ctx: JobContext) -> dict`` and returns final
metrics. Targets are strings (not callables) because the function runs in a fresh worker process
that imports it by name; the resolved target is stored in ``config.json`` so a resumed run uses the
same code even if the registry changed. A target whose function has since moved is read through
:data:`MOVED`, so runs recorded before the move still resume.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Kinds every process knows without importing their modules first (the CLI and the worker start
# cold). Training code plugs in here or calls register_kind() before start_job().
_KINDS: dict[str, str] = {
    "finetune": "core.sweep.mini.finetune:run_job",
    "sweep": "core.sweep.mini.run:run_job",
    "real-finetune": "core.training.real:run_job",
    "real-sweep": "core.sweep.real.run:run_job",
    "dummy": "core.jobs._testing:count",  # a harmless counter: smoke tests and demos
}

# Targets stored in job records on disk (``config.json``) before their function moved → where
# it lives now. A record is never rewritten; its target is read through this map.
MOVED: dict[str, str] = {
    "core.sweep.driver:run_job": "core.sweep.mini.run:run_job",
    "core.sweep.experiment:run_job": "core.sweep.mini.finetune:run_job",
    "core.sweep.defended:run_job": "core.sweep.mini.defended:run_job",
    "core.sweep.real:run_job": "core.sweep.real.run:run_job",
}


def register_kind(name: str, target: str) -> None:
    """Register job kind ``name`` as ``"module.path:function"`` (checked when a job starts)."""
    if not name or ":" in name:
        raise ValueError(f"kind name {name!r}: use a short name without ':' such as 'finetune'")
    _split_target(target)
    _KINDS[name] = target


def kinds() -> dict[str, str]:
    """Registered kinds: name → ``"module.path:function"``."""
    return dict(_KINDS)


def _split_target(target: str) -> tuple[str, str]:
    module, sep, func = target.partition(":")
    if not sep or not module or not func.isidentifier():
        raise ValueError(
            f"kind target {target!r}: expected 'module.path:function', e.g. 'core.training.finetune:run_job'"
        )
    return module, func


def resolve_target(kind: str) -> str:
    """The ``module:function`` target of a registered name, or ``kind`` itself if it is a target."""
    if kind in _KINDS:
        return _KINDS[kind]
    if ":" in kind:
        _split_target(kind)
        return MOVED.get(kind, kind)
    allowed = ", ".join(sorted(_KINDS))
    raise ValueError(f"unknown job kind {kind!r}; allowed: {allowed}, or 'module.path:function'")


def load_target(target: str, kind: str | None = None) -> Callable[..., Any]:
    """Import and return the function named by ``target`` (ValueError naming the problem); a
    target that has moved since it was recorded resolves to its new place (:data:`MOVED`)."""
    target = MOVED.get(target, target)
    module_name, func_name = _split_target(target)
    label = f"job kind {kind!r} ({target})" if kind and kind != target else f"job kind {target!r}"
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"{label}: cannot import {module_name} ({e})") from e
    fn = getattr(module, func_name, None)
    if not callable(fn):
        raise ValueError(f"{label}: {module_name} has no function {func_name!r}")
    return fn


def import_root(target: str) -> str | None:
    """The sys.path entry ``target``'s module was imported from (so the worker can find it too)."""
    module_name, _ = _split_target(target)
    module = sys.modules.get(module_name)
    file = getattr(module, "__file__", None)
    if not file:
        return None
    path = Path(file).resolve()
    depth = module_name.count(".") + (2 if path.name == "__init__.py" else 1)
    return str(path.parents[depth - 1])
