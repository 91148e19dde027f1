"""The local executors: levels in the driver's own thread, or in N worker processes.

``SerialExecutor`` (``workers`` = 1) runs levels one after another in this process; the
caller's ``should_stop`` is checked at every fine-tune step, so pause blocks mid-level.

``ProcessExecutor`` (``workers`` > 1): the (C_P, seed) levels are independent fine-tunes of the
same base and a mini-model fine-tune uses a small share of a GPU (or one core of a CPU), so N
processes on one device run N levels at once. Each worker is its own interpreter
(``python -m core.sweep.executors.local``), never a multiprocessing child, so it does not
re-import the caller's ``__main__`` (a Streamlit page, a test runner). Protocol: the parent
writes JSON lines to the worker's stdin (first the runner spec, then ``{"run": [c_p, seed]}``
one level at a time, and ``{"control": "run" | "pause" | "stop"}``); the worker answers with
length-prefixed events on its original stdout (its prints go to stderr): a JSON header, and for
a finished level its arrays as an ``.npz`` read with ``allow_pickle=False`` — nothing crossing
the pipe is unpickled. End of stdin means stop, so workers also stop when the parent dies.
"""

from __future__ import annotations

import io
import json
import os
import queue
import socket
import struct
import subprocess
import sys
import threading
import traceback
from collections import deque
from pathlib import Path
from typing import IO, Any, cast

import numpy as np

from core.io import _jsonable
from core.results.schema import LevelRecord
from core.sweep.executors.base import (
    Control,
    ControlState,
    Events,
    LevelFailed,
    LevelTask,
    worker_stop,
)
from core.sweep.runner import LevelResult, LevelRunner, RunnerSpec, build_runner, run_timed

POLL_S = 0.2  # how often the parent asks the caller's should_stop while levels run
_FRAME = struct.Struct("<Q")


class SerialExecutor:
    """Levels one after another in the driver's thread."""

    name = "local"

    def run(
        self, runner: LevelRunner, tasks: list[LevelTask], events: Events, control: Control
    ) -> None:
        for task in tasks:
            if control.should_stop():
                return
            events.started(task, socket.gethostname(), os.getpid())

            def on_step(step: int, loss: float | None, task: LevelTask = task) -> None:
                events.step(task, step, loss)

            result = run_timed(runner, task.c_p, task.seed, on_step, control.should_stop)
            if result is None:
                events.stopped(task)
                return
            events.done(task, result)


class ProcessExecutor:
    """Levels in ``workers`` local processes, handed out one at a time (a free worker takes
    the next level in the sweep's order); torch threads = CPU cores // workers."""

    name = "local"

    def __init__(self, workers: int, threads: int | None = None) -> None:
        if workers < 2:
            raise ValueError(f"workers: ProcessExecutor needs ≥ 2, got {workers}")
        self.workers, self.threads = workers, threads

    def run(
        self, runner: LevelRunner, tasks: list[LevelTask], events: Events, control: Control
    ) -> None:
        if not tasks:
            return
        n = min(self.workers, len(tasks))
        threads = self.threads or max(1, (os.cpu_count() or 1) // n)
        spec = runner.spec()
        root = str(Path(__file__).resolve().parents[3])  # so `-m core.sweep...` resolves
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
        }
        inbox: queue.Queue[tuple[int, tuple[Any, ...]]] = queue.Queue()
        procs: list[subprocess.Popen[bytes]] = []
        for i in range(n):
            p = subprocess.Popen(
                [sys.executable, "-m", "core.sweep.executors.local"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=env,
            )
            procs.append(p)
            threading.Thread(target=_read_frames, args=(i, p.stdout, inbox), daemon=True).start()
            _send(p, {"spec": spec.__dict__, "threads": threads})
        pending = deque(tasks)
        busy: dict[int, LevelTask | None] = {i: None for i in range(n)}
        alive = set(range(n))
        failure: LevelFailed | None = None

        def broadcast(state: ControlState) -> None:
            for i in alive:
                _send(procs[i], {"control": state})

        def next_level(i: int) -> None:
            if pending and control.state == "run" and failure is None:
                task = busy[i] = pending.popleft()
                _send(procs[i], {"run": [task.c_p, task.seed]})
            else:  # nothing left for this worker: end of input lets it exit
                busy[i] = None
                _close(procs[i])

        try:
            while alive:
                try:
                    i, msg = inbox.get(timeout=POLL_S)
                except queue.Empty:
                    msg = ()
                kind = msg[0] if msg else None
                task = busy.get(i) if msg else None
                if kind == "ready":
                    next_level(i)
                elif kind == "started" and task is not None:
                    events.started(task, msg[1], msg[2])
                elif kind == "step" and task is not None:
                    events.step(task, msg[1], msg[2])
                elif kind == "done" and task is not None:
                    events.done(task, msg[1])
                    next_level(i)
                elif kind == "stopped" and task is not None:
                    events.stopped(task)
                    busy[i] = None
                    _close(procs[i])
                elif kind == "failed" and task is not None:
                    failure = failure or LevelFailed(task, msg[1])
                    busy[i] = None
                elif kind == "exit":
                    alive.discard(i)
                    code = procs[i].wait()
                    lost = busy[i]
                    if lost is not None and failure is None:
                        failure = LevelFailed(lost, f"worker process exited with code {code}")
                if failure is not None and control.state != "stop":
                    control.stop_all(broadcast)  # the others stop at their next step
                    pending.clear()
                elif control.poll(broadcast) == "stop":
                    pending.clear()
        finally:  # on an exception here (e.g. Ctrl-C), ask the workers to stop and wait
            for p in procs:
                _close(p)
                try:
                    p.wait(timeout=120)
                except subprocess.TimeoutExpired:
                    p.kill()
        if failure is not None:
            raise failure


def _send(p: subprocess.Popen[bytes], msg: dict[str, Any]) -> None:
    try:
        assert p.stdin is not None
        p.stdin.write((json.dumps(msg) + "\n").encode())
        p.stdin.flush()
    except (BrokenPipeError, OSError, ValueError):
        pass  # the worker has exited; its exit is reported by the reader thread


def _close(p: subprocess.Popen[bytes]) -> None:
    try:
        if p.stdin is not None and not p.stdin.closed:
            p.stdin.close()
    except (BrokenPipeError, OSError):
        pass


def encode_event(msg: tuple[Any, ...]) -> bytes:
    """A worker event as bytes: a length-prefixed JSON header, then (for ``("done", result)``)
    the level's arrays and grid as an uncompressed ``.npz``."""
    arrays: dict[str, np.ndarray] = {}
    if msg and msg[0] == "done":
        result: LevelResult = msg[1]
        header: dict[str, Any] = {
            "kind": "done",
            "record": _jsonable(dict(result.record)),
            "grid_cols": int(result.grid_cols),
            "arrays": sorted(result.arrays),
        }
        arrays = {f"a_{k}": np.asarray(v) for k, v in result.arrays.items()}
        arrays["grid"] = np.asarray(result.grid)
    else:
        header = {"kind": msg[0] if msg else None, "args": _jsonable(list(msg[1:]))}
    head = json.dumps(header).encode()
    buf = io.BytesIO()
    if arrays:
        np.savez(buf, **cast(dict[str, Any], arrays))
    return _FRAME.pack(len(head)) + head + buf.getvalue()


def decode_event(body: bytes) -> tuple[Any, ...]:
    """Inverse of :func:`encode_event` (arrays loaded with ``allow_pickle=False``)."""
    n = _FRAME.unpack(body[: _FRAME.size])[0]
    header = json.loads(body[_FRAME.size : _FRAME.size + n])
    if header["kind"] != "done":
        return (header["kind"], *header["args"])
    with np.load(io.BytesIO(body[_FRAME.size + n :]), allow_pickle=False) as z:
        arrays = {k: z[f"a_{k}"] for k in header["arrays"]}
        grid = z["grid"]
    record = cast(LevelRecord, header["record"])
    return ("done", LevelResult(record, arrays, grid, int(header["grid_cols"])))


def _read_frames(i: int, pipe: IO[bytes] | None, inbox: queue.Queue[Any]) -> None:
    assert pipe is not None
    while True:
        head = pipe.read(_FRAME.size)
        if len(head) < _FRAME.size:
            break
        body = pipe.read(_FRAME.unpack(head)[0])
        inbox.put((i, decode_event(body)))
    inbox.put((i, ("exit",)))


def _worker() -> None:
    """One worker process: run the levels the parent hands out, report events."""
    from core.jobs.lifeline import exit_with_parent

    exit_with_parent()  # a killed driver never leaves levels running beside a resume
    out = os.fdopen(os.dup(1), "wb")  # the protocol channel; stray prints go to stderr
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    lock = threading.Lock()

    def send(*msg: Any) -> None:
        body = encode_event(msg)
        with lock:
            out.write(_FRAME.pack(len(body)) + body)
            out.flush()

    first = json.loads(sys.stdin.readline())
    import torch

    torch.set_num_threads(int(first["threads"]))
    state: list[ControlState] = ["run"]
    todo: queue.Queue[tuple[int, int] | None] = queue.Queue()

    def read_stdin() -> None:
        for line in sys.stdin:
            msg = json.loads(line)
            if "control" in msg:
                state[0] = msg["control"]
            elif "run" in msg:
                todo.put((int(msg["run"][0]), int(msg["run"][1])))
        state[0] = "stop"  # end of input: the parent is done with us, or gone
        todo.put(None)

    threading.Thread(target=read_stdin, daemon=True).start()
    stop = worker_stop(lambda: state[0])
    runner = build_runner(RunnerSpec(**first["spec"]))
    send("ready")
    while (level := todo.get()) is not None:
        c_p, seed = level
        send("started", socket.gethostname(), os.getpid())
        try:
            result = run_timed(runner, c_p, seed, lambda s, loss: send("step", s, loss), stop)
        except Exception as e:  # the level's own failure: its message ends the sweep
            traceback.print_exc()
            send("failed", f"{type(e).__name__}: {e}")
            return
        if result is None:
            send("stopped")
            return
        send("done", result)


if __name__ == "__main__":
    _worker()
