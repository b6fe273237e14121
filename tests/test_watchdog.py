"""The watchdog's durable checks on SQLite and PostgreSQL, moving calls through the emulator's
REST API: armed in one process, run in another, exactly once."""

import json
import statistics
import subprocess
import sys
import time
from collections import Counter

import pytest

from .conftest import database_url, make_settings, wait_until
from .livehelpers import ROOT
from .watchdog_worker import build, stop

pytestmark = pytest.mark.usefixtures("database")

SID = "CA" + "9" * 32
QUICK = {"sweep_sec": 0.05}  # the tests' watchdogs sweep often, so that they contend


@pytest.fixture
def make_dog(tmp_path, carrier, database):
    """`make_dog(**options)`: one more watchdog, as another process has it, on the same
    database (its own store, scheduler and pool)."""
    settings = make_settings(tmp_path).replace(twilio_api_base_url=carrier.url,
                                               stream_start_timeout_sec=0.5)
    built = []

    def make(**options):
        built.append(build(settings, **options))
        return built[-1]
    yield make
    for dog in built:
        stop(dog)


@pytest.fixture
def watchdog(make_dog):
    return make_dog()


def kinds(dog, call_sid=SID):
    return [e["kind"] for e in dog.calls.store.events(call_sid)]


def test_a_stream_that_never_started_is_moved_to_record_once(watchdog):
    watchdog.calls.answer(SID, "stream", "play", "in-progress")
    watchdog.check_stream_started(SID, 1)
    watchdog.check_stream_started(SID, 1)  # a second firing, or a second worker
    call = watchdog.calls.get(SID)
    assert call["turn_mode"] == "record" and call["fallback_reason"] == "no stream start for turn 1"
    # the emulator does not know this call: the update is tried once and its failure recorded
    assert kinds(watchdog).count("WATCHDOG_REDIRECT_FAIL") == 1


def test_a_stream_that_started_is_left_alone(watchdog):
    watchdog.calls.answer(SID, "stream", "play", "in-progress")
    watchdog.calls.stream_started(SID, 1)
    watchdog.check_stream_started(SID, 1)
    assert watchdog.calls.get(SID)["turn_mode"] == "stream" and kinds(watchdog) == []


def test_fresh_media_re_arms_the_check_and_stale_media_moves_the_call(watchdog):
    watchdog.calls.answer(SID, "stream", "play", "in-progress")
    watchdog.calls.touch_media(SID, time.time())
    watchdog.check_media(SID, 1)
    assert watchdog.pending() == [f"{SID}:media"]
    watchdog.calls.touch_media(SID, time.time() - 60)
    watchdog.check_media(SID, 1)
    assert watchdog.calls.get(SID)["fallback_reason"] == "no media for 6 s"


def test_an_ended_call_or_a_later_turn_is_never_moved(watchdog):
    watchdog.calls.answer(SID, "stream", "play", "in-progress")
    watchdog.calls.advance_turn(SID, 1)
    watchdog.check_media(SID, 1)  # the check of turn 1 comes late: the call is on turn 2
    watchdog.calls.end(SID, "completed", 3)
    watchdog.check_stream_started(SID, 2)
    assert watchdog.calls.get(SID)["turn_mode"] == "stream" and kinds(watchdog) == []


def test_after_a_restart_every_live_streaming_call_gets_its_checks_back(watchdog):
    waiting, streaming, gathering, ended = ("CA" + c * 32 for c in "1234")
    for sid, mode in ((waiting, "stream"), (streaming, "stream"), (gathering, "gather"),
                      (ended, "stream")):
        watchdog.calls.answer(sid, mode, "play", "in-progress")
    watchdog.calls.stream_started(streaming, 1)
    watchdog.calls.end(ended, "completed", 1)
    assert watchdog.recover() == 2
    assert watchdog.pending() == sorted([f"{waiting}:start:1", f"{streaming}:media"])


def test_cancel_removes_every_check_of_a_call(watchdog):
    watchdog.expect_stream(SID, 1)
    watchdog.watch_media(SID, 1)
    watchdog.expect_stream("CA" + "8" * 32, 1)
    assert watchdog.cancel(SID) == 2 and watchdog.pending() == ["CA" + "8" * 32 + ":start:1"]


def test_a_turn_finishing_after_the_hang_up_schedules_nothing(watchdog):
    watchdog.expect_stream(SID, 1)
    assert watchdog.cancel(SID) == 1
    watchdog.expect_stream(SID, 2)  # a reply delivered after call_status said completed
    watchdog.watch_turn(SID, 2)
    assert watchdog.pending() == [] and watchdog.has_ended(SID)


# ---- durable checks: any process runs them, exactly once ----------------------------------
def moved(dog, call_sid=SID) -> list[dict]:
    """The call's WATCHDOG_REDIRECT_* events (the emulator does not know the test's calls, so
    each move is one WATCHDOG_REDIRECT_FAIL: the update tried once)."""
    return [e for e in dog.calls.store.events(call_sid)
            if e["kind"].startswith("WATCHDOG_REDIRECT")]


def fired(*dogs) -> Counter:
    return Counter(check_id for dog in dogs for check_id, _ in dog.fired)


def report(label: str, late_ms: list[int]) -> None:
    print(f"LATENESS {label}: n={len(late_ms)} p50={statistics.median(late_ms):.0f} ms "
          f"max={max(late_ms)} ms")


def test_a_check_armed_by_a_process_that_is_gone_fires_on_another(make_dog):
    a, b = make_dog(**QUICK), make_dog(**QUICK)
    a.start()
    a.calls.answer(SID, "stream", "play", "in-progress")
    a.expect_stream(SID, 1)
    a.calls.store.flush()  # armed: the row is in the database
    a.scheduler.shutdown(wait=False)  # A is gone before the check is due
    b.start()
    wait_until(lambda: not b.pending())
    assert fired(a) == {} and fired(b) == {f"{SID}:start:1": 1}
    [event] = moved(b)
    assert event["detail"]["reason"] == "no stream start for turn 1"
    assert event["detail"]["late_ms"] >= 0


def test_a_check_survives_a_restart(make_dog):
    a = make_dog(**QUICK)
    a.calls.answer(SID, "stream", "play", "in-progress")
    a.expect_stream(SID, 1)
    stop(a)  # everything closed: scheduler, pool, database
    b = make_dog(**QUICK)
    assert b.pending() == [f"{SID}:start:1"]
    assert b.recover() == 1  # the call is watched, by the check it already had
    [recovered] = [e for e in b.calls.store.events("") if e["kind"] == "WATCHDOG_RECOVERED"]
    assert recovered["detail"] == {"calls": 1, "pending": 1, "rearmed": 0}
    b.start()
    wait_until(lambda: not b.pending())
    assert fired(b) == {f"{SID}:start:1": 1} and len(moved(b)) == 1


def test_thirty_checks_due_at_once_fire_exactly_once_across_three_watchdogs(make_dog):
    dogs = [make_dog() for _ in range(3)]  # sweeping every SWEEP_SEC, as in production
    sids = [f"CA{n:032d}" for n in range(30)]
    for sid in sids:
        dogs[0].calls.answer(sid, "stream", "play", "in-progress")
    due_at = time.time() + 1.0
    for sid in sids:  # all due at the same moment
        dogs[0].checks.arm(f"{sid}:start:1", sid, "start", 1, due_at)
    assert len(dogs[0].pending()) == 30
    for dog in dogs:
        dog.start()
    wait_until(lambda: not dogs[0].pending())  # a check's row goes once it has run
    assert fired(*dogs) == {f"{sid}:start:1": 1 for sid in sids}
    assert all(len(moved(dogs[0], sid)) == 1 for sid in sids)
    assert {dogs[0].calls.get(sid)["turn_mode"] for sid in sids} == {"record"}
    report("30 checks, 3 watchdogs", [ms for dog in dogs for _, ms in dog.fired])


def test_a_claimer_that_died_mid_check_leaves_it_to_another_after_its_lease(make_dog):
    a, b = make_dog(lease_sec=1.0), make_dog(lease_sec=1.0, **QUICK)
    a.calls.answer(SID, "stream", "play", "in-progress")
    a.expect_stream(SID, 1, after_sec=-0.5)  # due now
    a.calls.store.flush()
    [claimed] = a.checks.claim(time.time(), 10)  # A takes the lease, then dies mid-check
    stop(a)
    b.start()
    wait_until(lambda: not b.pending())
    [(check_id, late_ms)] = b.fired
    assert check_id == claimed.id and late_ms >= 1000  # not before A's lease ran out
    assert len(moved(b)) == 1


def test_a_check_that_re_armed_itself_or_was_re_armed_is_kept(make_dog):
    dog = make_dog(**QUICK)
    dog.calls.answer(SID, "stream", "play", "in-progress")
    dog.calls.touch_media(SID, time.time())
    dog.checks.arm(f"{SID}:media", SID, "media", 1, time.time())  # due now, media is fresh
    dog.start()
    wait_until(lambda: dog.fired)
    wait_until(lambda: dog.busy == 0)
    assert dog.pending() == [f"{SID}:media"] and moved(dog) == []  # re-armed by check_media
    dog.scheduler.shutdown(wait=False)
    dog.expect_stream(SID, 2, after_sec=-1.0)
    dog.calls.store.flush()
    [check] = [c for c in dog.checks.claim(time.time(), 10) if c.kind == "start"]
    dog.expect_stream(SID, 2)  # a webhook arms it anew while it runs
    dog.calls.store.flush()
    assert dog.checks.done(check) is False
    assert f"{SID}:start:2" in dog.pending()


@pytest.mark.live  # starts a process
def test_checks_armed_in_this_process_fire_exactly_once_in_two_others(make_dog, carrier,
                                                                      tmp_path):
    here = make_dog()  # arms, never sweeps
    workers = [subprocess.Popen(
        [sys.executable, "-m", "tests.watchdog_worker", database_url(tmp_path), carrier.url,
         str(tmp_path / f"worker{n}")], cwd=ROOT, text=True, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE) for n in range(2)]
    try:
        for worker in workers:
            assert worker.stdout.readline().strip() == "ready"
        sids = [f"CA{n:032d}" for n in range(20)]
        for sid in sids:
            here.calls.answer(sid, "stream", "play", "in-progress")
            here.stream_failed(sid, 1, "31920 handshake failed", grace_sec=0.5)
        wait_until(lambda: not here.pending())
        ran = Counter()
        for worker in workers:
            worker.stdin.close()
            ran.update(json.loads(worker.stdout.readline()))
            assert worker.wait(30) == 0
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait(30)
    assert ran == {f"{sid}:error:1": 1 for sid in sids} and not here.fired
    events = [e for sid in sids for e in moved(here, sid)]
    assert len(events) == 20
    assert {e["detail"]["reason"] for e in events} == {"stream error: 31920 handshake failed"}
    report("20 checks, 2 processes", [e["detail"]["late_ms"] for e in events])


def test_a_check_that_keeps_failing_is_retried_after_its_lease_then_dropped(make_dog):
    dog = make_dog(lease_sec=0.1, **QUICK)
    dog.checks.arm(f"{SID}:bogus", SID, "start", 1, time.time(), bogus="1")  # no such argument:
    # it raises
    dog.start()
    wait_until(lambda: not dog.pending())
    events = [e for e in dog.calls.store.events(SID) if e["kind"].startswith("WATCHDOG_CHECK")]
    assert [e["kind"] for e in events] == ["WATCHDOG_CHECK_ERR"] * 3 + ["WATCHDOG_CHECK_DROPPED"]
    assert [e["detail"]["attempt"] for e in events[:3]] == [1, 2, 3]
