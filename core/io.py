"""Shared plumbing: paths, atomic writes, seeding and run metadata.

Every file a run writes goes through :func:`atomic_write_bytes` (temp file + fsync + rename), so a
reader, or a worker killed with SIGKILL mid-write, never leaves a half-written file that looks valid.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import random
import re
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
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


def _tmp_prefix(path: Path) -> str:
    # The writer's pid is in the name so clean_stale_tmp can tell a live writer's file from one a
    # killed process left behind: ``.<name>.<pid>.<random>.tmp``.
    return f".{path.name}.{os.getpid()}."


_TMP_RE = re.compile(r"^\..+\.(\d+)\.[^.]*\.tmp$|^\..+\.(\d+)\.tmp$")


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def clean_stale_tmp(folder: Path, recursive: bool = True) -> list[Path]:
    """Remove hidden ``*.tmp`` files and folders left by killed writers under ``folder``.

    Only names written by this module (``.<name>.<pid>.<random>.tmp``) or by checkpoint saves
    (``.<name>.<pid>.tmp``) whose writer pid is no longer running are removed; a live writer's
    temp file is kept. Symlinks are never followed. Returns the removed paths. Call it when a
    folder is (re)opened for writing, e.g. when a sweep or a job resumes.
    """
    import shutil

    removed: list[Path] = []
    folder = Path(folder)
    if not folder.is_dir() or folder.is_symlink():
        return removed
    for dirpath, dirnames, filenames in os.walk(folder):
        d = Path(dirpath)
        for name in [*filenames, *dirnames]:
            m = _TMP_RE.match(name)
            if m is None:
                continue
            pid = int(m.group(1) or m.group(2))
            if pid == os.getpid() or _pid_running(pid):
                continue
            path = d / name
            try:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
            except FileNotFoundError:
                continue
            removed.append(path)
        dirnames[:] = [n for n in dirnames if recursive and not _TMP_RE.match(n)]
    return removed


def _same_or_nested(a: Path, b: Path) -> bool:
    return a == b or a in b.parents or b in a.parents


def check_output(
    path: Path,
    *,
    inputs: Sequence[tuple[str, Path | str | None]] = (),
    force: bool = False,
    field: str = "--out",
    kind: str = "folder",
    resumable: Callable[[Path], bool] | None = None,
    force_option: str | None = "--force",
) -> Path:
    """The one guard for output paths, called before any work starts; returns ``path``.

    * never an input: ``path`` must not be, contain or lie inside any ``inputs`` entry
      (``(field name, path)``, e.g. ``("--model", model_dir)``);
    * ``kind="folder"``: an existing non-empty folder is refused unless ``force`` (or
      ``resumable(path)`` says it holds this command's own unfinished work); a file is refused;
    * ``kind="file"``: an existing folder is refused; an existing file only with ``force``.

    ValueError names ``field`` and the fix (``force_option`` is the option that allows
    replacing, None where the command has none). Write the output with :func:`replace_output`
    (temp sibling, then rename) so nothing is half-replaced.
    """
    path = Path(path).expanduser()
    real = path.resolve()
    for name, inp in inputs:
        if inp is None or str(inp) == "":
            continue
        other = Path(inp).expanduser().resolve()
        if _same_or_nested(real, other):
            raise ValueError(
                f"{field} {path}: is the same as or nested with {name} {inp}; write the output "
                f"to a new folder outside the input (inputs are never overwritten)"
            )
    if kind == "file":
        if path.is_dir():
            raise ValueError(f"{field} {path}: is a folder; give a file name inside it")
        if path.exists() and not force:
            also = f" or pass {force_option}" if force_option else ""
            raise ValueError(f"{field} {path}: already exists; choose a new name{also}")
        return path
    if path.exists() and not path.is_dir():
        raise ValueError(f"{field} {path}: is a file, not a folder; choose a folder path")
    if path.is_dir() and any(path.iterdir()) and not force:
        if resumable is None or not resumable(path):
            also = f", or pass {force_option} to replace its contents" if force_option else ""
            raise ValueError(
                f"{field} {path}: folder is not empty; choose a new or empty folder{also}"
            )
    return path


@contextlib.contextmanager
def replace_output(path: Path) -> Iterator[Path]:
    """Build a folder in a temp sibling, then swap it in for ``path`` (never a mixed folder).

    Yields the temp folder (``.<name>.<pid>.tmp`` next to ``path``). On success the old ``path``
    (if any, allowed by :func:`check_output` with ``force``) is renamed away, the temp folder
    renamed to ``path``, and the old contents deleted; on error the temp folder is removed and
    ``path`` is untouched.
    """
    import shutil

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = path.with_name(f".{path.name}.{os.getpid()}.old.tmp")
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_tmp_prefix(path), suffix=".tmp")
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
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_tmp_prefix(path), suffix=".tmp")
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


def read_json_file(path: Path, field: str, fix: str) -> Any:
    """Parsed JSON at ``path``; a missing, unreadable or corrupt file is one ValueError line
    naming ``field``, the file, what is wrong and ``fix`` (never a bare library message)."""
    path = Path(path)
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        raise ValueError(f"{field}: {path} does not exist; {fix}") from None
    except OSError as e:
        raise ValueError(f"{field}: cannot read {path} ({e.strerror or e}); {fix}") from None
    except (ValueError, UnicodeDecodeError) as e:
        where = f" at line {e.lineno}" if isinstance(e, json.JSONDecodeError) else ""
        raise ValueError(f"{field}: {path} is corrupt (not valid JSON{where}); {fix}") from None


PICKLE_WEIGHTS = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


def check_safetensors(folder: Path, label: str) -> None:
    """ValueError unless ``folder`` holds its weights as ``.safetensors``.

    Nothing is ever unpickled: pickle weights (``.bin``, ``.pt``, ``.ckpt``…) can run code when
    loaded, so they are refused with the way to convert them, never loaded.
    """
    names = [p.name for p in folder.iterdir() if p.is_file()] if folder.is_dir() else []
    if any(n.endswith(".safetensors") for n in names):
        return
    pickled = sorted(n for n in names if n.endswith(PICKLE_WEIGHTS))
    found = f"only pickle weights ({', '.join(pickled)})" if pickled else "no weights"
    raise ValueError(
        f"{label}: {folder.name}/ has {found}; only .safetensors weights are loaded (pickle "
        f"files can run code when loaded). Download the safetensors variant, or convert a "
        f"trusted copy: load it with diffusers/transformers and save_pretrained(..., "
        f"safe_serialization=True)"
    )


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
