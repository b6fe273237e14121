"""The greeting on a streaming line, end to end through the emulator: heard by a silent caller,
never said over a caller who speaks first, cut short by one who speaks over it."""

import pytest

from ivr.media.endpointing import GREETING_WAIT_SEC
from ivr.sim.call import TICK
from ivr.tts_cache import GREETING

SILENT_CALLER = {"steps": [{"silence": 6}], "end": "hangup"}
QUESTION = "מה שעות הפתיחה?"


def streaming_line(phone_line, **changes):
    """A line as an owner with a speech key has it: the defaults, streaming (scripted replies,
    espeak), with the fake ASR standing in for the cloud's."""
    return phone_line(local=True, turn_mode="stream", asr_engine="fake", **changes)


def kinds(line, call_sid: str, kind: str) -> list[dict]:
    return [e["detail"] for e in line.store.events(call_sid) if e["kind"] == kind]


@pytest.mark.parametrize("reply_mode", ["play", "stream"])
def test_a_silent_caller_hears_the_flows_greeting_on_the_stream(phone_line, reply_mode):
    line = streaming_line(phone_line, reply_mode=reply_mode)
    settings = line.runtime.settings
    assert settings.stream_greeting and not settings.ai_greeting_he  # the defaults
    assert not settings.twiml_play_greeting
    result = line.carrier.place_call(SILENT_CALLER)
    assert result.error_codes == [] and result.said == []
    stream = result.streams[0]
    heard = [h for h in result.heard if h["kind"] == "stream"]
    assert heard, result.timeline_text()
    greeting = heard[0]
    # the caller had their chance (the stream's `opened` stamp and its 20 ms ticks differ by
    # up to a few frames on the emulator's clock)
    assert greeting["t"] - stream["opened"] >= GREETING_WAIT_SEC - 3 * TICK
    # the cached prompt, whole: in pieces if a loaded machine's frames came late (a gap, not
    # a word less)
    seconds = line.runtime.cache.duration(GREETING)
    assert sum(h["duration"] for h in heard) == pytest.approx(seconds, abs=0.1)
    assert line.runtime.prompts.texts[GREETING] == line.runtime.engines.llm.flow["greeting"]
    assert "greeting" in stream["marks"]  # played to its end, and the line listens again
    reply = kinds(line, result.call_sid, "STREAM_REPLY")
    assert [r["mark"] for r in reply] == ["greeting"] and not reply[0]["interrupted"]
    assert line.store.get_call(result.call_sid)["turn"] == 1  # the greeting is no turn


def test_a_caller_who_speaks_first_is_answered_not_greeted(phone_line):
    line = streaming_line(phone_line)
    result = line.carrier.place_call({"steps": [{"say": QUESTION, "think": 0}],
                                      "end": "hangup"})  # at once, however loaded the machine
    assert result.error_codes == []
    spoke = result.said[0]["t"]
    assert spoke - result.streams[0]["opened"] < GREETING_WAIT_SEC
    assert not any(h["kind"] == "stream" for h in result.heard)  # nothing said over the caller
    assert kinds(line, result.call_sid, "STREAM_REPLY") == []
    answer = [h for h in result.heard if h["kind"] == "play"]
    assert answer and answer[0]["t"] > spoke
    assert all(GREETING not in h.get("url", "") for h in result.heard)


def test_a_caller_who_speaks_over_the_greeting_stops_it_and_is_answered(phone_line):
    line = streaming_line(phone_line)
    result = line.carrier.place_call(
        {"steps": [{"barge_in": QUESTION, "after": 0.5}], "end": "hangup"})
    assert result.error_codes == []
    greeting = next(h for h in result.heard if h["kind"] == "stream")
    assert greeting["duration"] < line.runtime.cache.duration(GREETING) - 0.5  # cut short
    assert result.streams[0]["clears"] >= 1
    assert [b["by"] for b in kinds(line, result.call_sid, "BARGE_IN")] == ["voice"]
    answers = [h for h in result.heard if h["kind"] == "play"]
    assert answers and answers[0]["t"] > result.said[0]["t"]  # the question is answered


def test_twiml_play_greeting_plays_it_before_the_stream_and_the_stream_does_not_repeat_it(
        phone_line):
    line = streaming_line(phone_line, twiml_play_greeting=True)
    result = line.carrier.place_call(SILENT_CALLER)
    assert result.error_codes == []
    assert result.heard[0]["kind"] == "play" and result.heard[0]["url"].endswith(GREETING)
    assert not any(h["kind"] == "stream" for h in result.heard)


def test_stream_greeting_off_leaves_the_line_waiting_for_the_caller(phone_line):
    line = streaming_line(phone_line, stream_greeting=False)
    result = line.carrier.place_call(SILENT_CALLER)
    assert result.error_codes == [] and result.heard == []


def test_ai_greeting_he_replaces_the_flows_words(phone_line):
    line = streaming_line(phone_line, ai_greeting_he="שלום, כאן המספרה של דנה.")
    assert line.runtime.prompts.texts[GREETING] == "שלום, כאן המספרה של דנה."
    result = line.carrier.place_call(SILENT_CALLER)
    heard = [h for h in result.heard if h["kind"] == "stream"]
    assert heard[0]["duration"] == pytest.approx(line.runtime.cache.duration(GREETING), abs=0.1)
