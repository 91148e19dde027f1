"""The class state: what the teacher shares with the room, one small JSON file.

``runs_dir()/.class/state.json`` holds the pack ids pinned for the class (students may open them),
and the page, run, lesson step and C_P the teacher is showing (students who "follow" see the same). Only the
teacher writes it (:func:`write_state` refuses anyone else); pages read it on each run. The file is
untrusted input: it is parsed once by :meth:`ClassState.from_dict`, and a missing or broken file
reads as the empty state.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from core.io import atomic_write_json, runs_dir
from core.jobs.access import Principal

MAX_PINS = 50
# The pages a teacher's view can take a following student to (their URL paths).
FOLLOWED_PAGES = ("lesson", "story", "generations")


@dataclass(frozen=True)
class ClassState:
    """pinned: pack ids students may open; lesson_step, c_p, pack, page: what the teacher shows
    (c_p None: not driving; page: one of :data:`FOLLOWED_PAGES` or None); revision: bumped on
    every write so followers notice a change."""

    pinned: tuple[str, ...] = ()
    lesson_step: int | None = None
    c_p: int | None = None
    pack: str | None = None
    page: str | None = None
    revision: int = 0
    by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "pinned": list(self.pinned),
            "lesson_step": self.lesson_step,
            "c_p": self.c_p,
            "pack": self.pack,
            "page": self.page,
            "revision": self.revision,
            "by": self.by,
        }

    @staticmethod
    def from_dict(d: Any) -> ClassState:
        """Parse the untrusted file: wrong types read as absent, never raise."""
        if not isinstance(d, dict):
            return ClassState()

        def opt_int(v: Any) -> int | None:
            return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None

        pins = d.get("pinned")
        pinned = tuple(
            p for p in (pins if isinstance(pins, list) else []) if isinstance(p, str) and p
        )[:MAX_PINS]
        by, pack = d.get("by"), d.get("pack")
        return ClassState(
            pinned=pinned,
            lesson_step=opt_int(d.get("lesson_step")),
            c_p=opt_int(d.get("c_p")),
            pack=pack if isinstance(pack, str) and pack else None,
            page=d.get("page") if d.get("page") in FOLLOWED_PAGES else None,
            revision=opt_int(d.get("revision")) or 0,
            by=by if isinstance(by, str) else None,
        )


def state_path() -> Path:
    """``runs_dir()/.class/state.json``."""
    return runs_dir() / ".class" / "state.json"


def read_state() -> ClassState:
    """The current class state (empty when none was written or the file is broken)."""
    path = state_path()
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as f:
            return ClassState.from_dict(json.loads(f.read(1 << 20)))
    except (OSError, ValueError):
        return ClassState()


def write_state(actor: Principal, **changes: Any) -> ClassState:
    """Change the class state (``pinned``, ``lesson_step``, ``c_p``, ``pack``, ``page``); only the
    teacher (or the local user) may. Returns the new state."""
    if actor.role == "student":
        raise ValueError("only the teacher can change what the class is shown")
    unknown = set(changes) - {"pinned", "lesson_step", "c_p", "pack", "page"}
    if unknown:
        raise ValueError(f"class state: unknown field(s) {', '.join(sorted(unknown))}")
    if "pinned" in changes:
        changes["pinned"] = tuple(dict.fromkeys(str(p) for p in changes["pinned"]))[:MAX_PINS]
    for key in ("lesson_step", "c_p"):
        v = changes.get(key)
        if v is not None and (not isinstance(v, int) or v < 0):
            raise ValueError(f"class state {key}={v!r}: use a whole number ≥ 0 or None")
    page = changes.get("page")
    if page is not None and page not in FOLLOWED_PAGES:
        raise ValueError(
            f"class state page={page!r}: use one of {', '.join(FOLLOWED_PAGES)} or None"
        )
    current = read_state()
    new = replace(current, **changes, revision=current.revision + 1, by=actor.name)
    path = state_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, new.to_dict())
    return new


def pin(actor: Principal, run_id: str, on: bool = True) -> ClassState:
    """Pin (or unpin) a pack for the class."""
    pins = [p for p in read_state().pinned if p != run_id]
    if on:
        pins.append(run_id)
    return write_state(actor, pinned=pins)
