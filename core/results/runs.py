"""Runs as the explorer and ``implosion runs`` see them: every results pack, typed.

A *run* is a pack folder (:mod:`core.results.schema`): the shipped demo pack (id ``"demo"``) or
one under the runs directory, written by a sweep or fine-tune job (``<run>/pack`` or
``<run>/sweep``) or by ``implosion sweep --out runs/<name>``. A pack is listed as soon as its
``results.json`` holds a first level; ``complete`` turns true when the sweep assembled the pack.

:func:`list_runs` → [:class:`RunInfo`] (newest first, demo first) for run pickers and
``runs list --json``; :func:`get_run` finds one by id, path or job run id; :func:`open_run`
loads it with the checks ``runs show`` needs (complete, same model); :func:`run_summary` is the
per-level table (means over seeds).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from core.io import default_base, runs_dir
from core.jobs.access import DEMO_ID, AccessDenied, Principal, check, current_actor, may_open
from core.jobs.labels import run_label
from core.results.aggregate import level_summaries
from core.results.pack import Pack, demo_dir, find_pack_dir, load_pack
from core.results.schema import GRIDS_DIR, RESULTS, LevelSummary
from core.results.validate import BrokenPack, exists, read_json

RunKind = Literal["demo", "sweep", "finetune", "real-sweep", "pack"]
# Job kinds whose run directory holds a pack; anything else with results.json is a plain "pack".
_PACK_KINDS: dict[str, RunKind] = {
    "sweep": "sweep",
    "finetune": "finetune",
    "real-sweep": "real-sweep",
}


@dataclass(frozen=True)
class RunInfo:
    """One pack as a run picker lists it.

    id: ``"demo"``, the job run id or the folder name under the runs directory; name: readable
    (the poisoned concepts of a fine-tune, else the preset); created: ISO-8601 UTC; model: the
    base model folder (``"shipped base"`` for the default); levels: configured C_P values;
    levels_done: C_P values with at least one saved record; seeds: configured seeds; state: the
    job's state when a job wrote it (``queued``/``running``/…/``completed``), else
    ``complete`` / ``partial``, or ``broken`` when the pack fails validation (``reason`` says
    which file and what is wrong: core.results.validate); path: the pack folder.
    """

    id: str
    kind: RunKind
    name: str
    created: str
    model: str
    levels: tuple[int, ...]
    levels_done: tuple[int, ...]
    seeds: tuple[int, ...]
    complete: bool
    state: str
    path: Path
    reason: str = ""

    @property
    def broken(self) -> bool:
        """Whether the pack failed validation (it cannot be opened; ``reason`` says why)."""
        return self.state == "broken"

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``runs list --json``)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "name": self.name,
            "created": self.created,
            "model": self.model,
            "levels": list(self.levels),
            "levels_done": list(self.levels_done),
            "seeds": list(self.seeds),
            "complete": self.complete,
            "state": self.state,
            "path": str(self.path),
            "reason": self.reason,
        }

    @property
    def label(self) -> str:
        """One line for a picker: name · date · levels · state (``broken (reason)``)."""
        day = self.created[:16].replace("T", " ") if self.created else "—"
        cps = ", ".join(str(c) for c in self.levels)
        return f"{self.name} · {day} · C_P {cps} · {self.state_text}"

    @property
    def state_text(self) -> str:
        """The state, with the reason for a broken pack: ``broken (results.json: …)``."""
        return f"broken ({self.reason})" if self.broken else self.state


def _read_json(path: Path) -> Any:
    """A job's small JSON file (config.json, status.json), or None if missing or unreadable;
    read like pack files (no links, size and depth limits)."""
    try:
        return read_json(path.parent, path.name, max_bytes=2**20)
    except (OSError, ValueError):
        return None


def _model_label(model: Any) -> str:
    if not model:
        return "shipped base"
    try:
        if Path(model).resolve() == default_base().resolve():
            return "shipped base"
    except OSError:
        pass
    return str(model)


def _mtime_iso(path: Path) -> str:
    try:
        ts = path.stat().st_mtime
    except OSError:
        return ""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def _broken(run_id: str, pack_dir: Path, job: dict[str, Any] | None, reason: str) -> RunInfo:
    """A pack that fails validation, listed with its reason (like a broken job)."""
    job_cfg = (job or {}).get("config")
    name = str(job_cfg.get("name") or "") if isinstance(job_cfg, dict) else ""
    return RunInfo(
        id=run_id,
        kind="demo" if run_id == "demo" else _PACK_KINDS.get(str((job or {}).get("kind")), "pack"),
        name=name or pack_dir.name,
        created=str((job or {}).get("created") or _mtime_iso(pack_dir)),
        model="—",
        levels=(),
        levels_done=(),
        seeds=(),
        complete=False,
        state="broken",
        path=pack_dir,
        reason=reason,
    )


# pack folder → (what its files looked like, its validated results.json or why it is broken)
_CHECKED: dict[str, tuple[tuple[Any, ...], dict[str, Any] | BrokenPack]] = {}


def _stats(folder: Path) -> tuple[Any, ...]:
    """Name, inode, size and modification time of every entry of ``folder`` and ``grids/``:
    equal stats mean the files validated last time are the files there now."""
    out: list[tuple[Any, ...]] = []
    for d in (folder, folder / GRIDS_DIR):
        try:
            with os.scandir(d) as it:
                for e in it:
                    st = e.stat(follow_symlinks=False)
                    out.append((d.name, e.name, st.st_ino, st.st_mode, st.st_size, st.st_mtime_ns))
        except OSError:
            out.append((d.name, None))
    return tuple(sorted(out, key=repr))


def _validated(pack_dir: Path) -> dict[str, Any]:
    """``results.json`` of the pack at ``pack_dir`` through core.results.pack.load_pack, memoised
    while none of its files changes (the run picker lists every run every few seconds)."""
    key, hit = _stats(pack_dir), _CHECKED.get(str(pack_dir))
    if hit is not None and hit[0] == key:
        found = hit[1]
    else:
        try:
            found = load_pack(pack_dir).results
        except BrokenPack as e:
            found = e
        if len(_CHECKED) > 4096:
            _CHECKED.clear()
        _CHECKED[str(pack_dir)] = (key, found)
    if isinstance(found, BrokenPack):
        raise found
    return found


def _info(run_id: str, pack_dir: Path, job: dict[str, Any] | None, status: Any) -> RunInfo:
    """The run of ``pack_dir``, validated (core.results.pack.load_pack); a pack that fails
    validation or cannot be read comes back ``broken`` with the reason, never an exception."""
    try:
        results = _validated(pack_dir)
    except BrokenPack as e:
        return _broken(run_id, pack_dir, job, e.reason)
    except (OSError, ValueError) as e:
        return _broken(run_id, pack_dir, job, getattr(e, "strerror", None) or str(e))
    cfg = results["config"]
    job = job or {}
    kind: RunKind = _PACK_KINDS.get(str(job.get("kind")), "pack")
    if run_id == "demo":
        kind = "demo"
    job_cfg = job.get("config")
    name = run_label("demo" if kind == "demo" else job.get("kind") or "sweep", job_cfg, cfg)
    complete = bool(results.get("complete", False))
    state = str(status.get("state")) if isinstance(status, dict) and status.get("state") else ""
    if not state or (state == "completed" and not complete):
        state = "complete" if complete else "partial"
    records = results.get("records") or []
    return RunInfo(
        id=run_id,
        kind=kind,
        name=name,
        created=str(job.get("created") or _mtime_iso(pack_dir / RESULTS)),
        model=_model_label(cfg.get("model")),
        levels=tuple(int(c) for c in cfg.get("levels", [])),
        levels_done=tuple(sorted({int(r["c_p"]) for r in records})),
        seeds=tuple(int(s) for s in cfg.get("seeds", [])),
        complete=complete,
        state=state,
        path=pack_dir,
    )


def list_runs(include_demo: bool = True) -> list[RunInfo]:
    """Every pack: the demo first (if shipped), then runs newest first; a pack that fails
    validation is listed as ``broken`` with its reason. Reads the small JSON files
    (results.json, training.json, the job's config.json and status.json) and the array headers."""
    out: list[RunInfo] = []
    if include_demo and exists(demo_dir(), RESULTS):
        out.append(_info("demo", demo_dir(), None, None))
    root = runs_dir()
    if not root.is_dir():
        return out
    found = []
    for run in root.iterdir():
        if run.name.startswith(".") or not run.is_dir():
            continue
        pack_dir = find_pack_dir(run)
        if pack_dir is None:
            continue
        job = _read_json(run / "config.json")
        job = job if isinstance(job, dict) else None
        if run.is_symlink():
            found.append(_broken(run.name, run, job, "the run folder is a symbolic link"))
            continue
        found.append(_info(run.name, pack_dir, job, _read_json(run / "status.json")))
    found.sort(key=lambda r: (r.created, r.id), reverse=True)
    return out + found


def get_run(ref: str, actor: Principal | None = None) -> RunInfo:
    """The run with id ``ref`` (``"demo"``, a job run id, a folder name under the runs
    directory) or at path ``ref``; ValueError listing known ids otherwise. A student ``actor``
    gets :class:`~core.jobs.access.AccessDenied` for a path or a run that is not theirs."""
    ref = str(ref).strip()
    check_open(ref, actor)
    if ref == "demo" and exists(demo_dir(), RESULTS):
        return _info("demo", demo_dir(), None, None)
    run = runs_dir() / ref
    if ref and "/" not in ref and not ref.startswith(".") and run.is_dir():
        pack_dir = find_pack_dir(run)  # one run: only its own small files are read
        if pack_dir is not None:
            job, status = _read_json(run / "config.json"), _read_json(run / "status.json")
            job = job if isinstance(job, dict) else None
            if run.is_symlink():
                return _broken(ref, run, job, "the run folder is a symbolic link")
            return _info(ref, pack_dir, job, status)
    runs = list_runs()
    path = Path(ref).expanduser()
    if path.is_dir():
        pack_dir = find_pack_dir(path)
        if pack_dir is not None:
            resolved = pack_dir.resolve()
            for r in runs:
                if r.path.resolve() == resolved:
                    return r
            job = _read_json(path / "config.json")
            return _info(path.name, pack_dir, job if isinstance(job, dict) else None, None)
    known = ", ".join(r.id for r in runs[:6]) or "none"
    raise ValueError(
        f"unknown run {ref!r}: no results pack with that id or path; known runs: {known} "
        "(see `implosion runs list`)"
    )


def open_run(
    ref: str,
    complete: bool = False,
    model: str | Path | None = None,
    actor: Principal | None = None,
) -> Pack:
    """Load run ``ref`` as a :class:`~core.results.pack.Pack`.

    complete: refuse a pack whose sweep has not finished (ValueError saying what to wait for);
    model: refuse a pack made with a different model (its concept names differ from that
    model's world), since its graph and generations would not match that model.
    """
    info = get_run(ref, actor)
    if info.broken:
        raise BrokenPack(info.reason, info.path)
    if complete and not info.complete:
        done = ", ".join(str(c) for c in info.levels_done) or "none"
        raise ValueError(
            f"run {info.id} is not complete (state {info.state}; levels done: {done} of "
            f"{', '.join(str(c) for c in info.levels)}); wait for it or drop --complete"
        )
    pack = load_pack(info.path)
    if model is not None:
        from core.models.ldm import MiniLDM

        names = MiniLDM.from_pretrained(Path(model)).world.names
        if names != pack.concepts:
            raise ValueError(
                f"run {info.id} was made with another model ({len(pack.concepts)} concepts, "
                f"model {info.model}); it does not match {model} ({len(names)} concepts): "
                "open it without --model or pick a run of that model"
            )
    return pack


def run_summary(
    ref: str,
    complete: bool = False,
    model: str | Path | None = None,
    actor: Principal | None = None,
) -> list[LevelSummary]:
    """Per level (ascending C_P): AD, accuracies, incoherence, alignment, attack success, means
    over the seeds saved so far (core.results.aggregate.level_summaries)."""
    return level_summaries(open_run(ref, complete, model, actor).records)


# ---------------------------------------------------------------- who may open which run
_OWNERS: dict[str, Any] = {}  # run id → its job's config.json (never changes once written)


def _job_config(run_id: str) -> Any:
    if run_id not in _OWNERS:
        job = _read_json(runs_dir() / run_id / "config.json")
        if job is None:
            return None  # not cached: the job may be writing it right now
        _OWNERS[run_id] = {"owner": job.get("owner")} if isinstance(job, dict) else {}
    return _OWNERS[run_id]


def visible_runs(runs: list[RunInfo], actor: Principal | None = None) -> list[RunInfo]:
    """The runs ``actor`` (None: the current one) may open: all for the local user and the
    teacher; for a student the demo, the runs the teacher pinned and their own (core.jobs.access).
    """
    actor = current_actor(actor)
    if actor.is_admin:
        return runs
    return [r for r in runs if may_open(actor, r.id, _job_config(r.id))]


def check_open(ref: str, actor: Principal | None = None) -> None:
    """Refuse a student any path and any run id that is not the demo, pinned or theirs
    (:class:`~core.jobs.access.AccessDenied`, one line naming what they can open)."""
    actor = current_actor(actor)
    if actor.is_admin:
        return
    if not ref or "/" in ref or "\\" in ref or ref.startswith((".", "~")):
        raise AccessDenied(
            f"run {ref!r}: students open runs by id (the demo, pinned runs, their own), not by path"
        )
    check(actor, "open", ref, None if ref == DEMO_ID else _job_config(ref))


__all__ = [
    "RunInfo",
    "RunKind",
    "check_open",
    "get_run",
    "list_runs",
    "open_run",
    "run_summary",
    "visible_runs",
]
