"""The class-wide queue: waiting runs are served round-robin by owner, one running run each.

A queued worker may take its device only when no queued run on that device is ahead of it in the
fair order and, for a student, no other run of theirs is running or paused (on any device). The fair order of
the queued runs on a device sorts by

    (rank of the run among its owner's queued runs, when the owner last had a run start,
     queued_at, run_id)

so each owner's first waiting run comes before anyone's second, and among first runs the owner
served longest ago (or never) goes first: when a run finishes, the next queued run of the next
owner starts. With a single owner (a one-user server) this is plain FIFO by ``queued_at``. The
local user (runs without an owner) counts as one owner.

Everything is recomputed from the run folders' small JSON files, so every waiting worker, the
Jobs page and the CLI agree on the order without a queue process.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.jobs import store
from core.jobs.access import run_owner

OwnerKey = tuple[str, str] | None


@dataclass(frozen=True)
class Entry:
    """One run as the scheduler sees it."""

    run_id: str
    owner: OwnerKey
    device: str
    state: str
    queued_at: str
    started: str


def _entries() -> list[Entry]:
    out = []
    for run_dir in store._run_dirs():
        config = store.read_json(run_dir / store.CONFIG) or {}
        status = store.read_status(run_dir)
        state = str(status.get("state"))
        if state in store.ACTIVE_STATES:
            state = str(store.refresh_status(run_dir).get("state"))
        out.append(
            Entry(
                run_id=run_dir.name,
                owner=run_owner(config),
                device=str(config.get("device") or "cpu"),
                state=state,
                queued_at=str(status.get("queued_at") or ""),
                started=str(status.get("started") or ""),
            )
        )
    return out


def fair_order(entries: list[Entry], device: str) -> list[Entry]:
    """The queued runs on ``device`` in the order they will start (see the module docstring)."""
    last_start: dict[OwnerKey, str] = {}
    for e in entries:
        if e.started and e.started > last_start.get(e.owner, ""):
            last_start[e.owner] = e.started
    queued = sorted(
        (e for e in entries if e.state == "queued" and e.device == device),
        key=lambda e: (e.queued_at, e.run_id),
    )
    rank: dict[OwnerKey, int] = {}
    keyed = []
    for e in queued:
        r = rank.get(e.owner, 0)
        rank[e.owner] = r + 1
        keyed.append(((r, last_start.get(e.owner, ""), e.queued_at, e.run_id), e))
    return [e for _, e in sorted(keyed, key=lambda t: t[0])]


def may_start(run_dir: Path, device: str) -> bool:
    """Whether the queued run in ``run_dir`` is first in the fair order of ``device`` and its
    owner has no other run running or paused."""
    me = Path(run_dir).name
    entries = _entries()
    mine = next((e for e in entries if e.run_id == me), None)
    if mine is None:
        return True
    # One running run per student; the local user and the teacher may use several devices.
    busy: dict[OwnerKey, str] = {
        e.owner: e.run_id
        for e in entries
        if e.state in ("running", "paused") and e.owner is not None and e.owner[0] == "student"
    }
    if busy.get(mine.owner, me) != me:
        return False
    # An owner whose other run holds another device waits; the next owner is not held up by it.
    order = [e for e in fair_order(entries, device) if busy.get(e.owner, e.run_id) == e.run_id]
    return not order or order[0].run_id == me


def queue_place(run_id: str) -> tuple[int, int] | None:
    """(1-based place, length) of a queued run in its device's class queue; None if not queued."""
    entries = _entries()
    mine = next((e for e in entries if e.run_id == run_id), None)
    if mine is None or mine.state != "queued":
        return None
    order = [e.run_id for e in fair_order(entries, mine.device)]
    return order.index(run_id) + 1, len(order)
