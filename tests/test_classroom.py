"""Class server building blocks: codes, the bind check, guessing backoff, names, class state."""

from __future__ import annotations

import subprocess
import sys

import pytest

from core.classroom import (
    AttemptLimiter,
    ClassConfig,
    check_bind,
    class_config,
    clean_name,
    is_loopback,
    parse_quota,
    pin,
    read_state,
    write_state,
)
from core.classroom.state import state_path
from core.jobs.access import LOCAL, Principal, Quota


def test_codes_give_roles_and_refuse_weak_or_equal_codes():
    cfg = ClassConfig("owl-42", "hawk-99")
    assert cfg.role_for("owl-42") == "student"
    assert cfg.role_for("  owl-42 ") == "student"  # spaces typed around it
    assert cfg.role_for("hawk-99") == "teacher"
    assert cfg.role_for("owl-4") is None and cfg.role_for("") is None
    assert ClassConfig("owl-42").role_for("hawk-99") is None
    with pytest.raises(ValueError, match="class code: use at least 4 characters"):
        ClassConfig("ab")
    with pytest.raises(ValueError, match="teacher code: must differ"):
        ClassConfig("owl-42", "owl-42")


def test_config_from_environment_and_quota_text():
    assert class_config({}) is None
    cfg = class_config(
        {
            "IMPLOSION_CLASS_CODE": "owl-42",
            "IMPLOSION_TEACHER_CODE": "hawk-99",
            "IMPLOSION_CLASS_QUOTA": "max_steps=100, queued_per_student=1",
        }
    )
    assert cfg is not None and cfg.teacher_code == "hawk-99"
    assert cfg.quota == Quota(max_steps=100, queued_per_student=1)
    with pytest.raises(ValueError, match="use key=number with key one of queued_per_student"):
        parse_quota("steps=3")
    with pytest.raises(ValueError, match="max_seeds=0: use a whole number ≥ 1"):
        parse_quota("max_seeds=0")


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.1.1", "localhost", "::1", "[::1]"])
def test_loopback_needs_no_code(host):
    assert is_loopback(host)
    check_bind(host, None)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "lab.example.org"])
def test_any_other_address_needs_a_class_code(host):
    assert not is_loopback(host)
    with pytest.raises(
        ValueError, match="start a class with `implosion app --host .* --class-code"
    ):
        check_bind(host, None)
    check_bind(host, "owl-42")


def test_cli_refuses_0000_without_a_code_in_one_line(monkeypatch):
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("IMPLOSION_CLASS")}
    env.pop("IMPLOSION_TEACHER_CODE", None)
    cmd = [sys.executable, "-m", "core.cli", "app", "--host", "0.0.0.0", "--dry-run"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "--class-code CODE" in lines[0] and "127.0.0.1" in lines[0]
    ok = subprocess.run(
        [*cmd, "--class-code", "owl-42"], capture_output=True, text=True, env=env, timeout=120
    )
    assert ok.returncode == 0 and "--server.address 0.0.0.0" in ok.stdout
    assert "owl-42" not in ok.stdout  # the code travels in the environment, not on argv


def test_cli_passes_codes_to_the_server_environment():
    import argparse

    from core.commands.app import class_env

    args = argparse.Namespace(host="0.0.0.0", class_code=None, teacher_code="hawk-99")
    env = class_env(args, {"IMPLOSION_CLASS_CODE": "owl-42", "PATH": "/bin"})
    assert env["IMPLOSION_CLASS_CODE"] == "owl-42" and env["IMPLOSION_TEACHER_CODE"] == "hawk-99"
    with pytest.raises(ValueError, match="--teacher-code: needs a --class-code"):
        class_env(argparse.Namespace(host="127.0.0.1", class_code=None, teacher_code="x1234"), {})


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_wrong_codes_back_off_per_client_on_an_injected_clock():
    clock = Clock()
    lim = AttemptLimiter(free=2, base_s=1.0, cap_s=8.0, clock=clock)
    me, other = ["session:a", "ip:10.0.0.5"], ["session:b", "ip:10.0.0.6"]
    waits = []
    for _ in range(7):
        assert lim.wait_s(me) == 0.0  # the client waited as long as it was told
        lim.failed(me)
        waits.append(lim.wait_s(me))
        clock.t += waits[-1]
    assert waits == [0.0, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]  # two free typos, then doubling, capped
    lim.failed(me)
    clock.t += 3.0
    assert lim.wait_s(me) == pytest.approx(5.0)
    # A new session from the same address is still slowed (the IP key); another client is not.
    assert lim.wait_s(["session:c", "ip:10.0.0.5"]) == pytest.approx(5.0)
    assert lim.wait_s(other) == 0.0
    lim.succeeded(me)
    assert lim.wait_s(me) == 0.0


def test_many_clients_guessing_slow_everyone_down():
    clock = Clock()
    lim = AttemptLimiter(global_free=5, global_gap_s=2.0, window_s=60.0, clock=clock)
    for i in range(6):  # six fresh sessions, one wrong try each
        lim.failed([f"session:{i}"])
    assert lim.wait_s(["session:new"]) == pytest.approx(2.0)
    clock.t += 2.0
    assert lim.wait_s(["session:new"]) == 0.0
    clock.t += 61.0  # the window passes
    lim.failed(["session:x"])
    assert lim.wait_s(["session:new"]) == 0.0


def test_names():
    assert clean_name("  Ada   Lovelace ") == "Ada Lovelace"
    assert clean_name("Zoë O'Neil-Smith") == "Zoë O'Neil-Smith"
    for bad in ("", "   ", "<script>", "a" * 41, "Ada\x00"):
        with pytest.raises(ValueError, match="Your name"):
            clean_name(bad)


def test_class_state_is_written_only_by_the_teacher_and_read_safely():
    teacher = Principal("Ms T", "teacher")
    student = Principal("Ada", "student")
    assert read_state().pinned == () and read_state().c_p is None
    with pytest.raises(ValueError, match="only the teacher"):
        write_state(student, c_p=8)
    pin(teacher, "run-1")
    s = write_state(teacher, c_p=8, lesson_step=2, pack="run-1")
    assert (s.pinned, s.c_p, s.lesson_step, s.pack, s.by) == (("run-1",), 8, 2, "run-1", "Ms T")
    assert read_state() == s and s.revision == 2
    assert pin(LOCAL, "run-1", on=False).pinned == ()
    with pytest.raises(ValueError, match="c_p=-1: use a whole number"):
        write_state(teacher, c_p=-1)
    state_path().write_text('{"pinned": "run-1", "c_p": "8", "revision": -3}')
    assert read_state().pinned == () and read_state().c_p is None
    state_path().write_text("{broken")
    assert read_state().pinned == ()
