"""What an executor gets from the driver and gives back.

An executor runs a list of :class:`LevelTask` for one :class:`~core.sweep.runner.LevelRunner`
and reports each level's life through :class:`Events` (started on a node, fine-tune steps, done
with its :class:`~core.sweep.runner.LevelResult`, stopped, failed). It never writes results:
the driver (core/sweep/engine.py) does, in its own thread, as events arrive.

Stop and pause come from the driver's :class:`Control`, i.e. the job's control protocol
(``should_stop`` blocks while paused). Executors whose levels run elsewhere call
:meth:`Control.poll` with a ``broadcast`` that forwards ``"run"`` / ``"pause"`` / ``"stop"`` to
their workers; workers check it at every fine-tune step (:meth:`Control.worker_stop`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from core.sweep.runner import LevelResult, LevelRunner, StopFn

ControlState = Literal["run", "pause", "stop"]
PAUSE_POLL_S = 0.2


@dataclass(frozen=True)
class LevelTask:
    """One (C_P, seed) level of the sweep."""

    c_p: int
    seed: int

    @property
    def label(self) -> str:
        return f"C_P={self.c_p} seed={self.seed}"


class Events(Protocol):
    """The driver's side of an executor: called from the driver's thread only."""

    def started(self, task: LevelTask, node: str, pid: int | None) -> None: ...

    def step(self, task: LevelTask, step: int, loss: float | None) -> None: ...

    def done(self, task: LevelTask, result: LevelResult) -> None: ...

    def stopped(self, task: LevelTask) -> None: ...


class LevelFailed(RuntimeError):
    """A level failed for a reason of its own (bad data, out of memory): the sweep stops."""

    def __init__(self, task: LevelTask, message: str) -> None:
        super().__init__(f"level {task.label} failed: {message}")
        self.task, self.message = task, message


class Control:
    """Stop / pause as the driver's caller defines them. ``should_stop`` may block while paused
    (the jobs' protocol); ``pause_requested`` (optional, non-blocking) lets remote workers pause
    too before the driver blocks in ``should_stop``."""

    def __init__(
        self,
        should_stop: StopFn | None = None,
        pause_requested: Callable[[], bool] | None = None,
    ) -> None:
        self._should_stop = should_stop
        self._pause_requested = pause_requested
        self.state: ControlState = "run"

    def should_stop(self) -> bool:
        """For levels run in the driver's own thread: the caller's callback as it is."""
        if self.state == "stop":
            return True
        if self._should_stop is not None and self._should_stop():
            self.state = "stop"
        return self.state == "stop"

    def announce(self, broadcast: Callable[[ControlState], None]) -> None:
        """Forward a pause request without blocking (before levels are handed out, so that
        none starts unpaused)."""
        if self.state != "stop" and self._pause_requested is not None and self._pause_requested():
            self._set("pause", broadcast)

    def poll(self, broadcast: Callable[[ControlState], None]) -> ControlState:
        """Ask the caller once; forward each change of state to remote workers."""
        if self.state == "stop":
            return self.state
        self.announce(broadcast)
        stop = self._should_stop is not None and self._should_stop()  # blocks while paused
        self._set("stop" if stop else "run", broadcast)
        return self.state

    def stop_all(self, broadcast: Callable[[ControlState], None]) -> None:
        """Stop every level (another level failed): remote workers stop at their next step."""
        self._set("stop", broadcast)

    def _set(self, state: ControlState, broadcast: Callable[[ControlState], None]) -> None:
        if state != self.state:
            self.state = state
            broadcast(state)


def worker_stop(read_state: Callable[[], ControlState]) -> StopFn:
    """A worker's stop callback over a forwarded control state: True on "stop", blocks on
    "pause" until "run" or "stop" arrives."""

    def stop() -> bool:
        state = read_state()
        while state == "pause":
            time.sleep(PAUSE_POLL_S)
            state = read_state()
        return state == "stop"

    return stop


class Executor(Protocol):
    """Runs levels; returns when every task is done or stopped; raises :class:`LevelFailed`."""

    name: str

    def run(
        self, runner: LevelRunner, tasks: list[LevelTask], events: Events, control: Control
    ) -> None: ...
