"""Thread lanes count what they run and what waits for a thread; slots refuse beyond their cap."""

import threading

from ivr.lanes import Lane, Slots

from .conftest import wait_until


def test_a_lane_counts_its_busy_threads_and_the_requests_queued_behind_them():
    lane, gate = Lane("turns", 2), threading.Event()
    running = [lane.submit(gate.wait, 60) for _ in range(2)]
    queued = [lane.submit(lambda n=n: n) for n in range(3)]
    state = wait_until(lambda: (s := lane.state())["busy"] == 2 and s)
    assert state["threads"] == 2 and state["queued"] == 3 and state["waited_sec"] >= 0
    assert wait_until(lambda: lane.state()["waited_sec"] > 0.05)  # the oldest keeps waiting
    gate.set()
    assert [f.result() for f in running + queued] == [True, True, 0, 1, 2]
    assert lane.state() | {"waited_sec": 0.0} == {"threads": 2, "busy": 0, "queued": 0,
                                                 "waited_sec": 0.0}
    lane.close()


def test_slots_refuse_a_taker_beyond_the_cap_until_one_is_given_back():
    slots = Slots(2)
    assert [slots.take() for _ in range(3)] == [True, True, False] and slots.held == 2
    slots.give()
    assert slots.take() and not slots.take()
