"""Fast turns through the emulator: replies streamed chunk by chunk in every REPLY_MODE,
barge-in mid-reply, an LLM that breaks off, a late chunk, and a cached multi-sentence reply."""

import itertools
from concurrent.futures import ThreadPoolExecutor

import pytest

from ivr import audio
from ivr.phrases import LLM_FALLBACK

from .conftest import wait_until
from .providers import (  # noqa: F401 - streamed_reply_provider: the fixture
    CHUNKS,
    REPLY,
    SPEECH_API_LAST_DAY,
    streamed_reply_provider,
)

QUESTION = "מה שעות הפתיחה שלכם?"


def openai_line(phone_line, provider, **changes):
    """The OpenAI engines, speech on /v1/audio/speech (test_openai_realtime: the Realtime API)
    as OpenAI serves it on its last day."""
    provider.today = SPEECH_API_LAST_DAY
    return phone_line(asr_engine="openai", llm_engine="openai", tts_engine="openai",
                      openai_tts_model="gpt-4o-mini-tts",
                      openai_api_key="sk-test-key-123456", openai_base_url=provider.url + "/v1",
                      turn_mode="stream", resp_min_delay_ms=0, resp_max_delay_ms=0, **changes)


def spoken(provider) -> list[str]:
    return [r["json"]["input"] for r in provider.requests if r["path"] == "/v1/audio/speech"]


def kinds(line, call_sid) -> list[str]:
    return [e["kind"] for e in line.store.events(call_sid)]


def seconds_of(line, names: list[str]) -> float:
    """How long these cached MP3s sound (decoded, as the stream sends them)."""
    cache = line.runtime.cache
    return sum(audio.duration_sec(audio.decode_to_pcm16(cache.path(n).read_bytes()))
               for n in names)


def the_turn(line, call_sid) -> dict:
    """The call's one turn, once recorded (the record follows the reply's delivery)."""
    return wait_until(lambda: line.store.turns(call_sid))[0]


@pytest.mark.parametrize("mode", ["play", "action", "stream"])
def test_a_streamed_reply_is_heard_whole_chunk_by_chunk(phone_line, provider, mode):
    speed = 1.0 if mode == "stream" else 10.0  # frames play in call time: real time, as Twilio
    line = openai_line(phone_line, provider, reply_mode=mode, speed=speed)
    result = line.carrier.place_call({"steps": [{"say": QUESTION}], "end": "hangup"})
    assert result.error_codes == []
    turn = the_turn(line, result.call_sid)
    names = turn["audio_url"].split()
    assert len(CHUNKS) >= 4 and len(names) == len(CHUNKS) and turn["fallback"] == ""
    assert turn["reply_text"] == " ".join(CHUNKS)
    assert sorted(t for t in spoken(provider) if t in CHUNKS) == sorted(CHUNKS)  # each once
    assert turn["first_audio_ms"] is not None and 0 < turn["first_audio_ms"]
    if mode == "stream":
        (reply,) = [h for h in result.heard if h["kind"] == "stream"]  # no gap between chunks
        assert reply["duration"] == pytest.approx(seconds_of(line, names), abs=0.1)
    else:
        plays = [h["url"].rsplit("/", 1)[-1] for h in result.heard if h["kind"] == "play"]
        assert plays == names  # in order, nothing twice, nothing skipped


def test_barge_in_mid_reply_stops_it_and_keeps_only_what_was_heard(phone_line, provider):
    provider.speech_chars_per_sec = 14  # Hebrew speech rate: the reply lasts ~11 s
    provider.transcript = itertools.cycle([QUESTION, "רגע, רציתי לשאול על מחירים"])
    line = openai_line(phone_line, provider, reply_mode="stream", speed=1.0)
    script = {"steps": [{"say": QUESTION}, {"barge_in": "רגע, רציתי לשאול על מחירים",
                                            "after": 1.5}], "end": "hangup"}
    result = line.carrier.place_call(script, speed=1.0)
    assert result.error_codes == [] and result.streams[0]["clears"] == 1
    first = line.store.turns(result.call_sid)[0]
    names = first["audio_url"].split()
    whole = sum(line.runtime.cache.duration(name) for name in names)
    assert result.heard[0]["duration"] < whole - 1.0  # the rest of the reply was not played
    history = line.runtime.calls.history(result.call_sid)
    heard_reply = history[1]["text"]
    assert history[1]["role"] == "assistant" and heard_reply.endswith("…")
    words = heard_reply.rstrip(" …").split()
    assert 0 < len(words) < len(REPLY.split()) and REPLY.split()[:len(words)] == words
    replies = [r for r in provider.requests  # streamed: the replies, not the call's summary
               if r["path"] == "/v1/chat/completions" and r["json"].get("stream")]
    sent_to_llm = replies[-1]["json"]["messages"]
    assert {"role": "assistant", "content": heard_reply} in sent_to_llm


@pytest.mark.parametrize("mode", ["play", "stream"])
def test_an_llm_that_breaks_off_is_followed_by_the_fallback_phrase(phone_line, provider, mode):
    provider.chat_breaks_after = 30  # after the first chunk ("כן, בשמחה,") is written
    line = openai_line(phone_line, provider, reply_mode=mode,
                       speed=1.0 if mode == "stream" else 10.0)
    result = line.carrier.place_call({"steps": [{"say": QUESTION}], "end": "hangup"})
    assert result.error_codes == []
    turn = the_turn(line, result.call_sid)
    assert turn["fallback"] == "llm-error" and "LLM_ERR" in kinds(line, result.call_sid)
    assert turn["reply_text"] == f"{CHUNKS[0]} {LLM_FALLBACK}"
    names = turn["audio_url"].split()
    assert len(names) == 2
    if mode == "play":
        plays = [h["url"].rsplit("/", 1)[-1] for h in result.heard if h["kind"] == "play"]
        assert plays == names  # the first chunk, then the fallback phrase: never silence
    else:
        (reply,) = [h for h in result.heard if h["kind"] == "stream"]
        assert reply["duration"] == pytest.approx(seconds_of(line, names), abs=0.1)


@pytest.mark.parametrize("mode", ["play", "action"])
def test_a_continuation_that_comes_before_its_chunk_waits_for_it(phone_line, provider, mode):
    provider.held_speech = CHUNKS[1]  # the second chunk's speech waits for the test
    line = openai_line(phone_line, provider, reply_mode=mode)
    with ThreadPoolExecutor(1) as pool:
        call = pool.submit(line.carrier.place_call, {"steps": [{"say": QUESTION}],
                                                     "end": "hangup"})
        (call_sid,) = wait_until(lambda: list(line.carrier.calls))

        def continuation_asked() -> bool:
            return any(e["kind"] == "WEBHOOK" and e["detail"].get("route") ==
                       "/webhook/reply_continue" for e in line.store.events(call_sid))
        wait_until(continuation_asked)
        provider.speech_go.set()
        result = call.result()
    assert result.error_codes == []
    turn = the_turn(line, result.call_sid)
    plays = [h["url"].rsplit("/", 1)[-1] for h in result.heard if h["kind"] == "play"]
    assert turn["fallback"] == "" and plays == turn["audio_url"].split()
    assert len(plays) == len(CHUNKS) and "REPLY_CONTINUE" in kinds(line, call_sid)
    assert "REPLY_LATE" not in kinds(line, call_sid)


def test_a_cached_multi_sentence_reply_is_played_at_once_with_no_synthesis(phone_line,
                                                                          provider):
    line = openai_line(phone_line, provider, reply_mode="play")
    line.carrier.place_call({"steps": [{"say": QUESTION}], "end": "hangup"})
    before = len(spoken(provider))
    result = line.carrier.place_call({"steps": [{"say": QUESTION}], "end": "hangup"})
    assert result.error_codes == [] and len(spoken(provider)) == before  # all from the cache
    turn = the_turn(line, result.call_sid)
    plays = [h["url"].rsplit("/", 1)[-1] for h in result.heard if h["kind"] == "play"]
    assert plays == turn["audio_url"].split() and len(plays) == len(CHUNKS)
