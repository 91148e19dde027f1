"""Progress from the work itself: the bar follows the steps, time left follows the measured rate
(driven by a fake clock, never by sleeping) and is never 0 before the end."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from core.jobs.context import RunContext
from core.jobs.progress import (
    MIN_ADVANCES,
    ProgressModel,
    format_left,
    sweep_work,
    time_left,
)
from core.sweep.mini.estimate import Estimate, SweepProgress


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_slowdown_mid_run_moves_the_eta_and_it_never_hits_zero_early():
    clock = Clock()
    m = ProgressModel(prior_s=60.0, clock=clock)  # estimate: 60 steps at 1 s
    first = m.update(0, 60)
    assert first.eta_seconds is None and first.estimated  # "estimating…" before any step
    etas = {}
    for step in range(1, 61):
        clock.t += 1.0 if step <= 20 else 5.0  # the machine gets loaded after step 20
        r = m.update(step, 60)
        etas[step] = r.eta_seconds
        assert r.fraction == pytest.approx(step / 60)  # the bar moves with every step
        if MIN_ADVANCES <= step < 60:
            assert r.eta_seconds is not None and r.eta_seconds >= 1.0
    assert etas[20] == pytest.approx(40.0, rel=0.05)  # on estimate: 40 steps × 1 s
    # Within the window (15 % of the work, 9 steps) after the slowdown the ETA is the new rate.
    assert etas[35] == pytest.approx(25 * 5.0, rel=0.02)
    assert etas[59] == pytest.approx(5.0, rel=0.02)
    assert etas[60] == 0.0
    assert all(etas[s] > etas[20] for s in range(30, 40))  # it followed the slowdown up


def test_the_estimate_is_flagged_until_the_run_has_evidence():
    clock = Clock()
    m = ProgressModel(prior_s=100.0, clock=clock)
    m.update(0, 100)
    for step in (1, 2):
        clock.t += 3.0  # 3× slower than estimated
        r = m.update(step, 100)
    assert r.estimated and 0 < r.weight < 1
    assert 98.0 < r.eta_seconds < 3 * 98.0  # between the estimate and the measured rate
    for step in range(3, 12):
        clock.t += 3.0
        r = m.update(step, 100)
    assert not r.estimated and r.eta_seconds == pytest.approx(3.0 * 89, rel=0.02)


def test_no_estimate_means_no_time_until_a_step_is_measured():
    clock = Clock()
    m = ProgressModel(clock=clock)
    assert m.update(0, 10).eta_seconds is None
    clock.t += 2.0
    assert m.update(1, 10).eta_seconds is None  # one step may be set-up: not yet a pace
    clock.t += 2.0
    r = m.update(2, 10)
    assert r.eta_seconds == pytest.approx(16.0) and not r.estimated


# A Poison-setup fine-tune of 1 step, as it ran on this project's 2-core machine under load
# (progress.json read while it ran): seconds since the first report, fraction of the work, with
# the up-front estimate of 119.1 s. It really took 302.5 s; set-up was 3× faster than estimated,
# the steps 3–5× slower.
ONE_STEP_RUN = [(0.0, 0.0), (4.385, 0.0968), (69.152, 0.2552), (139.569, 0.5484),
                (237.142, 0.7068), (302.529, 1.0)]  # fmt: skip


def test_a_short_run_says_estimating_first_then_stays_near_the_truth_without_jumping():
    clock, prior = Clock(), 119.1
    m = ProgressModel(prior_s=prior, clock=clock)
    etas = []
    for t, f in ONE_STEP_RUN[:-1]:
        clock.t = 1000.0 + t
        etas.append((m.update(f * prior, prior).eta_seconds, ONE_STEP_RUN[-1][0] - t))
    # the set-up's pace (4 s where 11.5 were estimated) gave "43 s" with 298 s to go: no time is
    # shown until the work itself moved twice
    assert etas[0][0] is None and etas[1][0] is None
    shown = [(eta, left) for eta, left in etas if eta is not None]
    assert len(shown) == 3
    for eta, left in shown:
        assert 0.5 < eta / left < 2.0, (eta, left)
    # averaged over the run's reports: it counts down, no 305 s → 108 s → 181 s swings
    assert all(a[0] > b[0] for a, b in zip(shown, shown[1:]))


def test_a_report_that_does_not_move_the_work_counts_the_unit_down():
    clock = Clock()
    m = ProgressModel(clock=clock)
    for step in range(3):
        m.update(step, 10)
        clock.t += 2.0
    assert m.update(
        2,
        10,
    ).eta_seconds == pytest.approx(16.0 - 2.0)  # 2 s into step 3


def test_job_context_writes_fraction_and_blended_eta(tmp_path):
    clock = Clock()
    ctx = RunContext(tmp_path / "run", clock=clock)
    ctx.expect(60.0)
    seen = []
    for step in range(1, 61):
        clock.t += 1.0 if step <= 20 else 5.0
        ctx.progress(step, 60, loss=1.0)
        ctx.flush()
        p = json.loads((tmp_path / "run" / "progress.json").read_text())
        seen.append(p)
        assert p["fraction"] == pytest.approx(step / 60, abs=1e-4)
        if step <= MIN_ADVANCES:  # the first report is step 1: two more move the work
            assert p["eta_seconds"] is None and p["eta_estimated"]
        elif step < 60:
            assert p["eta_seconds"] >= 1.0
    assert seen[3]["eta_estimated"] and not seen[30]["eta_estimated"]  # 10 % measured: evidence
    assert seen[40]["eta_seconds"] == pytest.approx(19 * 5.0, rel=0.02)
    assert seen[-1]["eta_seconds"] == 0.0


def test_a_reader_counting_down_stops_at_a_floor_and_says_overdue():
    stamp = datetime(2026, 1, 1, tzinfo=UTC)
    p = {"eta_seconds": 30.0, "eta_estimated": False, "updated": stamp.isoformat()}
    at = (stamp + timedelta(seconds=10)).timestamp()
    assert time_left(p, at) == (pytest.approx(20.0), "")
    late = (stamp + timedelta(seconds=300)).timestamp()  # the step is far slower than the rate
    left, note = time_left(p, late)
    assert left == pytest.approx(3.0) and note == "overdue"  # never 0 s while work remains
    assert "slower" in format_left(left, note)
    assert format_left(*time_left({**p, "eta_estimated": True}, at)).endswith("(estimate)")
    assert time_left({"eta_seconds": None}) == (None, "")
    waiting = {"eta_seconds": None, "eta_estimated": True}  # the run measures its first steps
    assert format_left(*time_left(waiting)) == "estimating…"


def test_sweep_work_weighs_steps_and_level_ends():
    # 2 levels of 4 steps: a step costs 1 s, a level's evaluation 6 s (engine: 5 units a level)
    assert sweep_work(0, 10, 4, 1.0, 6.0) == (0.0, 20.0)
    assert sweep_work(3, 10, 4, 1.0, 6.0) == (3.0, 20.0)
    assert sweep_work(4, 10, 4, 1.0, 6.0) == (4.0, 20.0)  # trained, being evaluated
    assert sweep_work(5, 10, 4, 1.0, 6.0) == (10.0, 20.0)  # level saved
    assert sweep_work(7, 10, 4, 1.0, 6.0) == (12.0, 20.0)


class _Ctx:
    def __init__(self) -> None:
        self.reports: list[tuple[int, int | None, tuple[float, float] | None]] = []
        self.expected: float | None = None

    def expect(self, seconds: float | None) -> None:
        self.expected = seconds

    def progress(self, step, total, loss=None, message=None, *, work=None, **metrics):
        self.reports.append((step, total, work))


def test_sweep_progress_moves_within_a_level():
    est = Estimate(start=5, setup=5, train=40, probes=0, evaluate=20, other=0, levels=2)
    ctx = _Ctx()
    prog = SweepProgress(ctx, est, steps_per_level=20)  # type: ignore[arg-type]
    assert ctx.expected == 70
    prog.start(42, "loading")
    for u in (0, 1, 2, 20, 21, 41, 42):
        prog(u, 42, "m")
    works = [w for _, _, w in ctx.reports]
    assert works[0] == (0.0, 70.0)  # before set-up
    assert works[1] == (10.0, 70.0)  # set-up done: first level started
    assert works[2][0] < works[3][0] < works[4][0]  # every step moves the bar
    assert works[4] == (30.0, 70.0)  # 20 steps trained, the level being evaluated
    assert works[5] == (40.0, 70.0)  # level 1 saved: its evaluation counts
    assert works[6] == (60.0, 70.0)
    assert works[7] == (70.0, 70.0)
