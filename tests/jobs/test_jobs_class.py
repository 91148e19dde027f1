"""A class server's jobs: each student's own runs, enforced in the core API; quotas that hold when
launches race; the class queue served round-robin by student.

Runs are the dummy counter held at a step until the test creates its ``hold`` file, so "still
running" and "queued" are events the test controls.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from core import jobs
from core.jobs.access import AccessDenied, Principal, Quota, QuotaExceeded, act_as
from core.jobs.fair import Entry, fair_order, queue_place
from core.results.runs import check_open, get_run, visible_runs
from core.results.runs import list_runs as list_packs
from tests.support.jobs import PATIENCE, state, wait_for

ADA = Principal("Ada", "student", quota=Quota(queued_per_student=3))
BEN = Principal("Ben", "student", quota=Quota(queued_per_student=3))
TEACHER = Principal("Ms T", "teacher")


def launch(actor: Principal, hold: Path, steps: int = 2, **extra) -> str:
    config = {"steps": steps, "hold": str(hold), "step_seconds": 0.0, **extra}
    return jobs.start_job("dummy", config, device="cpu", actor=actor, cancel_grace_s=1.0)


@pytest.fixture
def cleanup(start):
    """Reuse the job fixture's teardown (kills any worker left behind)."""
    return start


def test_students_see_and_control_only_their_own_runs(cleanup, tmp_path):
    gate = tmp_path / "go"
    a = launch(ADA, gate)
    b = launch(BEN, gate)
    wait_for(lambda: state(a) == "running", what="Ada's run running")
    assert jobs.read_run(a)["config"]["owner"] == {"name": "Ada", "role": "student"}
    assert [r["run_id"] for r in jobs.list_runs(actor=ADA)] == [a]
    assert [r["run_id"] for r in jobs.list_runs(actor=BEN)] == [b]
    assert {r["run_id"] for r in jobs.list_runs(actor=TEACHER)} == {a, b}
    # Another student's run id: a clear refusal for every read and every control.
    with pytest.raises(AccessDenied, match=f"run {a} is not yours"):
        jobs.read_run(a, actor=BEN)
    with pytest.raises(AccessDenied):
        jobs.read_log(a, actor=BEN)
    for call in (jobs.stop_job, jobs.pause_job, jobs.cancel_job, jobs.resume_job, jobs.remove_job):
        with pytest.raises(AccessDenied, match="it is not yours; you can .* only your own runs"):
            call(a, actor=BEN)
    assert state(a) == "running" and jobs.pending_request(Path(jobs.read_run(a)["run_dir"])) is None
    # A name is the identity: case and spaces do not matter.
    assert jobs.read_run(a, actor=Principal(" ada ", "student"))["run_id"] == a
    # The teacher cancels anyone's run; the owner cancels their own.
    jobs.cancel_job(b, actor=TEACHER)
    jobs.cancel_job(a, actor=ADA)
    assert jobs.wait_job(a, timeout=PATIENCE)["state"] == "cancelled"
    assert jobs.wait_job(b, timeout=PATIENCE)["state"] == "cancelled"
    with pytest.raises(AccessDenied):
        jobs.remove_job(b, actor=ADA)
    from core.jobs import store

    a_dir = store.run_path(a)
    wait_for(lambda: not store.worker_pids(a_dir), what="Ada's worker exited")
    jobs.remove_job(a, actor=ADA)
    assert [r["run_id"] for r in jobs.list_runs(actor=TEACHER)] == [b]


def test_a_class_server_thread_that_names_no_actor_is_refused(cleanup, tmp_path, monkeypatch):
    gate = tmp_path / "go"
    gate.touch()
    a = launch(ADA, gate)
    monkeypatch.setenv("IMPLOSION_CLASS_CODE", "owl-42")
    with pytest.raises(AccessDenied):
        jobs.cancel_job(a)  # no actor in a class server process: nobody, not the local user
    token = act_as(ADA)
    try:
        assert jobs.read_run(a)["run_id"] == a  # the session's actor is the default
    finally:
        from core.jobs import access

        access._ACTOR.reset(token)
    assert jobs.wait_job(a, actor=ADA, timeout=PATIENCE)["state"] == "completed"


def test_packs_open_by_id_only_when_demo_pinned_or_own(cleanup, tmp_path):
    from core.results.synthetic import write_synthetic_demo_pack

    gate = tmp_path / "go"
    gate.touch()
    a = launch(ADA, gate)
    jobs.wait_job(a, timeout=PATIENCE)
    run_dir = Path(jobs.read_run(a)["run_dir"])
    write_synthetic_demo_pack(run_dir / "pack", n_concepts=8, levels=(0, 2))
    assert get_run(a, actor=ADA).id == a
    with pytest.raises(AccessDenied, match="not yours: you can open the demo, runs the teacher"):
        get_run(a, actor=BEN)
    for path in (str(run_dir / "pack"), "../x", str(tmp_path), "~/runs"):
        with pytest.raises(AccessDenied, match="not by path"):
            get_run(path, actor=BEN)
    check_open("demo", BEN)
    assert a not in [r.id for r in visible_runs(list_packs(), BEN)]
    pinned = Principal("Ben", "student", pinned=frozenset({a}))
    assert get_run(a, actor=pinned).id == a
    assert a in [r.id for r in visible_runs(list_packs(), pinned)]
    # A teacher opens anything, as the local user does.
    assert get_run(a, actor=TEACHER).id == a and get_run(a).id == a


def test_launch_caps_and_disk_budget(cleanup, tmp_path):
    small = Principal("Cy", "student", quota=Quota(max_steps=10, disk_budget_mb=1))
    with pytest.raises(QuotaExceeded, match="steps: 50 is over the class limit of 10"):
        launch(small, tmp_path / "go", steps=50)
    with pytest.raises(QuotaExceeded, match="students can start"):
        jobs.start_job("core.jobs._testing:count", {}, device="cpu", actor=small)
    with pytest.raises(
        QuotaExceeded, match="steps: a student's sweep run must give its steps explicitly"
    ):
        jobs.start_job("sweep", {"preset": "cpu-full"}, device="cpu", actor=small)
    with pytest.raises(QuotaExceeded, match="set by the teacher"):
        jobs.start_job(
            "sweep",
            {"levels": [0], "seeds": [0], "finetune": {"steps": 2}, "address": "ray://x:1"},
            device="cpu",
            actor=small,
        )
    from core.jobs import store

    (store.jobs_root(create=True) / "big.bin").write_bytes(b"\0" * (2 << 20))
    with pytest.raises(QuotaExceeded, match="disk budget: the class's runs take 2 MiB of the 1"):
        launch(small, tmp_path / "go", steps=5)


@pytest.mark.parametrize("how", ["threads"])
def test_quota_holds_when_two_launches_race(cleanup, tmp_path, how):
    one = Principal("Dee", "student", quota=Quota(queued_per_student=1))
    barrier = threading.Barrier(2)
    results: list[object] = []

    def go() -> None:
        barrier.wait()
        try:
            results.append(launch(one, tmp_path / "go"))
        except QuotaExceeded as e:
            results.append(e)

    threads = [threading.Thread(target=go) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(PATIENCE)
    started = [r for r in results if isinstance(r, str)]
    refused = [r for r in results if isinstance(r, QuotaExceeded)]
    assert len(started) == 1 and len(refused) == 1, results
    assert "the class limit is 1" in str(refused[0])
    jobs.cancel_job(started[0], actor=one)


def test_fair_order_is_round_robin_by_owner():
    a, b, c = ("student", "a"), ("student", "b"), ("student", "c")

    def e(rid, owner, queued, state="queued", started=""):
        return Entry(rid, owner, "cpu", state, queued, started)

    entries = [
        e("a0", a, "t0", "running", started="t1"),
        e("a1", a, "t2"),
        e("a2", a, "t3"),
        e("b1", b, "t4"),
        e("b2", b, "t5"),
        e("c1", c, "t6"),
        e("x", None, "t7"),
        e("g", a, "t0", "queued"),  # another device's queue is not this one's
    ]
    entries[-1] = Entry("g", a, "cuda:0", "queued", "t0", "")
    order = [x.run_id for x in fair_order(entries, "cpu")]
    # Owners never served go first (oldest request first), then the one served longest ago.
    assert order == ["b1", "c1", "x", "a1", "b2", "a2"]
    # One owner: plain FIFO.
    solo = [e("r2", None, "t2"), e("r1", None, "t1"), e("r3", None, "t3")]
    assert [x.run_id for x in fair_order(solo, "cpu")] == ["r1", "r2", "r3"]


def test_the_class_queue_serves_students_round_robin(cleanup, tmp_path):
    gate = tmp_path / "go"
    a1 = launch(ADA, gate)
    wait_for(lambda: state(a1) == "running", what="Ada's first run running")
    a2, a3 = launch(ADA, gate), launch(ADA, gate)
    b1 = launch(BEN, gate)
    for run_id in (a2, a3, b1):
        wait_for(lambda r=run_id: jobs.read_run(r)["status"].get("pid"), what="worker up")
    assert queue_place(b1) == (1, 3) and queue_place(a2) == (2, 3) and queue_place(a3) == (3, 3)
    with pytest.raises(QuotaExceeded, match="you already have 3 run"):
        launch(ADA, gate)
    gate.touch()
    for run_id in (a1, a2, a3, b1):
        assert jobs.wait_job(run_id, timeout=PATIENCE)["state"] == "completed"
    started = {r: jobs.read_run(r)["status"]["started"] for r in (a1, a2, a3, b1)}
    assert sorted(started, key=started.__getitem__) == [a1, b1, a2, a3]
