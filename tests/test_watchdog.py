"""The watchdog's checks on a real SQLite file, moving calls through the emulator's REST API."""

import time

import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from ivr.calls import Calls
from ivr.delivery import Delivery
from ivr.eventlog import EventLog
from ivr.sim import Carrier
from ivr.store import Store
from ivr.watchdog import Watchdog

from .conftest import ACCOUNT_SID, AUTH_TOKEN, make_settings

pytestmark = pytest.mark.usefixtures("database")

SID = "CA" + "9" * 32


@pytest.fixture
def watchdog(tmp_path):
    carrier = Carrier("http://127.0.0.1:9", account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN).start()
    settings = make_settings(tmp_path).replace(twilio_api_base_url=carrier.url)
    store = Store(settings.database_url)
    events = EventLog(store)
    scheduler = BackgroundScheduler()
    dog = Watchdog(settings, scheduler, Calls(store), events, Delivery(settings, events),
                   lambda alias: f"https://line.example.com/static/tts/{alias}")
    yield dog
    if scheduler.running:
        scheduler.shutdown(wait=False)
    store.close()
    carrier.stop()


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
    assert [j.id for j in watchdog.scheduler.get_jobs()] == [f"{SID}:media"]
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
    assert sorted(j.id for j in watchdog.scheduler.get_jobs()) == sorted(
        [f"{waiting}:start:1", f"{streaming}:media"])


def test_cancel_removes_every_check_of_a_call(watchdog):
    watchdog.expect_stream(SID, 1)
    watchdog.watch_media(SID, 1)
    watchdog.expect_stream("CA" + "8" * 32, 1)
    assert watchdog.cancel(SID) == 2 and len(watchdog.scheduler.get_jobs()) == 1


def test_a_turn_finishing_after_the_hang_up_schedules_nothing(watchdog):
    watchdog.expect_stream(SID, 1)
    assert watchdog.cancel(SID) == 1
    watchdog.expect_stream(SID, 2)  # a reply delivered after call_status said completed
    watchdog.watch_turn(SID, 2)
    assert watchdog.scheduler.get_jobs() == [] and watchdog.has_ended(SID)
