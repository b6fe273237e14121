"""Thread pools by kind of request: a lane's threads serve only its routes, and each lane counts
its busy and queued requests (what /healthz reports); slots cap the continuations that wait."""

from __future__ import annotations

import itertools
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from .media.loop import LagProbe
from .threads import executor


class Lane:
    """A pool of `threads` for one kind of request, with its queue's length and age."""

    def __init__(self, name: str, threads: int):
        self.name, self.threads = name, threads
        self.pool = executor(name, threads)
        self.lock = threading.Lock()
        self.busy = 0
        self.queued: OrderedDict[int, float] = OrderedDict()  # ticket → when it was queued
        self.tickets = itertools.count()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        ticket = next(self.tickets)
        with self.lock:
            self.queued[ticket] = time.monotonic()
        return self.pool.submit(self._run, ticket, fn, args)

    def _run(self, ticket: int, fn: Callable[..., Any], args: tuple) -> Any:
        with self.lock:
            self.queued.pop(ticket, None)
            self.busy += 1
        try:
            return fn(*args)
        finally:
            with self.lock:
                self.busy -= 1

    def state(self) -> dict[str, Any]:
        """Threads, busy ones, requests waiting for one, and how long the oldest has waited."""
        with self.lock:
            oldest = next(iter(self.queued.values()), None)
            busy, queued = self.busy, len(self.queued)
        waited = time.monotonic() - oldest if oldest is not None else 0.0
        return {"threads": self.threads, "busy": busy, "queued": queued,
                "waited_sec": round(waited, 2)}

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


class Slots:
    """At most `cap` holders at a time; a taker that finds none free is told so at once."""

    def __init__(self, cap: int):
        self.cap = cap
        self.lock = threading.Lock()
        self.held = 0

    def take(self) -> bool:
        with self.lock:
            if self.held >= self.cap:
                return False
            self.held += 1
            return True

    def give(self) -> None:
        with self.lock:
            self.held -= 1


class Lanes:
    """The server's lanes by name and the event loop's lag probe: the load /healthz reports."""

    def __init__(self, threads: dict[str, int], probe: LagProbe | None = None):
        self.lanes = {name: Lane(name, count) for name, count in threads.items()}
        self.probe = probe

    def __getitem__(self, name: str) -> Lane:
        return self.lanes[name]

    def report(self) -> dict[str, Any]:
        """Each lane's state, and how late the event loop runs (ms): now, and at most lately."""
        lag = self.probe.recent_lag_ms() if self.probe is not None else {}
        return {"lanes": {name: lane.state() for name, lane in self.lanes.items()},
                "loop_lag_ms": lag}

    def close(self) -> None:
        for lane in self.lanes.values():
            lane.close()
