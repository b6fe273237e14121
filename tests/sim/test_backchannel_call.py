"""A caller who says "כן" over the line's reply hears the whole reply, in stream mode and over the
Plays; one who then really interrupts is stopped for and answered (the emulator's calls)."""

import itertools

import pytest

from ivr import audio
from ivr.sim.script import CallerScript, voice_ulaw

pytestmark = pytest.mark.live  # rings whole calls through the emulator

QUESTION = "שלום, מה שעות הפתיחה שלכם?"
ASKED_AGAIN = "רגע, בעצם רציתי לשאול על מחירים"
YES = {"barge_in": "כן", "after": 0.6, "backchannel": True}


def line_for(phone_line, reply_mode: str):
    """The line with fake engines; the first reply is long (3 s: the fake TTS's longest)."""
    line = phone_line(asr_engine="fake", llm_engine="fake", tts_engine="fake",
                      turn_mode="stream", reply_mode=reply_mode)
    line.runtime.engines.asr.texts = itertools.cycle(
        ["שאלה " + "על שעות הפתיחה ועל המחירים של השירות " * 4, "תודה"])
    return line


def kinds(line, call_sid: str, kind: str) -> list[dict]:
    return [e["detail"] for e in line.store.events(call_sid) if e["kind"] == kind]


def whole_first_reply(line, call_sid: str) -> float:
    names = line.store.turns(call_sid)[0]["audio_url"].split()
    return sum(line.runtime.cache.duration(name) for name in names)


def test_a_backchannel_over_a_streamed_reply_is_heard_to_its_end(phone_line):
    line = line_for(phone_line, "stream")
    script = CallerScript.load({"steps": [{"say": QUESTION}, YES, {"say": "תודה רבה"}],
                                "end": "hangup"})
    assert script.answered == 2  # the "כן" is no turn
    result = line.carrier.place_call(script)
    assert result.error_codes == [] and result.streams[0]["clears"] == 0
    whole = whole_first_reply(line, result.call_sid)
    assert whole >= 2.9 and result.heard[0]["kind"] == "stream"
    (sent, *_) = kinds(line, result.call_sid, "STREAM_REPLY")
    assert sent["interrupted"] is False  # all of it went out, and the caller heard all of it:
    assert result.heard[0]["duration"] == pytest.approx(sent["frames"] * 0.02, abs=0.03)
    assert result.heard[0]["duration"] >= whole - 0.2  # (the MP3's duration has its padding)
    assert [b["over"] for b in kinds(line, result.call_sid, "BACKCHANNEL")] == ["stream"]
    assert kinds(line, result.call_sid, "BARGE_IN") == []
    assert len(line.store.turns(result.call_sid)) == 2  # the question and the thanks


def test_a_backchannel_over_the_plays_leaves_them_playing(phone_line):
    line = line_for(phone_line, "play")
    script = {"steps": [{"say": QUESTION}, YES, {"say": "תודה רבה"}], "end": "hangup"}
    result = line.carrier.place_call(script)
    assert result.error_codes == [] and result.forks  # the caller was heard over the Plays
    first = line.store.turns(result.call_sid)[0]["audio_url"].split()
    plays = [h["url"].rsplit("/", 1)[-1] for h in result.heard if h["kind"] == "play"]
    assert plays[:len(first)] == first  # every chunk of the reply played
    assert [b["over"] for b in kinds(line, result.call_sid, "BACKCHANNEL")] == ["play"]
    assert kinds(line, result.call_sid, "BARGE_IN") == []
    assert len(line.store.turns(result.call_sid)) == 2


def test_a_real_interruption_after_a_backchannel_still_clears_and_is_answered(phone_line):
    line = line_for(phone_line, "stream")
    asr = line.runtime.engines.asr
    asr.texts = itertools.cycle([next(asr.texts), ASKED_AGAIN, "תודה"])
    script = {"steps": [{"say": QUESTION}, {**YES, "after": 0.2},
                        {"barge_in": ASKED_AGAIN, "after": 0.3}], "end": "hangup"}
    result = line.carrier.place_call(script)
    assert result.error_codes == [] and result.streams[0]["clears"] == 1
    assert len(kinds(line, result.call_sid, "BACKCHANNEL")) == 1
    assert result.heard[0]["duration"] < whole_first_reply(line, result.call_sid) - 0.3
    spoken = audio.duration_sec(audio.ulaw_to_pcm16(voice_ulaw(ASKED_AGAIN)))
    # heard whole from its "רגע", with the "כן" said just before it (kept, never lost); the
    # last request: an early one (EARLY_ASR_SEC) may go at the pause after "רגע," and be dropped
    assert spoken - 0.1 <= asr.heard[-1] <= spoken + 1.0, (asr.heard, spoken)
    turns = line.store.turns(result.call_sid)
    assert turns[1]["user_text"] == ASKED_AGAIN and turns[1]["reply_text"]  # and answered
