"""Helper processes that must not outlive the process that started them.

Sweep level workers run levels for one parent (the sweep driver). If that parent is killed, a
worker that runs on would finish its level into a folder whose owner is gone, and a resume of
the sweep would start a second copy of the same level beside it. :func:`exit_with_parent`,
called first thing in such a worker, makes the kernel kill it the moment its parent dies
(Linux ``prctl(PR_SET_PDEATHSIG)``); elsewhere a watcher thread polls the parent pid. Unfinished
levels are redone on resume, and their temp files are removed by
:func:`core.io.clean_stale_tmp`.

Job workers (:mod:`core.jobs.worker`) do the opposite on purpose: they outlive whoever started
them, so they never call this.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1
POLL_S = 0.2


def exit_with_parent(sig: int = signal.SIGKILL, parent: int | None = None) -> str:
    """Die with ``sig`` as soon as the parent process dies; returns how it is enforced.

    ``parent`` is the expected parent pid (default: the current one). If the parent is already
    gone when this is called (it died before the worker got here), the signal is sent now.
    Returns ``"prctl"`` (kernel-enforced, Linux) or ``"poll"`` (a daemon thread checks every
    0.2 s).
    """
    parent = os.getppid() if parent is None else parent
    how = "poll"
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0:
                how = "prctl"
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent died before the request was in place
        os.kill(os.getpid(), sig)
    if how == "poll":

        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(POLL_S)
            os.kill(os.getpid(), sig)

        threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
    return how
