"""Who joined: a member's name and role, and the principal every job and run call receives.

A member is identified by the name typed into the join form (case and inner spaces do not
matter), so a student who reloads the page and joins again gets their runs back; two students who
type the same name share their runs (the teacher sees names on the Jobs page).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from core.classroom.codes import ClassConfig
from core.classroom.state import read_state
from core.jobs.access import Principal, Role

MAX_NAME = 40
_NAME_RE = re.compile(r"^[\w][\w .'-]*$")


def clean_name(name: str) -> str:
    """A display name from the join form: NFC, inner spaces collapsed; ValueError naming the fix."""
    text = " ".join(unicodedata.normalize("NFC", str(name)).split())
    if not text:
        raise ValueError("Your name: type the name the teacher will see, e.g. Ada L.")
    if len(text) > MAX_NAME:
        raise ValueError(f"Your name: at most {MAX_NAME} characters")
    if not _NAME_RE.match(text):
        raise ValueError("Your name: use letters, digits, spaces, dots, hyphens or apostrophes")
    return text


@dataclass(frozen=True)
class Member:
    """A joined class member."""

    name: str
    role: Role

    def principal(self, config: ClassConfig) -> Principal:
        """The principal for this member now: the class's current pins and the student quota."""
        pinned = frozenset(read_state().pinned)
        quota = config.quota if self.role == "student" else None
        return Principal(name=self.name, role=self.role, pinned=pinned, quota=quota)
