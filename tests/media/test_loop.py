"""The socket's life on a real event loop: deadlines, loop lag."""

import asyncio
import time

import pytest

from ivr.media.loop import Deadline, LagProbe, percentile


def run(coroutine):
    return asyncio.run(coroutine)


def test_a_deadline_fires_once_when_due_and_not_before():
    fired = []

    async def main():
        loop = asyncio.get_running_loop()
        due = {"at": time.monotonic() + 60}
        deadline = Deadline(loop, lambda: (due["at"], "quiet"), fired.append)
        await asyncio.sleep(0.6)  # one check has run: not due yet
        assert fired == []
        due["at"] = time.monotonic()  # the peer went quiet
        while not fired:
            await asyncio.sleep(0.05)
        deadline.cancel()
    run(main())
    assert fired == ["quiet"]


def test_the_lag_probe_counts_ticks_since_a_snapshot():
    async def main():
        probe = LagProbe()
        probe.start(asyncio.get_running_loop())
        before = probe.snapshot()
        while sum(probe.since(before).values()) < 10:
            await asyncio.sleep(0.02)
        time.sleep(0.2)  # the loop is blocked: the next tick is about 200 ms late
        await asyncio.sleep(0.05)
        probe.handle.cancel()
        return probe.since(before)
    lag = run(main())
    assert max(lag) >= 150 and percentile(lag, 50) < max(lag)


class StoppedClock:
    """A loop stand-in for the probe's tick: a settable time, call_at only remembered."""

    def __init__(self):
        self.now = 100.0

    def time(self):
        return self.now

    def call_at(self, when, callback, *args):
        return None


@pytest.mark.parametrize("stall_sec,recorded_ms", [
    (0.0123, 12), (0.999, 999), (4.4, 4400), (59.999, 59_990), (75.0, 60_000)])
def test_a_stall_is_recorded_as_long_as_it_was_up_to_a_minute(stall_sec, recorded_ms):
    probe, clock = LagProbe(), StoppedClock()
    probe.start(clock)
    before = probe.snapshot()
    clock.now += LagProbe.TICK_SEC + stall_sec  # the tick runs `stall_sec` after it was due
    probe._tick(100.0 + LagProbe.TICK_SEC)
    assert probe.since(before) == {recorded_ms: 1}


def test_a_loop_blocked_past_a_second_is_not_cut_to_a_second():
    async def main():
        probe = LagProbe()
        probe.start(asyncio.get_running_loop())
        before = probe.snapshot()
        await asyncio.sleep(0.05)
        time.sleep(1.3)  # the loop is blocked: the next tick is at least 1.26 s late
        await asyncio.sleep(0.05)
        probe.handle.cancel()
        return probe.since(before)
    assert max(run(main())) >= 1250


def test_percentile_of_a_histogram():
    assert percentile({1: 98, 50: 1, 300: 1}, 99) == 50
    assert percentile({}, 99) == 0
