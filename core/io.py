"""Shared plumbing: paths, atomic writes, seeding and run metadata.

Every file a run writes goes through :func:`atomic_write_bytes` (temp file + fsync + rename), so a
reader, or a worker killed with SIGKILL mid-write, never leaves a half-written file that looks valid.
"""

from __future__ import annotations

import json
import os
import platform
import random
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]


def assets_dir() -> Path:
    """Shipped assets folder (``IMPLOSION_ASSETS`` overrides ``<repo>/assets``)."""
    return Path(os.environ.get("IMPLOSION_ASSETS", REPO_ROOT / "assets"))


def default_base() -> Path:
    """The shipped clean base model folder (``assets/base``): the embedded default."""
    return assets_dir() / "base"


def runs_dir() -> Path:
    """Where runs live (``IMPLOSION_RUNS`` overrides ``<repo>/runs``)."""
    return Path(os.environ.get("IMPLOSION_RUNS", REPO_ROOT / "runs"))


def ensure_writable_dir(path: Path, field: str = "out") -> Path:
    """Create ``path`` if needed and check it is writable; ValueError names the field otherwise."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=path, prefix=".probe-", delete=True)
        probe.close()
    except OSError as e:
        raise ValueError(
            f"{field}: cannot write to {path} ({e.strerror or e}); choose a writable directory"
        ) from e
    return path


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON (NaN written as null)."""
    atomic_write_bytes(Path(path), (json.dumps(_jsonable(obj), indent=2) + "\n").encode())


def atomic_write_with(path: Path, writer: Callable[[Path], None]) -> None:
    """Atomically produce ``path`` with ``writer(tmp_path)`` (for libraries that write files)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        writer(Path(tmp))
        if Path(tmp).is_file():
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_save_npz(path: Path, arrays: dict[str, Any], compressed: bool = False) -> None:
    """Atomically write a ``.npz`` (no pickled objects: load with ``allow_pickle=False``)."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            (np.savez_compressed if compressed else np.savez)(fh, **arrays)

    atomic_write_with(Path(path), write)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA). Use explicit generators where it matters."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def package_versions() -> dict[str, str]:
    """Versions of the packages that determine results."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("implosion-lab", "torch", "diffusers", "transformers", "tokenizers", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def git_commit() -> str | None:
    """Commit of the source tree, or None outside a git checkout."""
    try:
        return (
            subprocess.run(
                ["git", "rev-parse", "HEAD"],
                cwd=REPO_ROOT,
                capture_output=True,
                text=True,
                timeout=5,
                check=True,
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        return None


def run_metadata(seed: int | None = None) -> dict[str, Any]:
    """Seed, git commit and package versions, saved next to every result."""
    return {"seed": seed, "git_commit": git_commit(), "versions": package_versions()}
