"""calls.update through the real twilio client, against the emulator's REST API."""

import threading
import time

from ivr import twiml
from ivr.delivery import Delivery
from ivr.eventlog import EventLog

FAKES = {"asr_engine": "fake", "llm_engine": "fake", "tts_engine": "fake", "turn_mode": "stream"}


def live_call(line):
    """A call waiting on a stream that never opens; its CallSid and the caller's thread."""
    results = []
    caller = threading.Thread(target=lambda: results.append(line.carrier.place_call(
        {"steps": [{"silence": 60}], "end": "hangup"}, stream_hangs=True)))
    caller.start()
    deadline = time.monotonic() + 60
    while not any(run.status == "in-progress" and run.result.requests
                  for run in list(line.carrier.calls.values())):
        assert time.monotonic() < deadline, "the call was never answered"
        time.sleep(0.02)
    return next(iter(line.carrier.calls)), caller, results


def kinds(line, call_sid):
    return [e["kind"] for e in line.store.events(call_sid)]


def test_an_update_moves_a_live_call_to_new_twiml(phone_line):
    line = phone_line(**FAKES)
    call_sid, caller, results = live_call(line)
    url = line.runtime.prompt_url("fallback_he.mp3")
    doc = twiml.record_turn(line.url, url)
    assert line.runtime.delivery.update(call_sid, doc, "TEST_UPDATE", turn=1)
    caller.join(120)
    assert any(h["url"] == url for h in results[0].heard)  # the caller heard the new TwiML
    assert "TEST_UPDATE_TX" in kinds(line, call_sid)


def test_a_hangup_ends_the_call(phone_line):
    line = phone_line(**FAKES)
    call_sid, caller, results = live_call(line)
    assert line.runtime.delivery.hangup(call_sid)
    caller.join(120)
    assert results[0].status == "completed"


def test_failures_are_false_with_twilios_code_never_an_exception(phone_line):
    line = phone_line(**FAKES)
    delivery = line.runtime.delivery
    assert not delivery.update("CA" + "0" * 32, "<Response/>", "PING_PONG")
    failed = [e["detail"] for e in line.store.events("CA" + "0" * 32)
              if e["kind"] == "PING_PONG_FAIL"]
    assert failed[0]["code"] == 20404
    wrong = line.runtime.settings.replace(twilio_auth_token="not-the-token-123456")
    other = Delivery(wrong, EventLog(line.store))
    assert not other.update("CA" + "0" * 32, "<Response/>", "PING_PONG")
    codes = [e["detail"]["code"] for e in line.store.events("CA" + "0" * 32)
             if e["kind"] == "PING_PONG_FAIL"]
    assert codes == [20404, 20003]
