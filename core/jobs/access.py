"""Who may see and control a run: the acting principal, run owners, and a student's quota.

Every run records its owner in ``config.json`` at launch (``"owner": {"name", "role"}``; absent
or null for the local user of a single-user server). Every job and run call takes an ``actor``
(:class:`Principal`) and checks it here:

* ``local`` (the default, a single-user server or the CLI) and ``teacher`` see and control every
  run;
* a ``student`` sees the demo, the packs the teacher pinned (``Principal.pinned``) and their own
  runs, and controls (stop, pause, resume, cancel, remove) only their own. Anything else is
  :class:`AccessDenied`, a ``ValueError`` whose one line says what the student can open instead.

A student's launches are bounded by :class:`Quota` (checked by ``core.jobs.start_job`` under the
class launch lock, so two launches that race cannot both pass): queued or running runs per
student, steps, levels and seeds per run, job kinds, and the disk budget of the runs folder.

The principal is built on the server from the join form (``core.classroom``), never from a
request parameter, so the pins and quota it carries are the server's, not the client's. A call
that names no actor uses :func:`current_actor`: the session's principal on a class server
(:func:`act_as`), the local user elsewhere, and nobody in a class server thread that set none.
"""

from __future__ import annotations

import os
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Role = Literal["local", "student", "teacher"]
ROLES: tuple[str, ...] = ("local", "student", "teacher")
Action = Literal["open", "stop", "pause", "resume", "cancel", "remove"]
DEMO_ID = "demo"
# Job config keys a student may not set: they name server folders or another compute cluster.
STUDENT_FORBIDDEN_KEYS = ("out", "executor", "address", "workers")


class AccessDenied(ValueError):
    """The actor may not see or control this run (one line, printed as is)."""


class QuotaExceeded(ValueError):
    """A student's launch is over the class quota (one line naming the limit and the way out)."""


@dataclass(frozen=True)
class Quota:
    """Limits on one student's runs (a class server's defaults; the teacher has none).

    queued_per_student: runs a student may have queued, running or paused at once (only one of
    them runs at a time); max_steps / max_levels / max_seeds: per run (fine-tune steps, C_P
    levels, seeds); disk_budget_mb: the whole runs folder, in MiB (launches are refused above it);
    kinds: job kinds a student may start.
    """

    queued_per_student: int = 2
    max_steps: int = 200
    max_levels: int = 3
    max_seeds: int = 2
    disk_budget_mb: int = 4096
    kinds: tuple[str, ...] = ("finetune", "sweep", "dummy")

    def __post_init__(self) -> None:
        for name in ("queued_per_student", "max_steps", "max_levels", "max_seeds"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"quota {name}={value!r}: use a whole number ≥ 1")
        if not isinstance(self.disk_budget_mb, int) or self.disk_budget_mb < 1:
            raise ValueError(
                f"quota disk_budget_mb={self.disk_budget_mb!r}: use a whole number of MiB ≥ 1"
            )


@dataclass(frozen=True)
class Principal:
    """Who acts: ``name`` (None for the local user), ``role``, the pack ids pinned for the class
    (what a student may open besides the demo and their own runs) and a student's quota."""

    name: str | None = None
    role: Role = "local"
    pinned: frozenset[str] = field(default_factory=frozenset)
    quota: Quota | None = None

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"role {self.role!r}: use one of {', '.join(ROLES)}")
        if self.role != "local" and not self.name:
            raise ValueError(f"a {self.role} needs a name")

    @property
    def is_admin(self) -> bool:
        """The local user and the teacher see and control every run."""
        return self.role in ("local", "teacher")

    def owner_record(self) -> dict[str, str] | None:
        """What a run launched by this principal records as its owner (None: the local user)."""
        if self.role == "local":
            return None
        return {"name": str(self.name), "role": self.role}


LOCAL = Principal()
# Who a class server's request thread acts for when a call names no actor but the server has a
# class code: nobody (refused everything but the demo), never the all-powerful local user.
NOBODY = Principal(name="(not joined)", role="student")
CLASS_CODE_ENV = "IMPLOSION_CLASS_CODE"
_ACTOR: ContextVar[Principal | None] = ContextVar("implosion_actor", default=None)


def act_as(actor: Principal) -> Token[Principal | None]:
    """Make ``actor`` the default of every job and run call in this thread's context (a class
    server's page sets it for the session before the page runs); the token undoes it."""
    return _ACTOR.set(actor)


def current_actor(actor: Principal | None = None) -> Principal:
    """``actor`` if given; else the one set by :func:`act_as`; else the local user, or
    :data:`NOBODY` in a class server process (``IMPLOSION_CLASS_CODE`` set): fail closed."""
    if actor is not None:
        return actor
    found = _ACTOR.get()
    if found is not None:
        return found
    return NOBODY if os.environ.get(CLASS_CODE_ENV) else LOCAL


def owner_key(name: str) -> str:
    """How owner names compare: case-insensitive, inner spaces collapsed."""
    return " ".join(name.split()).casefold()


def run_owner(config: Any) -> tuple[str, str] | None:
    """(role, name key) of a run's owner from its ``config.json`` dict; None for the local user
    or an unreadable record (such runs belong to nobody in the class: only admins see them)."""
    owner = config.get("owner") if isinstance(config, dict) else None
    if not isinstance(owner, dict):
        return None
    name, role = owner.get("name"), owner.get("role")
    if not isinstance(name, str) or role not in ("student", "teacher") or not name.strip():
        return None
    return str(role), owner_key(name)


def owns(actor: Principal, config: Any) -> bool:
    """Whether ``actor`` launched the run with this ``config.json``."""
    if actor.role == "local" or not actor.name:
        return False
    return run_owner(config) == (actor.role, owner_key(actor.name))


def may_open(actor: Principal, run_id: str, config: Any) -> bool:
    """Whether ``actor`` may see run ``run_id`` (config: its job ``config.json`` dict or None)."""
    if actor.is_admin or run_id == DEMO_ID or run_id in actor.pinned:
        return True
    return owns(actor, config)


def check(actor: Principal, action: Action, run_id: str, config: Any) -> None:
    """Raise :class:`AccessDenied` unless ``actor`` may ``action`` run ``run_id``."""
    if actor.is_admin:
        return
    if action == "open":
        if not may_open(actor, run_id, config):
            raise AccessDenied(
                f"run {run_id} is not yours: you can open the demo, runs the teacher pinned "
                "and your own runs"
            )
        return
    if not owns(actor, config):
        raise AccessDenied(
            f"cannot {action} run {run_id}: it is not yours; you can {action} only your own runs "
            "(ask the teacher)"
        )


def check_launch(actor: Principal, kind: str, config: dict[str, Any]) -> None:
    """Refuse a student's launch whose kind or size is over the quota (before any lock or work).

    Sizes are read from the job config (core/sweep/job.py): ``finetune`` and ``sweep`` {levels,
    seeds, finetune.steps} (all three given explicitly), ``dummy`` {steps}.
    """
    if actor.role != "student":
        return
    quota = actor.quota or Quota()
    if kind not in quota.kinds:
        raise QuotaExceeded(
            f"job kind {kind!r}: students can start {', '.join(quota.kinds)}; ask the teacher"
        )
    bad = [k for k in STUDENT_FORBIDDEN_KEYS if k in config]
    if bad:
        raise QuotaExceeded(f"job config {', '.join(bad)}: set by the teacher, not by students")
    steps, levels, seeds = run_size(kind, config)
    for what, value, cap, fix in (
        ("steps", steps, quota.max_steps, "fewer fine-tune steps"),
        ("levels", levels, quota.max_levels, "fewer C_P levels"),
        ("seeds", seeds, quota.max_seeds, "fewer seeds"),
    ):
        if value is None:
            raise QuotaExceeded(
                f"{what}: a student's {kind} run must give its {what} explicitly (at most {cap})"
            )
        if value > cap:
            raise QuotaExceeded(
                f"{what}: {value} is over the class limit of {cap} per student run; choose {fix}"
            )


def run_size(kind: str, config: dict[str, Any]) -> tuple[int | None, int | None, int | None]:
    """(fine-tune steps, number of levels, number of seeds) a job config asks for; None where the
    config leaves it to a preset."""

    def count(v: Any) -> int | None:
        return len(v) if isinstance(v, list | tuple) else None

    def steps_of(d: Any) -> int | None:
        ft = d.get("finetune") if isinstance(d, dict) else None
        s = ft.get("steps") if isinstance(ft, dict) else None
        return int(s) if isinstance(s, int) and not isinstance(s, bool) else None

    if kind in ("finetune", "sweep"):
        found = config.get("sweep")  # older finetune runs nest their settings under "sweep"
        sweep: dict[str, Any] = found if isinstance(found, dict) else config
        return steps_of(sweep), count(sweep.get("levels")), count(sweep.get("seeds"))
    if kind == "dummy":
        steps = config.get("steps", 20)
        return (int(steps) if isinstance(steps, int) else None), 1, 1
    return None, None, None


def folder_mb(root: Path) -> float:
    """Bytes under ``root`` in MiB (files only, symlinks not followed)."""
    total = 0
    stack = [str(root)]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        elif entry.is_file(follow_symlinks=False):
                            total += entry.stat(follow_symlinks=False).st_size
                    except OSError:
                        continue
        except OSError:
            continue
    return total / 2**20
