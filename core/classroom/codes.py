"""Class and teacher codes: where they come from, how they are compared, and where a server may bind.

A class server is the explorer started with a class code (``implosion app --class-code CODE`` or
``IMPLOSION_CLASS_CODE``); an optional teacher code (``--teacher-code`` / ``IMPLOSION_TEACHER_CODE``)
gives the teacher role. Without a class code the explorer is a single-user app and may only bind a
loopback address: anything else would let every machine that reaches the port launch, stop and
delete runs.

Codes are compared in constant time (:func:`hmac.compare_digest` on their UTF-8 bytes), after
trimming the spaces a student may type around them. A join code is a classroom gate, not an
internet sign-in (docs/classroom.md says what it does not protect against).
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from dataclasses import dataclass, field

from core.jobs.access import Quota, Role

CLASS_CODE_ENV = "IMPLOSION_CLASS_CODE"
TEACHER_CODE_ENV = "IMPLOSION_TEACHER_CODE"
QUOTA_ENV = "IMPLOSION_CLASS_QUOTA"  # e.g. "queued_per_student=2,max_steps=200,disk_budget_mb=4096"
MIN_CODE_LEN = 4
LOOPBACK_NAMES = ("localhost",)


@dataclass(frozen=True)
class ClassConfig:
    """A class server's codes and its students' quota (validated once, here)."""

    class_code: str
    teacher_code: str | None = None
    quota: Quota = field(default_factory=Quota)

    def __post_init__(self) -> None:
        for name, code in (("class code", self.class_code), ("teacher code", self.teacher_code)):
            if code is None:
                continue
            if len(code.strip()) < MIN_CODE_LEN or code != code.strip():
                raise ValueError(
                    f"{name}: use at least {MIN_CODE_LEN} characters without spaces around them "
                    "(6 or more is better), e.g. a word and a number"
                )
        if self.teacher_code is not None and self.teacher_code == self.class_code:
            raise ValueError(
                "teacher code: must differ from the class code (students would be teachers)"
            )

    def role_for(self, code: str) -> Role | None:
        """``"teacher"`` / ``"student"`` for a matching code, else None (constant-time compares,
        both always made so the time does not tell which code was close)."""
        given = code.strip().encode()
        is_student = hmac.compare_digest(given, self.class_code.encode())
        is_teacher = self.teacher_code is not None and hmac.compare_digest(
            given, self.teacher_code.encode()
        )
        if is_teacher:
            return "teacher"
        return "student" if is_student else None


def parse_quota(text: str) -> Quota:
    """A :class:`Quota` from ``"key=value,key=value"`` (ValueError naming the key and the fix)."""
    allowed = [f for f in Quota.__dataclass_fields__ if f != "kinds"]
    values: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in allowed:
            raise ValueError(
                f"{QUOTA_ENV} {part!r}: use key=number with key one of {', '.join(allowed)}"
            )
        try:
            values[key] = int(value)
        except ValueError:
            raise ValueError(f"{QUOTA_ENV} {key}={value!r}: use a whole number") from None
    return Quota(**values)  # type: ignore[arg-type]


def class_config(env: dict[str, str] | None = None) -> ClassConfig | None:
    """The class server's configuration from the environment, or None for a single-user app."""
    env = dict(os.environ if env is None else env)
    code = env.get(CLASS_CODE_ENV) or None
    if code is None:
        return None
    teacher = env.get(TEACHER_CODE_ENV) or None
    quota = parse_quota(env.get(QUOTA_ENV, ""))
    return ClassConfig(class_code=code, teacher_code=teacher, quota=quota)


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` serves only this machine (127.0.0.0/8, ::1, localhost)."""
    host = host.strip().strip("[]")
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, class_code: str | None) -> None:
    """Refuse to serve anything but loopback without a class code (one line naming the fix)."""
    if class_code is None and not is_loopback(host):
        raise ValueError(
            f"--host {host} would let anyone who reaches this machine launch, stop and delete "
            f"runs: start a class with `implosion app --host {host} --class-code CODE` "
            f"(or {CLASS_CODE_ENV}=CODE), or keep the default --host 127.0.0.1"
        )
