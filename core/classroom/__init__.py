"""A class server: join codes, who joined, the teacher's shared class state.

``implosion app --class-code CODE [--teacher-code CODE2]`` serves the explorer to a room. Every
page first shows a join form (class code and name); :class:`ClassConfig` compares codes in
constant time, :class:`AttemptLimiter` slows guessing down, :class:`Member` turns a joined name and
role into the :class:`core.jobs.access.Principal` that every job and run call checks (a student
sees the demo, pinned packs and their own runs; the teacher sees and controls all). The teacher's
pins, lesson step and C_P live in the class state file (:mod:`core.classroom.state`). The fair
queue and the quotas live with the jobs (:mod:`core.jobs.fair`, :mod:`core.jobs.access`).
"""

from core.classroom.codes import (
    CLASS_CODE_ENV,
    QUOTA_ENV,
    TEACHER_CODE_ENV,
    ClassConfig,
    check_bind,
    class_config,
    is_loopback,
    parse_quota,
)
from core.classroom.identity import Member, clean_name
from core.classroom.limiter import AttemptLimiter
from core.classroom.state import ClassState, pin, read_state, write_state

__all__ = [
    "CLASS_CODE_ENV",
    "QUOTA_ENV",
    "TEACHER_CODE_ENV",
    "AttemptLimiter",
    "ClassConfig",
    "ClassState",
    "Member",
    "check_bind",
    "class_config",
    "clean_name",
    "is_loopback",
    "parse_quota",
    "pin",
    "read_state",
    "write_state",
]
