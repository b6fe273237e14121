"""A silent caller on a streaming line, end to end through the emulator: re-prompted after
STREAM_SILENCE_SEC of silence once the line has spoken, told goodbye and hung up on after
MAX_SILENT_TURNS; a caller who answers a re-prompt is answered, and their silence counts anew."""

import itertools

import pytest

from ivr.sim.call import TICK
from ivr.tts_cache import FALLBACK, GOODBYE, GREETING

SILENCE_SEC = 1.0
SILENT_CALLER = {"steps": [{"silence": 120}], "end": "wait", "max_duration": 120}
QUESTION = "מה שעות הפתיחה?"
# says nothing to the greeting, answers the re-prompt, then says nothing again
ANSWERS_THE_REPROMPT = {"steps": [{"say": QUESTION, "after_replies": 2}, {"silence": 120}],
                        "end": "wait", "max_duration": 120}


def streaming_line(phone_line, reply_mode):
    """A line as an owner with a speech key has it (scripted replies, espeak, the fake ASR
    for the cloud's), streaming, quick to re-prompt, hanging up after two silent turns."""
    return phone_line(local=True, turn_mode="stream", asr_engine="fake", reply_mode=reply_mode,
                      stream_silence_sec=SILENCE_SEC, max_silent_turns=2)


def details(line, call_sid: str, kind: str) -> list[dict]:
    return [e["detail"] for e in line.store.events(call_sid) if e["kind"] == kind]


def spoken(line, result) -> list[tuple[str, float, float]]:
    """What the caller heard, in order, as (prompt or "reply", starts, ends): a streamed prompt
    (perhaps in pieces, when a loaded machine's frames came late) is told by its length; a
    reply's chunks are one reply."""
    cache = line.runtime.cache
    lengths = {name: cache.duration(name) for name in (GREETING, FALLBACK, GOODBYE)}
    heard: list[list] = []
    for h in result.heard:
        name = h.get("url", "").rsplit("/", 1)[-1]
        ends = h["t"] + h["duration"]
        if h["kind"] == "stream" and heard and heard[-1][0] == "stream" \
                and h["t"] - heard[-1][2] < 0.2:
            heard[-1][2] = ends  # a piece of the prompt before it
            heard[-1][3] += h["duration"]
        else:
            heard.append([h["kind"] if h["kind"] == "stream" else name, h["t"], ends,
                          h["duration"]])
    named: list[tuple[str, float, float]] = []
    for kind, starts, ends, seconds in heard:
        if kind == "stream":
            kind = next((n for n, s in lengths.items() if abs(s - seconds) < 0.1), "reply")
        kind = kind if kind in lengths else "reply"
        if kind == "reply" and named and named[-1][0] == "reply":  # a reply's next chunk
            named[-1] = ("reply", named[-1][1], ends)
        else:
            named.append((kind, starts, ends))
    return named


@pytest.mark.parametrize("reply_mode", ["play", "stream"])
def test_a_silent_caller_is_reprompted_then_told_goodbye_and_hung_up_on(phone_line, reply_mode):
    line = streaming_line(phone_line, reply_mode)
    result = line.carrier.place_call(SILENT_CALLER)
    assert result.error_codes == [] and result.said == []
    heard = spoken(line, result)
    assert [name for name, _, _ in heard] == [GREETING, FALLBACK, GOODBYE], \
        result.timeline_text()
    for (_, _, ended), (_, starts, _) in itertools.pairwise(heard):  # silence after each first
        assert starts - ended >= SILENCE_SEC - 3 * TICK
    assert result.timeline[-1]["who"] == "line" and result.timeline[-1]["text"] == "hangs up"
    assert result.duration < 60  # the line hung up, long before the caller would have
    assert [d["count"] for d in details(line, result.call_sid, "SILENT_TURN")] == [1, 2]
    call = line.store.get_call(result.call_sid)
    assert call["outcome"] == "silent-hangup" and call["silent_turns"] == 2
    silent = [t for t in line.store.turns(result.call_sid) if t["fallback"] == "silence"]
    assert [t["audio_url"] for t in silent] == [FALLBACK, GOODBYE]


@pytest.mark.parametrize("reply_mode", ["play", "stream"])
def test_a_caller_who_answers_the_reprompt_is_answered_and_their_silence_counts_anew(
        phone_line, reply_mode):
    line = streaming_line(phone_line, reply_mode)
    result = line.carrier.place_call(ANSWERS_THE_REPROMPT)
    assert result.error_codes == []
    heard = spoken(line, result)
    said = result.said[0]["t"]
    assert [name for name, _, _ in heard] == [GREETING, FALLBACK, "reply", FALLBACK, GOODBYE], \
        result.timeline_text()
    assert heard[1][2] <= said < heard[2][1]  # the question, after the re-prompt, answered
    answered = [t for t in line.store.turns(result.call_sid) if t["fallback"] != "silence"]
    assert answered and answered[0]["user_text"] and answered[0]["reply_text"]
    # the answer reset the count: two more silent turns before the goodbye
    assert [d["count"] for d in details(line, result.call_sid, "SILENT_TURN")] == [1, 1, 2]
    assert result.timeline[-1]["who"] == "line" and result.timeline[-1]["text"] == "hangs up"
    assert line.store.get_call(result.call_sid)["outcome"] == "silent-hangup"
