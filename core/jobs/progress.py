"""Progress and time left of a job, from the work itself: one model for every job kind.

A job reports how much of its work is done (``done`` of ``total`` work units: fine-tune steps,
probes, evaluated levels, PGD steps, or estimated seconds of a sweep's phases, see
:func:`sweep_work`). The bar is ``f = done / total``. Time left blends the up-front estimate with
the rate this run has measured:

    r_prior    = T_estimate / total                       (seconds per unit, core/sweep/estimate)
    r_measured = Δt / Δdone over the recent window        (the last ``WINDOW`` of the work, and at
                                                           least ``SMOOTH`` advances of it)
    w          = min(1, measured work / (EVIDENCE · total))
    T_left     = (w · r_measured + (1 − w) · r_prior) · (total − done)

so a run that slows down mid-way (a loaded machine) moves its ETA within a window, while a short
run (a 1-step fine-tune has a handful of reports) averages over several reports instead of
jumping with each one. No time is given (``eta_seconds`` None, the UI says "estimating…") until
the work has advanced in ``MIN_ADVANCES`` reports after the first: the first advance is often
set-up (loading a model), whose pace says little about the steps, and an up-front estimate alone
can be far off on a loaded machine. After that the time is flagged ``estimated`` (the UI says
"estimate") until ``w`` reaches 1. Time left is never 0 before the work is done: it is at least
``MIN_LEFT_S``, and a reader counting down between reports (:func:`time_left`) stops at a floor
and marks the run "overdue" instead of showing 0 s.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

WINDOW = 0.15  # the measured rate covers the last 15 % of the work (at least 2 reports)
EVIDENCE = 0.10  # the estimate is fully replaced once 10 % of the work was measured in this run
MIN_LEFT_S = 1.0  # time left before the end is never shown below this
OVERDUE_FLOOR = 0.10  # a reader's countdown stops at 10 % of the last reported time left
MIN_ADVANCES = 2  # no time left until the work advanced in 2 reports after the first
SMOOTH = 4  # the measured rate spans at least 4 advances of the work (or all there are)


@dataclass(frozen=True)
class ProgressState:
    """One reading of :class:`ProgressModel`: ``fraction`` in [0, 1], ``eta_seconds`` (None
    until the work advanced ``MIN_ADVANCES`` times: "estimating"), ``estimated`` (True while the
    up-front estimate still weighs in, or no time is given yet), ``weight`` (w above) and
    ``seconds_per_unit`` (the blended rate)."""

    fraction: float
    eta_seconds: float | None
    estimated: bool
    weight: float
    seconds_per_unit: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ProgressModel:
    """Fraction done and time left of one run (one per worker attempt).

    ``prior_s``: the up-front estimate of the whole run's seconds (None: none). ``clock``: the
    time source (seconds, monotonic), injectable so tests drive it without sleeping.
    """

    def __init__(
        self, prior_s: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.prior_s = prior_s
        self.clock = clock
        self._samples: deque[tuple[float, float]] = deque(maxlen=512)
        self._first: tuple[float, float] | None = None

    def expect(self, prior_s: float | None) -> None:
        """Set (or replace) the up-front estimate of the whole run, in seconds."""
        self.prior_s = None if prior_s is None else max(0.0, float(prior_s))

    def update(self, done: float, total: float) -> ProgressState:
        """Record that ``done`` of ``total`` units are finished now; returns the reading."""
        now = self.clock()
        total = max(float(total), 1e-9)
        done = min(max(float(done), 0.0), total)
        if self._first is None:
            # Work before the first report of an attempt (an earlier attempt's, or set-up) is not
            # timed: the measured rate starts here.
            self._first = (now, done)
        if self._samples and done < self._samples[-1][1]:
            self._samples.clear()  # the work was re-counted (e.g. a new total): start over
            self._first = (now, done)
        self._samples.append((now, done))
        return self._state(done, total)

    def _advances(self) -> list[tuple[float, float]]:
        """(time, done) when each amount of work was first reported, oldest first: the attempt's
        first report, then every report that moved the work (a report repeating ``done`` with a
        new message is not progress)."""
        assert self._first is not None
        points = [self._first]
        for t, d in self._samples:
            if d > points[-1][1]:
                points.append((t, d))
        return points

    def _state(self, done: float, total: float) -> ProgressState:
        fraction = done / total
        if done >= total:
            return ProgressState(1.0, 0.0, False, 1.0, None)
        points = self._advances()
        if len(points) - 1 < MIN_ADVANCES:
            return ProgressState(fraction, None, True, 0.0, None)  # "estimating…"
        t_end, d_end = points[-1]
        start = points[0]
        for i in range(len(points) - 2, -1, -1):  # the window: WINDOW of the work, SMOOTH advances
            start = points[i]
            if d_end - start[1] >= WINDOW * total and len(points) - 1 - i >= SMOOTH:
                break
        measured_rate = (t_end - start[0]) / (d_end - start[1])
        measured = d_end - points[0][1]
        prior_rate = None if self.prior_s is None else self.prior_s / total
        w = 1.0 if prior_rate is None else min(1.0, measured / (EVIDENCE * total))
        rate = w * measured_rate + (1 - w) * (prior_rate or 0.0)
        # time already spent on the unit now running (reports that did not move the work)
        spent = self._samples[-1][0] - t_end
        eta = max(MIN_LEFT_S, rate * (total - done) - spent)
        return ProgressState(fraction, round(eta, 1), w < 1.0, round(w, 3), rate)


def sweep_work(
    units: int, total_units: int, steps_per_level: int, step_s: float, level_end_s: float
) -> tuple[float, float]:
    """A sweep's progress in estimated seconds: (done, total).

    The sweep driver counts ``steps_per_level`` fine-tune steps and one unit for evaluating and
    saving a level (``units`` of ``total_units``); a step weighs ``step_s`` (its training and
    probes) and the level's end ``level_end_s`` (judged generations), so the bar moves with the
    step that runs and the evaluation counts for what it costs. With levels running side by side
    the split of ``units`` into levels is approximate; the total is exact.
    """
    per = steps_per_level + 1
    level_s = steps_per_level * step_s + level_end_s

    def weigh(u: int) -> float:
        full, rest = divmod(max(0, u), per)
        return full * level_s + min(rest, steps_per_level) * step_s

    return weigh(units), weigh(total_units)


def time_left(progress: Mapping[str, Any], now: float | None = None) -> tuple[float | None, str]:
    """Time left of a running job as a reader shows it: (seconds, note), counted down from the
    last report in ``progress.json`` (``eta_seconds``, ``updated``).

    The count stops at a floor (``OVERDUE_FLOOR`` of the reported time, at least ``MIN_LEFT_S``)
    and the note becomes ``"overdue"``: a step that takes longer than the rate said never shows
    0 s while work remains. Otherwise the note is ``"estimate"`` while the run's own rate has not
    replaced the up-front estimate, else ``""``. (None, "estimating") while the run measures
    its first steps (no time yet, ``eta_estimated`` true); (None, "") when it reported no time.
    """
    eta = progress.get("eta_seconds")
    if not isinstance(eta, int | float) or isinstance(eta, bool):
        return None, ("estimating" if progress.get("eta_estimated") is True else "")
    note = "estimate" if progress.get("eta_estimated") else ""
    left = float(eta)
    updated = progress.get("updated")
    if isinstance(updated, str):
        try:
            since = (now if now is not None else time.time()) - _timestamp(updated)
        except ValueError:
            since = 0.0
        floor = max(MIN_LEFT_S, OVERDUE_FLOOR * float(eta)) if eta > 0 else 0.0
        left = float(eta) - max(0.0, since)
        if left < floor:
            left, note = floor, ("overdue" if eta > 0 else note)
    return left, note


def _timestamp(iso: str) -> float:
    """Seconds since the epoch of the job store's UTC ``YYYY-mm-ddTHH:MM:SSZ`` stamps."""
    text = iso.replace("Z", "+00:00")
    stamp = datetime.fromisoformat(text)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp()


def format_left(seconds: float | None, note: str) -> str:
    """``"about 4.2 min (estimate)"``, ``"12 s"``, ``"estimating…"`` (no time yet), ``"—"``;
    an overdue job says so."""
    if seconds is None:
        return "estimating…" if note == "estimating" else "—"
    if seconds < 90:
        text = f"{seconds:.0f} s"
    elif seconds < 5400:
        text = f"{seconds / 60:.1f} min"
    else:
        text = f"{seconds / 3600:.1f} h"
    if note == "overdue":
        return f"{text}+ (slower than estimated)"
    return f"about {text} (estimate)" if note == "estimate" else text


__all__ = [
    "ProgressModel",
    "ProgressState",
    "format_left",
    "sweep_work",
    "time_left",
]
