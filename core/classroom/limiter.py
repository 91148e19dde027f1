"""Slowing down join-code guessing: per-client and server-wide backoff, on an injected clock.

Each wrong code is recorded under every key of the client that sent it (its browser session and,
where known, its IP address) and once server-wide. A key's first ``free`` wrong tries cost
nothing (typos); after that the next try is refused until ``base_s · 2^(n − free)`` seconds
(capped at ``cap_s``) after its last wrong one. Server-wide, once more than ``global_free`` wrong
tries fall inside ``window_s``, every try waits ``global_gap_s`` after the previous wrong one, so
new sessions (a reload, a script) cannot guess faster than about 1/``global_gap_s`` per second.
A refused try is not checked at all, so a right code inside a wait is refused too.

Waiting is a refusal with the seconds left, never a sleep: no server thread is held.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass
class _Key:
    failures: int = 0
    last: float = float("-inf")


class AttemptLimiter:
    """Thread-safe attempt limiter (one per server process, shared by every session)."""

    def __init__(
        self,
        *,
        free: int = 2,
        base_s: float = 1.0,
        cap_s: float = 60.0,
        global_free: int = 20,
        window_s: float = 60.0,
        global_gap_s: float = 2.0,
        forget_s: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free, self.base_s, self.cap_s = free, base_s, cap_s
        self.global_free, self.window_s, self.global_gap_s = global_free, window_s, global_gap_s
        self.forget_s = forget_s
        self.clock = clock
        self._keys: dict[str, _Key] = {}
        self._recent: deque[float] = deque()
        self._lock = threading.Lock()

    def delay_after(self, failures: int) -> float:
        """Seconds a key must wait after its ``failures``-th wrong try."""
        if failures < self.free:
            return 0.0
        return min(self.cap_s, self.base_s * 2 ** (failures - self.free))

    def _prune(self, now: float) -> None:
        while self._recent and now - self._recent[0] > self.window_s:
            self._recent.popleft()
        stale = [k for k, v in self._keys.items() if now - v.last > self.forget_s]
        for k in stale:
            del self._keys[k]

    def wait_s(self, keys: Iterable[str]) -> float:
        """Seconds before a try from a client with these keys is accepted (0: now)."""
        with self._lock:
            now = self.clock()
            self._prune(now)
            wait = 0.0
            for k in keys:
                entry = self._keys.get(k)
                if entry is not None:
                    wait = max(wait, entry.last + self.delay_after(entry.failures) - now)
            if len(self._recent) > self.global_free:
                wait = max(wait, self._recent[-1] + self.global_gap_s - now)
            return max(0.0, wait)

    def failed(self, keys: Iterable[str]) -> None:
        """Record a wrong code from a client with these keys."""
        with self._lock:
            now = self.clock()
            for k in keys:
                entry = self._keys.setdefault(k, _Key())
                entry.failures += 1
                entry.last = now
            self._recent.append(now)

    def succeeded(self, keys: Iterable[str]) -> None:
        """A right code: this client's keys start afresh (the server-wide window does not)."""
        with self._lock:
            for k in keys:
                self._keys.pop(k, None)
