"""The media socket's life on the event loop: what a session writes to, deadlines, the lag probe."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol

from .. import metrics

CHECK_EVERY_SEC = 0.5


class MediaSocket(Protocol):
    """What a session writes to (ivr.media.wire's socket): from any thread, in order."""

    subprotocol: str | None

    def send_text(self, text: str) -> bool:
        """Queue a text message; False once the socket is closed."""

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close from our side (after what is already queued); idempotent."""


class Deadline:
    """Closes a socket whose peer is silent too long: `due()` says when and why, re-read every
    half second, so the per-message path only stores a timestamp."""

    def __init__(self, loop: asyncio.AbstractEventLoop, due: Callable[[], tuple[float, str]],
                 expire: Callable[[str], None]):
        self.loop, self.due, self.expire = loop, due, expire
        self.handle = loop.call_later(CHECK_EVERY_SEC, self._check)

    def _check(self) -> None:
        at, why = self.due()
        if time.monotonic() >= at:
            self.expire(why)
            return
        self.handle = self.loop.call_later(CHECK_EVERY_SEC, self._check)

    def cancel(self) -> None:
        self.handle.cancel()


class LagProbe:
    """How late the event loop runs: every media frame waits at most that long to be handled.
    A histogram of the lateness of a 20 ms tick (1 ms bins below a second, 10 ms bins up to
    60 s, then one bin for later), read as before/after snapshots; and the lag now and lately
    (any thread may ask: /healthz). Each tick is also observed in the line's figures."""

    FINE_MS, MAX_MS, COARSE_STEP_MS = 1000, 60_000, 10
    BIN_MS = [*range(FINE_MS), *range(FINE_MS, MAX_MS + 1, COARSE_STEP_MS)]  # each bin's floor
    TICK_SEC = 0.02
    WINDOW_SEC = 5.0  # "lately": this window and the one before it

    def __init__(self):
        self.bins = [0] * len(self.BIN_MS)
        self.max_ms = 0.0
        self.handle: Any = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.ticked_at = 0.0  # time.monotonic() of the last tick
        self.window_at, self.window_max_ms, self.last_window_max_ms = 0.0, 0.0, 0.0

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.loop is None:
            self.loop = loop
            self._schedule(loop.time())

    def _schedule(self, now: float) -> None:
        expected = now + self.TICK_SEC
        self.handle = self.loop.call_at(expected, self._tick, expected)

    def _tick(self, expected: float) -> None:
        now = self.loop.time()
        late = (now - expected) * 1000
        self.max_ms = max(self.max_ms, late)
        self.bins[self.bin_of(late)] += 1
        metrics.loop_lag(late / 1000)
        self._keep_window(late)
        self._schedule(now)

    def _keep_window(self, late_ms: float) -> None:
        self.ticked_at = time.monotonic()
        if self.ticked_at - self.window_at >= self.WINDOW_SEC:
            self.window_at = self.ticked_at
            self.last_window_max_ms, self.window_max_ms = self.window_max_ms, 0.0
        self.window_max_ms = max(self.window_max_ms, late_ms)

    def recent_lag_ms(self) -> dict[str, int]:
        """How late the loop is now (a tick overdue: the loop is busy this very moment) and the
        most it was late in the last 5 to 10 s; empty before the probe started."""
        if not self.ticked_at:
            return {}
        overdue = (time.monotonic() - self.ticked_at - self.TICK_SEC) * 1000
        return {"now": max(0, round(overdue)),
                "recent_max": round(max(self.window_max_ms, self.last_window_max_ms, overdue))}

    @classmethod
    def bin_of(cls, late_ms: float) -> int:
        """The index of the bin that holds a lateness of `late_ms`."""
        ms = max(0, int(late_ms))
        if ms < cls.FINE_MS:
            return ms
        return min(len(cls.BIN_MS) - 1, cls.FINE_MS + (ms - cls.FINE_MS) // cls.COARSE_STEP_MS)

    def snapshot(self) -> list[int]:
        return list(self.bins)

    def since(self, before: list[int]) -> dict[int, int]:
        """The non-empty bins since a snapshot, {ms: ticks} (ms: the bin's floor)."""
        return {self.BIN_MS[i]: now - then
                for i, (now, then) in enumerate(zip(self.bins, before, strict=True)) if now > then}


def percentile(histogram: dict[int, int], pct: float) -> int:
    """The bin at which `pct` percent of a {ms: count} histogram is reached."""
    total, seen = sum(histogram.values()), 0
    for ms in sorted(histogram):
        seen += histogram[ms]
        if seen >= total * pct / 100:
            return ms
    return 0
