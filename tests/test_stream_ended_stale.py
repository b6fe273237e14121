"""A stream_ended for a <Connect> newer TwiML already replaced (Twilio may request the
interrupted action after a calls.update) changes nothing: the call stays on its stream."""

import dataclasses
import xml.etree.ElementTree as ET

from .conftest import CALL_SID
from .livehelpers import wait_until

FAKES = {"asr_engine": "fake", "llm_engine": "fake", "tts_engine": "fake", "turn_mode": "stream"}


def kinds(line, call_sid):
    return [e["kind"] for e in line.store.events(call_sid)]


def test_a_stale_stream_ended_after_each_ping_pong_leaves_the_call_on_its_stream(phone_line):
    line = phone_line(**FAKES, reply_mode="play")
    result = line.carrier.place_call("three_turns", stale_action=True)

    def answered():  # the emulator requests them on threads of their own
        stale = [r for r in result.requests if r.get("what") == "stale-action"]
        return stale if len(stale) == 3 and all("status" in r for r in stale) else None
    stale = wait_until(answered)
    assert [r["status"] for r in stale] == [200] * 3
    assert [r["url"].rsplit("=", 1)[-1] for r in stale] == ["1", "2", "3"]  # ?turn= replaced
    events = kinds(line, result.call_sid)
    assert events.count("STREAM_ENDED_STALE") == 3 and "STREAM_FALLBACK" not in events
    assert result.error_codes == [] and [s["params"]["turn"] for s in result.connects] == [
        "1", "2", "3", "4"]
    call = line.store.get_call(result.call_sid)
    assert call["turn_mode"] == "stream" and call["fallback_reason"] is None


def stream_ended(twilio_post, turn: int | None):
    path = "/webhook/stream_ended" + (f"?turn={turn}" if turn else "")
    return ET.fromstring(twilio_post(path).data)


def test_stream_ended_for_a_replaced_turn_answers_the_current_stream(twilio_post, runtime):
    runtime.calls.answer(CALL_SID, "stream", "play", "in-progress")
    runtime.calls.advance_turn(CALL_SID, 1)  # a ping-pong moved the call to turn 2
    root = stream_ended(twilio_post, 1)
    assert root.find("Connect/Stream/Parameter[@name='turn']").get("value") == "2"
    call = runtime.store.get_call(CALL_SID)
    assert (call["turn"], call["turn_mode"], call["fallback_reason"]) == (2, "stream", None)
    assert stream_ended(twilio_post, 2).find("Record") is not None  # its own turn: the fallback


def test_stream_ended_while_the_owner_is_rung_changes_nothing(twilio_post, runtime):
    runtime.owner = dataclasses.replace(runtime.owner.now(), phone="+972501234567")
    runtime.calls.answer(CALL_SID, "stream", "stream", "in-progress")
    runtime.calls.hand_to_owner(CALL_SID)
    root = stream_ended(twilio_post, 1)
    assert root.find("Dial/Number").text == "+972501234567"
    assert runtime.store.get_call(CALL_SID)["turn_mode"] == "dial"


def test_with_one_socket_for_all_turns_an_older_turn_is_no_sign_of_staleness(twilio_post,
                                                                             runtime):
    runtime.calls.answer(CALL_SID, "stream", "stream", "in-progress")
    runtime.calls.advance_stream_turn(CALL_SID, 3)  # REPLY_MODE=stream: the same socket
    assert stream_ended(twilio_post, 1).find("Record") is not None  # that socket ended
    assert runtime.store.get_call(CALL_SID)["turn_mode"] == "record"
