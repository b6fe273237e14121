"""OpenAI speech over the Realtime API, with the real `openai` client against the loopback
Realtime stand-in (tests/realtime_server.py): the engine, and what a caller hears through it."""

import datetime
import itertools
from concurrent.futures import ThreadPoolExecutor

import pytest
from openai import OpenAI

from ivr import audio
from ivr.config import ConfigError, Settings
from ivr.engines import EngineError, build_engines
from ivr.engines.base import TranscriptMismatch
from ivr.engines.openai_engines import OpenAITTS
from ivr.engines.openai_realtime import OpenAIRealtimeTTS, reads_as
from ivr.speakable import speakable

from ..conftest import make_settings, wait_until
from ..providers import CHUNKS, streamed_reply_provider  # noqa: F401 - the fixture
from ..realtime_server import CHARS_PER_AUDIO_SEC, RealtimeServer

TEXTS = ["כן, בשמחה,", "אנחנו פתוחים היום עד שש בערב.", "ביום שישי עד אחת בצהריים."]
QUESTION = "מה שעות הפתיחה שלכם?"
BEEP_SEC = 0.4  # the generated beep of last resort (no fallback_he.mp3 in a test's cache)


@pytest.fixture(name="realtime")
def realtime_server():
    server = RealtimeServer()
    yield server
    server.stop()


def engine_for(server: RealtimeServer, model: str = "gpt-realtime-2.1-mini",
               timeout: float = 30.0) -> OpenAIRealtimeTTS:
    client = OpenAI(api_key="sk-test-key-123456", base_url="http://127.0.0.1:9/v1",
                    websocket_base_url=server.url + "/v1", max_retries=0)
    return OpenAIRealtimeTTS(client, model, "marin", timeout)


def audio_bytes(text: str) -> int:
    """μ-law bytes of the stand-in's audio for `text` (8000 a second)."""
    return round(max(0.3, len(text) / CHARS_PER_AUDIO_SEC) * 1000) * 8


def sent(server: RealtimeServer, kind: str) -> list[dict]:
    return [e["event"] for e in server.log if e["dir"] == "in" and e["type"] == kind]


def responses_done(server: RealtimeServer) -> list[str]:
    return [e for e in server.log if e["dir"] == "out" and e["type"] == "response.done"]


# ---- the engine ------------------------------------------------------------------------------


def test_texts_are_read_as_mulaw_on_one_kept_session(realtime):
    engine = engine_for(realtime)
    for text in TEXTS:
        assert len(b"".join(engine.live(text))) == audio_bytes(text)
    assert realtime.connections == 1  # the handshake is paid once
    (update,) = sent(realtime, "session.update")
    output = update["session"]["audio"]["output"]
    assert output == {"format": {"type": "audio/pcmu"}, "voice": "marin"}
    assert update["session"]["reasoning"] == {"effort": "minimal"}
    assert "exactly" in update["session"]["instructions"]
    creates = [e["response"] for e in sent(realtime, "response.create")]
    assert [c["input"][0]["content"][0]["text"] for c in creates] == TEXTS
    assert {c["conversation"] for c in creates} == {"none"}  # out of band: no history kept
    assert {tuple(c["output_modalities"]) for c in creates} == {("audio",)}
    engine.close()


def test_synthesize_gives_an_mp3_of_the_whole_text(realtime):
    engine = engine_for(realtime)
    mp3 = engine.synthesize(TEXTS[1])
    assert mp3[:3] == b"ID3" or mp3[:2] == b"\xff\xfb"
    seconds = audio.duration_sec(audio.decode_to_pcm16(mp3))
    assert seconds == pytest.approx(audio_bytes(TEXTS[1]) / 8000, abs=0.1)


def test_closing_a_stream_early_cancels_its_response_and_keeps_the_session(realtime):
    realtime.hold_after = 2  # the response waits after two deltas: it is still in progress
    engine = engine_for(realtime)
    pieces = engine.live(TEXTS[1])
    audio_pieces = (piece for piece in pieces if piece)  # (empty ones: nothing came yet)
    assert next(audio_pieces) and next(audio_pieces)
    pieces.close()
    (cancel,) = sent(realtime, "response.cancel")
    created = [e for e in realtime.log if e["type"] == "response.created"]
    assert cancel["response_id"] == created[0]["response"]
    assert realtime.wait_for(lambda log: any(
        e["type"] == "response.done" for e in log))
    realtime.hold_after = None
    assert len(b"".join(engine.live(TEXTS[0]))) == audio_bytes(TEXTS[0])
    assert realtime.connections == 1 and sent(realtime, "response.cancel") == [cancel]


def test_a_voice_that_answers_instead_of_reading_is_caught(realtime):
    realtime.misbehave = "answer"
    engine = engine_for(realtime)
    with pytest.raises(TranscriptMismatch, match="instead of"):
        engine.synthesize("מה שעות הפתיחה?")
    heard = []
    with pytest.raises(TranscriptMismatch):
        for piece in engine.live("מה שעות הפתיחה?"):
            heard.append(piece)
    assert b"".join(heard)  # in a stream the audio went out first: the mismatch can only be told
    assert realtime.connections == 1  # a mismatch is no reason to drop the session


def test_the_transcript_check_allows_punctuation_and_niqqud_not_other_words():
    text = "כן, בשמחה! אנחנו פתוחים עד שש בערב, ובשישי עד אחת."
    assert reads_as(text, "כן בשמחה אנחנו פתוחים עד שש בערב ובשישי עד אחת")
    assert reads_as(text, "כֵּן, בְּשִׂמְחָה, אנחנו פתוחים עד שש בערב; ובשישי עד אחת")
    assert reads_as(text, "כן בשמחה אנחנו פתוחים עד 6 בערב ובשישי עד אחת")  # a word in ten
    assert not reads_as(text, "שלום! שמח לעזור, מה תרצה לדעת?")
    assert not reads_as("מה שעות הפתיחה?", "אנחנו פתוחים עד שש")


def test_a_voice_that_says_a_figure_the_text_does_not_has_not_read_it():
    text = "תספורת עולה שמונים שקלים, ושירות מלא מאתיים וחמישים שקלים."
    assert reads_as(text, "תספורת עולה שמונים שקלים ושירות מלא 250 שקלים")
    assert not reads_as(text, "תספורת עולה תשעים שקלים, ושירות מלא מאתיים וחמישים שקלים.")
    hours = "אנחנו פתוחים עד שש בערב, ובשישי עד שמונה וחצי."
    assert reads_as(hours, "אנחנו פתוחים עד 6 בערב ובשישי עד שמונה וחצי")  # the same hours
    assert not reads_as(hours, "אנחנו פתוחים עד שבע בערב, ובשישי עד שמונה וחצי.")


@pytest.mark.parametrize("model, today", [("gpt-realtime-mini", datetime.date(2027, 1, 20)),
                                          ("gpt-realtime-9", None)])
def test_a_retired_or_unknown_model_is_an_engine_error(model, today):
    server = RealtimeServer(today=today)
    try:
        with pytest.raises(EngineError, match="model_not_found"):
            engine_for(server, model).synthesize(TEXTS[0])
        assert not sent(server, "response.create")
    finally:
        server.stop()


def test_a_model_the_sdk_still_lists_works_until_its_shutdown_day():
    server = RealtimeServer(today=datetime.date(2027, 1, 19))
    try:
        engine = engine_for(server, "gpt-realtime-mini")
        assert engine.synthesize(TEXTS[0])
        (update,) = sent(server, "session.update")
        assert "reasoning" not in update["session"]  # only the gpt-realtime-2 family reasons
    finally:
        server.stop()


def test_a_session_closed_by_the_service_between_texts_is_replaced(realtime):
    engine = engine_for(realtime)
    assert b"".join(engine.live(TEXTS[0]))
    realtime.close_all()  # the kept session expires while idle
    assert realtime.wait_for(lambda log: not realtime.open)
    assert len(b"".join(engine.live(TEXTS[1]))) == audio_bytes(TEXTS[1])
    assert realtime.connections == 2


def test_a_connection_lost_midway_and_a_stalled_response_are_engine_errors(realtime):
    realtime.drop_after = 2
    engine = engine_for(realtime)
    heard = []
    with pytest.raises(EngineError, match="connection"):
        for piece in engine.live(TEXTS[1]):
            heard.append(piece)
    assert len(b"".join(heard)) == 2 * 1600  # two deltas of 0.2 s
    realtime.drop_after = None
    assert engine.synthesize(TEXTS[0])  # a new session, kept
    realtime.stall, engine.timeout = True, 2.0  # responses are created, then nothing comes
    with pytest.raises(EngineError, match="stalled"):
        engine.synthesize(TEXTS[0])


def test_the_stand_in_refuses_what_the_service_refuses(realtime):
    client = OpenAI(api_key="sk-test-key-123456", base_url="http://127.0.0.1:9/v1",
                    websocket_base_url=realtime.url + "/v1", max_retries=0)
    with client.realtime.connect(model="gpt-realtime-2.1-mini") as connection:
        assert connection.recv().type == "session.created"
        refusals = [  # (the event, the error's code and param)
            ({"type": "session.update", "session": {"type": "realtime", "audio": {
                "output": {"format": {"type": "audio/mp3"}}}}},
             ("invalid_value", "session.audio.output.format.type")),
            ({"type": "session.update", "session": {"type": "realtime", "speed": 2}},
             ("unknown_parameter", "session.speed")),
            ({"type": "session.update", "session": {"type": "realtime", "audio": {
                "output": {"voice": "nova"}}}}, ("invalid_value", "session.audio.output.voice")),
            ({"type": "response.create", "response": {"conversation": "none", "input": [
                {"type": "message", "role": "user", "content": [{"type": "text"}]}]}},
             ("invalid_value", "response.input.0.content.0.type")),
            ({"type": "response.cancel", "response_id": "resp_none"},
             ("response_cancel_not_active", None)),
            ({"type": "response.speak"}, ("invalid_value", "type"))]
        for event, (code, param) in refusals:
            connection.send(event)
            answer = connection.recv()
            assert answer.type == "error", event
            assert answer.error.type == "invalid_request_error" and answer.error.message
            assert (answer.error.code, answer.error.param) == (code, param)
    without_key = OpenAI(api_key="", base_url="http://127.0.0.1:9/v1",
                         websocket_base_url=realtime.url + "/v1", max_retries=0,
                         _enforce_credentials=False)
    with pytest.raises(Exception, match="401"):
        without_key.realtime.connect(model="gpt-realtime-2.1-mini").enter()


# ---- choosing the engine ---------------------------------------------------------------------


def test_the_openai_speech_engine_follows_the_model_family(tmp_path, realtime):
    base = make_settings(tmp_path).replace(openai_api_key="sk-test-key-123456",
                                           openai_base_url="http://127.0.0.1:9/v1",
                                           tts_engine="openai")
    assert Settings().openai_tts_model == "gpt-realtime-2.1-mini"
    chosen = build_engines(base.replace(openai_websocket_base_url=realtime.url + "/v1")).tts
    assert isinstance(chosen, OpenAIRealtimeTTS) and chosen.voice == "marin"
    assert chosen.synthesize(TEXTS[0]) and realtime.connections == 1
    for model in ("gpt-4o-mini-tts", "tts-1", "kokoro"):  # /v1/audio/speech, or a compatible one
        assert isinstance(build_engines(base.replace(openai_tts_model=model)).tts, OpenAITTS)


def test_the_websocket_base_url_must_be_a_websocket_url(tmp_path):
    env = {"PUBLIC_BASE_URL": "https://line.example.com", "VAR_DIR": str(tmp_path / "var"),
           "TWILIO_ACCOUNT_SID": "AC" + "1" * 32, "TWILIO_AUTH_TOKEN": "t" * 32}
    with pytest.raises(ConfigError, match="OPENAI_WEBSOCKET_BASE_URL"):
        Settings.from_env({**env, "OPENAI_WEBSOCKET_BASE_URL": "https://api.example.com/v1"})
    settings = Settings.from_env({**env, "OPENAI_WEBSOCKET_BASE_URL": "wss://rt.example.com/v1/"})
    assert settings.openai_websocket_base_url == "wss://rt.example.com/v1"


# ---- calls through the emulator --------------------------------------------------------------


def realtime_line(phone_line, provider, realtime, **changes):
    """The default OpenAI engines: chat and transcription on the HTTP stand-in, speech on the
    Realtime one."""
    return phone_line(asr_engine="openai", llm_engine="openai", tts_engine="openai",
                      openai_api_key="sk-test-key-123456", openai_base_url=provider.url + "/v1",
                      openai_websocket_base_url=realtime.url + "/v1", turn_mode="stream",
                      resp_min_delay_ms=0, resp_max_delay_ms=0, **changes)


def read_aloud(realtime) -> list[str]:
    return [c["response"]["input"][0]["content"][0]["text"]
            for c in sent(realtime, "response.create")]


def the_turn(line, call_sid) -> dict:
    return wait_until(lambda: line.store.turns(call_sid))[0]


def events_of(line, call_sid, kind: str) -> list[dict]:
    return [e["detail"] for e in line.store.events(call_sid) if e["kind"] == kind]


def streamed(result) -> list[dict]:
    return [h for h in result.heard if h["kind"] == "stream"]


def chunk_seconds(texts) -> float:
    """How long the stand-in's audio of these chunks lasts (each chunk's frames padded)."""
    return sum(-(-audio_bytes(speakable(t)) // 160) * 0.02 for t in texts)


@pytest.mark.parametrize("mode", ["play", "action", "stream"])
def test_a_call_hears_the_whole_reply_read_by_the_realtime_voice(phone_line, provider, realtime,
                                                                   mode):
    speed = 1.0 if mode == "stream" else 10.0  # streamed frames play in call time
    line = realtime_line(phone_line, provider, realtime, reply_mode=mode, speed=speed)
    result = line.carrier.place_call({"steps": [{"say": QUESTION}], "end": "hangup"})
    assert result.error_codes == []
    turn = the_turn(line, result.call_sid)
    names = turn["audio_url"].split()
    assert turn["fallback"] == "" and turn["reply_text"] == " ".join(CHUNKS)
    assert len(names) == len(CHUNKS) and all(line.runtime.cache.path(n).is_file() for n in names)
    assert sorted(read_aloud(realtime)) == sorted(speakable(c) for c in CHUNKS)  # each once
    assert realtime.connections <= len(CHUNKS)  # a session per chunk made at once, at most
    if mode == "stream":
        (reply,) = streamed(result)
        assert reply["duration"] == pytest.approx(chunk_seconds(CHUNKS), abs=0.05)
    else:
        plays = [h["url"].rsplit("/", 1)[-1] for h in result.heard if h["kind"] == "play"]
        assert plays == names


def test_streamed_speech_is_heard_before_its_synthesis_ends_then_comes_from_the_cache(
        phone_line, provider, realtime):
    realtime.hold_after = 2  # every response stops after two deltas until the test says go
    line = realtime_line(phone_line, provider, realtime, reply_mode="stream", speed=1.0,
                         tts_timeout_sec=120)
    with ThreadPoolExecutor(1) as pool:
        call = pool.submit(line.carrier.place_call, {"steps": [{"say": QUESTION}],
                                                     "end": "hangup"})
        (call_sid,) = wait_until(lambda: list(line.carrier.calls))
        streams = line.carrier.calls[call_sid].result.streams
        wait_until(lambda: any(s["received"] for s in streams))  # the caller hears the reply
        assert not responses_done(realtime)  # while no chunk's synthesis has ended
        realtime.release.set()
        result = call.result()
    turn = the_turn(line, result.call_sid)
    assert turn["fallback"] == "" and len(turn["audio_url"].split()) == len(CHUNKS)
    timings = line.store.turns(result.call_sid)[0]
    assert timings["first_audio_ms"] is not None
    made = len(sent(realtime, "response.create"))
    again = line.carrier.place_call({"steps": [{"say": QUESTION}], "end": "hangup"})
    assert len(sent(realtime, "response.create")) == made  # every chunk a cache hit now
    (reply,) = streamed(again)
    assert reply["duration"] == pytest.approx(chunk_seconds(CHUNKS), abs=0.05)


def test_a_barge_in_stops_the_frames_and_cancels_the_realtime_responses(phone_line, provider,
                                                                        realtime):
    realtime.hold_after = 8  # the first chunk is made whole, the others stop after 1.6 s
    provider.transcript = itertools.cycle([QUESTION, "רגע, רציתי לשאול על מחירים"])
    line = realtime_line(phone_line, provider, realtime, reply_mode="stream", speed=1.0,
                         tts_timeout_sec=120)  # so a stall timeout cannot be what cancels
    script = {"steps": [{"say": QUESTION}, {"barge_in": "רגע, רציתי לשאול על מחירים",
                                            "after": 1.0}], "end": "hangup"}  # in chunk 2
    result = line.carrier.place_call(script, speed=1.0)
    assert result.error_codes == [] and result.streams[0]["clears"] == 1
    held = len(CHUNKS) - 1  # the chunks still being made when the caller spoke
    assert realtime.wait_for(lambda log: sum(
        e["type"] == "response.cancel" for e in log) >= held, 30)
    cancelled = {e["response"] for e in responses_done(realtime) if e["status"] == "cancelled"}
    assert {c["response_id"] for c in sent(realtime, "response.cancel")} <= cancelled
    tts = line.runtime.engines.tts
    assert line.runtime.cache.find(tts, CHUNKS[0]) is not None  # whole: kept
    assert all(line.runtime.cache.find(tts, c) is None for c in CHUNKS[1:])  # cut: not kept
    history = line.runtime.calls.history(result.call_sid)  # what was heard of chunk 2, cut
    assert history[1]["role"] == "assistant" and history[1]["text"].startswith(CHUNKS[0])
    assert history[1]["text"].endswith("…")


@pytest.mark.parametrize("mode", ["play", "stream"])
def test_a_retired_realtime_model_gives_the_fallback_sound(phone_line, provider, mode):
    retired = RealtimeServer(today=datetime.date(2027, 1, 20))  # its shutdown day in the SDK
    try:
        line = realtime_line(phone_line, provider, retired, reply_mode=mode,
                             openai_tts_model="gpt-realtime-mini",
                             speed=1.0 if mode == "stream" else 10.0)
        result = line.carrier.place_call({"steps": [{"say": QUESTION}], "end": "hangup"})
    finally:
        retired.stop()
    assert result.error_codes == []
    assert the_turn(line, result.call_sid)["fallback"] == "tts-error"
    errors = events_of(line, result.call_sid, "TTS_ERR")
    assert errors and all("model_not_found" in e["err"] for e in errors)
    if mode == "play":
        assert [h["url"].rsplit("/", 1)[-1] for h in result.heard] == ["beep.mp3"]
    else:
        (reply,) = streamed(result)
        assert reply["duration"] == pytest.approx(BEEP_SEC, abs=0.05)


def test_a_stream_lost_midway_ends_with_the_fallback_sound(phone_line, provider, realtime):
    realtime.drop_after = 3  # every chunk's connection is cut after 0.6 s of its audio
    line = realtime_line(phone_line, provider, realtime, reply_mode="stream", speed=1.0)
    result = line.carrier.place_call({"steps": [{"say": QUESTION}], "end": "hangup"})
    assert result.error_codes == []
    turn = the_turn(line, result.call_sid)
    assert turn["fallback"] == "tts-error" and turn["audio_url"].split()[-1] == "beep.mp3"
    first = events_of(line, result.call_sid, "TTS_ERR")[0]
    assert first["streamed_bytes"] > 0 and "connection" in first["err"]
    (reply,) = streamed(result)  # what was made of the first chunk, then the beep: no silence
    assert reply["duration"] == pytest.approx(0.6 + BEEP_SEC, abs=0.05)


@pytest.mark.parametrize("mode", ["play", "stream"])
def test_a_voice_that_answers_is_told_and_never_cached(phone_line, provider, realtime, mode):
    realtime.misbehave = "answer"
    line = realtime_line(phone_line, provider, realtime, reply_mode=mode,
                         speed=1.0 if mode == "stream" else 10.0)
    result = line.carrier.place_call({"steps": [{"say": QUESTION}], "end": "hangup"})
    assert result.error_codes == []
    turn = the_turn(line, result.call_sid)
    tts = line.runtime.engines.tts
    assert all(line.runtime.cache.find(tts, c) is None for c in CHUNKS)
    if mode == "play":  # the file is refused before anyone hears it: the fallback instead
        assert turn["fallback"] == "tts-error"
        errors = events_of(line, result.call_sid, "TTS_ERR")
        assert errors and all("TranscriptMismatch" in e["err"] for e in errors)
        assert [h["url"].rsplit("/", 1)[-1] for h in result.heard] == ["beep.mp3"]
    else:  # heard as it was made: the line can only tell the owner
        assert turn["fallback"] == ""
        assert len(events_of(line, result.call_sid, "TTS_MISMATCH")) == len(CHUNKS)
        assert streamed(result)
