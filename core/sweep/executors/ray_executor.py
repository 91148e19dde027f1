"""The Ray executor: each (C_P, seed) level is a Ray task with declared resources.

Without an address a local Ray instance starts for the sweep and stops with it; with one the
sweep runs on that cluster (docs/cluster.md). Each level is submitted as a task with
``num_cpus`` / ``num_gpus`` (fractions pack several mini levels on one GPU), ``max_retries`` for
lost workers (a killed or crashed worker process, a lost node) and ``retry_exceptions=False``:
a level that raises for a reason of its own (bad data, out of memory) fails the sweep with its
message at once. Results stream back with ``ray.wait`` and go to the same driver as the local
executor's; stop/pause and the per-level state (node, pid, attempts) pass through a small
``SweepHub`` actor that the tasks report to and read the control state from.

A local Ray (no address) listens on 127.0.0.1 only (:func:`local_ray`): Ray's own servers
(GCS, raylet, object manager, workers, runtime-env agent) otherwise bind every interface, and
anyone who reaches them can run code in the sweep's processes. Before submitting, the request of
one level (``num_cpus`` / ``num_gpus``) is compared with every alive node's resources
(:func:`check_fits`): a level that fits no node is refused with what the cluster has, instead
of waiting forever in Ray's queue; a level that fits but waits for busy nodes is logged.

A worker process keeps its runner (the loaded model) between tasks of the same sweep
(:func:`core.sweep.runner.build_runner`); torch uses ``cpus_per_level`` threads per level, so
records equal the local executor's when its thread count is the same.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ray
from ray._private import ray_constants
from ray.exceptions import RayTaskError

from core.sweep.executors.base import (
    Control,
    ControlState,
    Events,
    LevelFailed,
    LevelTask,
    worker_stop,
)
from core.sweep.executors.resources import check_fits, is_loopback, level_request
from core.sweep.runner import LevelResult, LevelRunner, RunnerSpec, build_runner, run_timed

if TYPE_CHECKING:
    from core.sweep.executors import ExecutorOptions

POLL_S = 0.2  # ray.wait timeout: how often events are drained and the control is asked
STATE_TTL_S = 0.25  # a task re-reads the control state at most this often
STEP_REPORT_S = 0.5  # a task reports fine-tune steps at most this often
WAIT_NOTE_S = 30.0  # no level started after this long: say what the sweep waits for
LOOPBACK = "127.0.0.1"
# Ray resolves a loopback node address to the machine's LAN address (and its servers then bind
# every interface) unless multi-node clusters are off, which is what this variable of Ray's
# turns off on Linux too; children (GCS, raylet, workers) read it from the environment.
RAY_CLUSTER_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


@contextmanager
def local_ray() -> Iterator[None]:
    """A Ray instance for this process only, every server of it on 127.0.0.1; shut down (and
    Ray's cluster setting restored) on exit. RuntimeError if Ray still picked another address."""
    saved_env, saved_flag = os.environ.get(RAY_CLUSTER_ENV), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[RAY_CLUSTER_ENV] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        ray.init(
            include_dashboard=False,
            _node_ip_address=LOOPBACK,
            logging_level=logging.WARNING,
        )
        node = ray.util.get_node_ip_address()
        if not is_loopback(node):
            raise RuntimeError(
                f"Ray started on {node}, not {LOOPBACK}: refusing to run a local sweep that "
                "others on the network could reach; use --executor local, or a cluster on a "
                "trusted network (--address, docs/cluster.md)"
            )
        yield
    finally:
        ray.shutdown()
        ray_constants.ENABLE_RAY_CLUSTER = saved_flag
        if saved_env is None:
            os.environ.pop(RAY_CLUSTER_ENV, None)
        else:
            os.environ[RAY_CLUSTER_ENV] = saved_env


def alive_node_resources() -> list[dict[str, float]]:
    """Total resources of each alive node of the connected Ray cluster."""
    return [dict(n.get("Resources") or {}) for n in ray.nodes() if n.get("Alive")]


@ray.remote(num_cpus=0)
class SweepHub:
    """Control state for the tasks ("run" / "pause" / "stop") and their events for the driver."""

    def __init__(self) -> None:
        self.state: ControlState = "run"
        self.events: list[tuple[Any, ...]] = []
        self.running: dict[tuple[int, int], int] = {}

    def set_state(self, state: ControlState) -> None:
        self.state = state

    def get_state(self) -> ControlState:
        return self.state

    def report(self, event: tuple[Any, ...]) -> None:
        self.events.append(event)
        if event[0] == "started":
            self.running[(event[1], event[2])] = event[4]

    def drain(self) -> list[tuple[Any, ...]]:
        events, self.events = self.events, []
        return events

    def running_pids(self) -> dict[tuple[int, int], int]:
        """{(c_p, seed): pid of the worker that last started it} (tests kill one of them)."""
        return dict(self.running)


@ray.remote
def run_level_task(
    spec: dict[str, Any], c_p: int, seed: int, threads: int, hub: Any
) -> LevelResult | None:
    """One level on a Ray worker; None if the sweep was stopped."""
    import torch

    torch.set_num_threads(threads)
    cache: list[Any] = [None, 0.0]

    def read_state() -> ControlState:
        now = time.monotonic()
        if cache[0] is None or cache[0] == "pause" or now - cache[1] > STATE_TTL_S:
            cache[0], cache[1] = ray.get(hub.get_state.remote()), now
        return cache[0]  # type: ignore[no-any-return]

    stop = worker_stop(read_state)
    node = ray.util.get_node_ip_address()
    ray.get(hub.report.remote(("started", c_p, seed, node, os.getpid())))
    if stop():  # blocks while paused, before the model loads
        return None
    runner = build_runner(RunnerSpec(**spec))
    last = [0.0]

    def on_step(step: int, loss: float | None) -> None:
        now = time.monotonic()
        if now - last[0] >= STEP_REPORT_S:
            last[0] = now
            hub.report.remote(("step", c_p, seed, step, loss))

    return run_timed(runner, c_p, seed, on_step, stop)


class RayExecutor:
    """Levels as Ray tasks (see the module docstring)."""

    name = "ray"

    def __init__(self, options: ExecutorOptions) -> None:
        self.options = options
        self.hub: Any = None  # the SweepHub of the running sweep (tests read running_pids)

    def run(
        self, runner: LevelRunner, tasks: list[LevelTask], events: Events, control: Control
    ) -> None:
        if not tasks:
            return
        opts = self.options
        if ray.is_initialized():  # a Ray the caller started (tests, notebooks)
            self._checked_run(runner, tasks, events, control, "the connected Ray cluster")
        elif opts.address is None:  # local Ray: its workers import this checkout
            root = str(Path(__file__).resolve().parents[3])
            paths = [root, os.environ.get("PYTHONPATH")]
            os.environ["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
            with local_ray():
                self._checked_run(runner, tasks, events, control, "the local Ray")
        else:
            ray.init(address=opts.address, logging_level=logging.WARNING)
            try:
                self._checked_run(runner, tasks, events, control, f"cluster {opts.address}")
            finally:
                ray.shutdown()

    def _checked_run(
        self,
        runner: LevelRunner,
        tasks: list[LevelTask],
        events: Events,
        control: Control,
        where: str,
    ) -> None:
        check_fits(level_request(self.options), alive_node_resources(), where)
        try:
            self._run(runner, tasks, events, control)
        finally:
            self.hub = None

    def _run(
        self, runner: LevelRunner, tasks: list[LevelTask], events: Events, control: Control
    ) -> None:
        opts = self.options
        request = level_request(opts)
        cpus, gpus = request["CPU"], request["GPU"]
        threads = max(1, int(cpus))
        hub = self.hub = SweepHub.remote()  # type: ignore[attr-defined]

        def broadcast(state: ControlState) -> None:
            ray.get(hub.set_state.remote(state))

        control.announce(broadcast)
        spec = runner.spec().__dict__
        level = run_level_task.options(
            num_cpus=cpus, num_gpus=gpus, max_retries=opts.max_retries, retry_exceptions=False
        )
        refs = {level.remote(spec, t.c_p, t.seed, threads, hub): t for t in tasks}
        by_key = {(t.c_p, t.seed): t for t in tasks}
        failure: LevelFailed | None = None
        submitted, any_started, noted = time.monotonic(), False, False
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1, timeout=POLL_S)
            if not any_started and not noted and time.monotonic() - submitted > WAIT_NOTE_S:
                noted = True  # fits a node, but none has it free now (other jobs hold it)
                free = ray.available_resources()
                print(
                    f"ray: waiting for resources: a level needs {cpus:g} CPU and {gpus:g} GPU; "
                    f"free now: {free.get('CPU', 0.0):g} CPU, {free.get('GPU', 0.0):g} GPU",
                    file=sys.stderr,
                    flush=True,
                )
            for ev in ray.get(hub.drain.remote()):
                task = by_key.get((ev[1], ev[2]))
                if task is None or task not in refs.values():
                    continue
                any_started = True
                if ev[0] == "started":
                    events.started(task, ev[3], ev[4])
                elif ev[0] == "step":
                    events.step(task, ev[3], ev[4])
            for ref in ready:
                task = refs.pop(ref)
                try:
                    result = ray.get(ref)
                except RayTaskError as e:  # the level's own exception: not retried
                    cause = e.cause if isinstance(e.cause, BaseException) else e
                    failure = failure or LevelFailed(task, f"{type(cause).__name__}: {cause}")
                    continue
                except ray.exceptions.RayError as e:  # worker lost more than max_retries times
                    msg = f"{type(e).__name__} after {opts.max_retries} retries: {e}"
                    failure = failure or LevelFailed(task, msg)
                    continue
                if result is None:
                    events.stopped(task)
                else:
                    events.done(task, result)
            if failure is not None and control.state != "stop":
                control.stop_all(broadcast)  # running levels stop at their next step
            elif failure is None:
                control.poll(broadcast)
        if failure is not None:
            raise failure
