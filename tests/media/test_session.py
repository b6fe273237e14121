"""The live stream path end to end with the emulator: three reply modes, barge-in, bad input."""

import audioop
import base64
import io
import itertools
import json
import threading
import time
import wave

import pytest
import websocket

from ivr import audio, twiml
from ivr.media.turns import StreamTurns
from ivr.sim.script import first_barge_frame, voice_ulaw

from ..conftest import AUTH_TOKEN, sign
from ..livehelpers import wait_until

FAKES = {"asr_engine": "fake", "llm_engine": "fake", "tts_engine": "fake", "turn_mode": "stream"}


def kinds(line, call_sid):
    return [e["kind"] for e in line.store.events(call_sid)]


def line_for(phone_line, **changes):
    line = phone_line(**{**FAKES, **changes})
    return line


def test_play_mode_every_turn_is_a_new_websocket_and_history_carries_over(phone_line):
    line = line_for(phone_line, reply_mode="play")
    result = line.carrier.place_call("three_turns")
    assert result.error_codes == []
    turns = [s["params"]["turn"] for s in result.connects]
    assert turns == ["1", "2", "3", "4"]
    assert [s["params"]["turn"] for s in result.forks] == ["2", "3", "4"]  # over each reply
    assert {s["params"]["call_sid"] for s in result.streams} == {result.call_sid}
    assert [h["kind"] for h in result.heard] == ["play"] * 3
    assert kinds(line, result.call_sid).count("PING_PONG_TX") == 3
    history = line.store.history(result.call_sid)
    replies = [m["text"] for m in history if m["role"] == "assistant"]
    assert [r.split(":")[0] for r in replies] == ["תשובה 1", "תשובה 2", "תשובה 3"]
    rows = line.store.turns(result.call_sid)
    assert [r["turn"] for r in rows] == [1, 2, 3] and all(r["tts_ms"] is not None for r in rows)
    updates = [r for r in result.requests if r["direction"] == "in"]
    assert len(updates) == 3 and all(r["status"] == 200 for r in updates)


def test_action_mode_closes_the_socket_and_stream_ended_answers(phone_line):
    line = line_for(phone_line, reply_mode="action")
    result = line.carrier.place_call("three_turns")
    assert result.error_codes == []
    assert [h["kind"] for h in result.heard] == ["play"] * 3
    assert len(result.requests_to("/webhook/stream_ended")) == 3
    assert [r for r in result.requests if r["direction"] == "in"] == []  # no REST at all
    assert [s["closed_by"] for s in result.streams[:3]] == ["app"] * 3


def test_play_mode_falls_back_to_action_when_calls_update_fails(phone_line):
    line = line_for(phone_line, reply_mode="play",
                    twilio_api_base_url="http://127.0.0.1:9")  # nothing listens there
    result = line.carrier.place_call({"steps": [{"say": "שלום"}], "end": "hangup"})
    events = kinds(line, result.call_sid)
    assert "PING_PONG_FAIL" in events and "ACTION_DELIVERY" in events
    assert [h["kind"] for h in result.heard] == ["play"]
    fail = [e for e in line.store.events(result.call_sid) if e["kind"] == "PING_PONG_FAIL"][0]
    assert "Connection" in fail["detail"]["err"] or "connect" in fail["detail"]["err"].lower()


def test_stream_mode_three_turns_on_one_socket_with_marks(phone_line):
    line = line_for(phone_line, reply_mode="stream")
    result = line.carrier.place_call("three_turns")
    assert result.error_codes == [] and len(result.streams) == 1
    assert [h["kind"] for h in result.heard] == ["stream"] * 3
    assert result.streams[0]["marks"] == ["reply-2", "reply-3", "reply-4"]
    replies = [m["text"] for m in line.store.history(result.call_sid) if m["role"] == "assistant"]
    assert len(replies) == 3
    assert kinds(line, result.call_sid).count("STREAM_REPLY") == 3


def test_a_yes_said_right_after_the_replys_mark_is_heard_whole_and_answered(phone_line):
    """The caller answers "כן" (0.4 s of speech) as soon as the reply has played (the 0.2 s of
    quiet that tells the caller it is over): the line hears all of it and answers; nothing it
    heard is dropped. Before, the 750 ms refractory from the mark swallowed it whole."""
    line = line_for(phone_line, reply_mode="stream")
    script = {"steps": [{"say": "שלום, מה שעות הפתיחה שלכם?"}, {"say": "כן", "think": 0}],
              "end": "hangup", "reply_timeout": 5}
    result = line.carrier.place_call(script)
    assert result.said[1]["t"] - result.heard[0]["end"] <= 0.25  # right after the mark
    assert [h["kind"] for h in result.heard] == ["stream", "stream"]
    assert result.streams[0]["marks"] == ["reply-2", "reply-3"]
    yes = [f for f in audio.frames_of(voice_ulaw("כן")) if audio.rms(audio.ulaw_to_pcm16(f))]
    heard = line.runtime.engines.asr.heard
    assert heard[-1] >= len(yes) * audio.FRAME_SEC  # its start was not lost (an early request
    # may have gone at the comma after "שלום", EARLY_ASR_SEC, and been dropped)
    replies = [m["text"] for m in line.store.history(result.call_sid) if m["role"] == "assistant"]
    assert replies[1].startswith("תשובה 2")
    assert "UTTERANCE_DROPPED" not in kinds(line, result.call_sid)


def test_a_yes_said_as_the_next_stream_opens_is_heard_whole(phone_line):
    """REPLY_MODE=play: the answer comes on a fresh stream, from its first frames."""
    line = line_for(phone_line, reply_mode="play")
    script = {"steps": [{"say": "שלום, מה שעות הפתיחה שלכם?"}, {"say": "כן", "think": 0}],
              "end": "hangup", "reply_timeout": 5}
    result = line.carrier.place_call(script)
    assert result.said[1]["t"] - result.connects[1]["opened"] <= 0.5  # at its first frames
    yes = [f for f in audio.frames_of(voice_ulaw("כן")) if audio.rms(audio.ulaw_to_pcm16(f))]
    heard = line.runtime.engines.asr.heard
    assert heard[-1] >= len(yes) * audio.FRAME_SEC
    assert [h["kind"] for h in result.heard] == ["play", "play"]


def test_barge_in_clears_the_reply_and_the_caller_is_heard(phone_line):
    """The caller talks over a reply: the line sends `clear` (only once the caller's voice has
    started), the caller hears less than the whole reply, and ASR gets the whole sentence.
    How fast the clear comes is a latency figure: `make bench-barge` measures it."""
    line = line_for(phone_line, reply_mode="stream", speed=1.0, resp_min_delay_ms=0,
                    resp_max_delay_ms=0)
    line.runtime.engines.llm.delay = 0
    # A long first transcript makes a 3 s reply (the fake TTS's longest): the clear has that
    # long to come; the reply to the barge-in is short.
    line.runtime.engines.asr.texts = itertools.cycle(
        ["שאלה " + "על שעות הפתיחה ועל המחירים של השירות " * 4, "מחירים"])
    sentence = "רגע, בעצם רציתי לשאול על מחירים"
    script = {"steps": [{"say": "שלום, מה שעות הפתיחה שלכם?"},
                        {"barge_in": sentence, "after": 0.3}], "end": "hangup"}
    result = line.carrier.place_call(script, speed=1.0)
    stream = result.streams[0]
    assert stream["clears"] == 1 and "BARGE_IN" in kinds(line, result.call_sid)
    spoke_at = result.said[1]["t"]
    third_voiced_at = spoke_at + (first_barge_frame(sentence) + 1) * audio.FRAME_SEC
    assert stream["clears_at"][0] >= third_voiced_at  # caused by the caller's voice
    first_reply = line.store.turns(result.call_sid)[0]["audio_url"].split()
    whole = sum(line.runtime.cache.duration(name) for name in first_reply)
    assert whole >= 2.9
    assert result.heard[0]["kind"] == "stream" and result.heard[0]["duration"] < whole
    heard = line.runtime.engines.asr.heard
    spoken = audio.duration_sec(audio.ulaw_to_pcm16(voice_ulaw(sentence)))
    assert any(abs(seconds - spoken) < 0.5 for seconds in heard), (heard, spoken)


def test_echo_mode_sends_the_callers_audio_back(phone_line):
    line = line_for(phone_line, ws_mode="ECHO")
    result = line.carrier.place_call({"steps": [{"say": "בדיקה אחת שתיים"}], "end": "hangup",
                                      "reply_timeout": 2})
    stream = result.streams[0]
    assert 50 < stream["received"] <= stream["sent"]
    # The caller hears itself: the line's track carries all of the caller's audio (the echo's
    # lag only shifts it), where a count of frames in flight at the hang-up would be a race.
    with wave.open(io.BytesIO(result.wav)) as parsed:
        frames = parsed.readframes(parsed.getnframes())
    caller, echoed = audioop.tomono(frames, 2, 1, 0), audioop.tomono(frames, 2, 0, 1)
    assert audioop.rms(echoed, 2) >= 0.9 * audioop.rms(caller, 2) > 0
    done = [e for e in line.store.events(result.call_sid) if e["kind"] == "WS_DONE"][0]
    assert done["detail"]["rx"] > 50 and done["detail"]["tx"] > 50


def test_markers_of_a_stream(phone_line):
    line = line_for(phone_line, reply_mode="play")
    result = line.carrier.place_call({"steps": [{"say": "שלום, מה שעות הפתיחה שלכם?"}]})
    events = line.store.events(result.call_sid)
    first = [e["detail"] for e in events if e["kind"] == "WS_START"][0]
    assert first["turn"] == 1 and first["mode"] == "AI" and first["sid"].startswith("MZ")
    assert any(e["kind"] == "WS_MEDIA" and e["detail"]["rx"] == 50 for e in events)
    assert any(e["kind"] == "ASR_TEXT" for e in events)
    done = [e["detail"] for e in events if e["kind"] == "WS_DONE"][0]
    assert done["rx"] > 50 and done["tx"] == 0


# ---- raw WebSocket clients ---------------------------------------------------------------


def open_ws(line, signed=True, subprotocol=None):
    wss = twiml.stream_url(line.url)
    headers = [f"X-Twilio-Signature: {sign(wss if signed else wss + '-elsewhere', {})}"]
    options = {"header": headers, "timeout": 5}
    if subprotocol:
        options["subprotocols"] = [subprotocol]
    return websocket.create_connection(line.url.replace("http", "ws") + "/ws/twilio-media",
                                       **options)


STREAM = "MZ" + "5" * 32


def start_message(call_sid, turn=1, token=None):
    token = token or twiml.stream_token(AUTH_TOKEN, call_sid, turn)
    return json.dumps({"event": "start", "sequenceNumber": "1", "streamSid": STREAM,
                       "start": {"streamSid": STREAM, "callSid": call_sid,
                                 "customParameters": {"call_sid": call_sid, "turn": str(turn),
                                                      "token": token}}})


def media_message(frame=b"\xff" * 160):
    return json.dumps({"event": "media", "streamSid": STREAM,
                       "media": {"track": "inbound", "chunk": "1", "timestamp": "0",
                                 "payload": base64.b64encode(frame).decode()}})


CALL = "CA" + "e" * 32


def test_subprotocol_is_echoed_only_when_offered(phone_line):
    line = line_for(phone_line)
    offered = open_ws(line, subprotocol="audio.twilio.com")
    assert offered.getsubprotocol() == "audio.twilio.com"
    offered.close()
    plain = open_ws(line)
    assert plain.getsubprotocol() is None
    plain.close()


def closed_with(ws) -> tuple[int, str]:
    """Read until the server's close frame: (code, reason)."""
    while True:
        opcode, data = ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return int.from_bytes(data[:2], "big"), data[2:].decode()


def test_a_wrongly_signed_upgrade_is_refused_with_403_before_101_and_counted_not_stored(
        phone_line):
    line = line_for(phone_line)
    for _ in range(30):
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            open_ws(line, signed=False)
        assert refused.value.status_code == 403
    rows = [e for e in line.store.events("") if e["kind"] == "WS_REJECTED"]
    assert len(rows) == 1 and rows[0]["detail"]["stage"] == "handshake"
    line.runtime.rejections.close()  # the minute is over: one summary row
    rows = [e["detail"] for e in line.store.events("") if e["kind"] == "WS_REJECTED"]
    assert len(rows) == 2 and rows[1]["count"] == 30 and rows[1]["sources"] == {"127.0.0.1": 30}


def test_a_bad_stream_token_closes_with_1008(phone_line):
    line = line_for(phone_line)
    ws = open_ws(line)
    ws.send(start_message(CALL, token="0" * 32))
    assert closed_with(ws)[0] == 1008


@pytest.mark.parametrize("ended,call_turn", [(True, 1), (False, 3)])
def test_a_token_is_good_only_while_its_call_is_live_and_on_its_turn(phone_line, ended,
                                                                       call_turn):
    line = line_for(phone_line)
    line.store.ensure_call(CALL, turn=call_turn, ended=ended)
    ws = open_ws(line)
    ws.send(start_message(CALL, turn=1))  # a genuine token of turn 1
    assert closed_with(ws) == (1008, "call ended or moved on")
    assert "WS_START" not in kinds(line, CALL)


def test_a_hang_up_that_lands_before_the_start_is_recorded_is_no_rejection(phone_line):
    """The caller hung up after the stream's `start` came but before the line recorded it
    (the start's threads were busy): the socket is closed, nothing is logged as rejected."""
    line = line_for(phone_line)
    line.store.ensure_call(CALL, turn=1, ended=True, ended_at=time.time() + 3600)
    ws = open_ws(line)
    ws.send(start_message(CALL, turn=1))
    assert closed_with(ws) == (1000, "call ended")
    assert "WS_REJECTED" not in kinds(line, CALL) and "WS_START" not in kinds(line, CALL)


def test_a_socket_that_never_starts_is_closed(phone_line):
    line = line_for(phone_line)
    ws = open_ws(line)
    opened = time.monotonic()
    ws.settimeout(60)
    assert closed_with(ws) == (1008, "no start in time")
    assert time.monotonic() - opened >= 4.5  # START_DEADLINE_SEC, not sooner


def test_a_started_socket_that_goes_quiet_is_closed(phone_line):
    line = line_for(phone_line, no_media_timeout_sec=0.5)
    line.store.ensure_call(CALL, turn=1, turn_mode="stream")
    ws = open_ws(line)
    ws.send(start_message(CALL))
    ws.settimeout(60)
    assert closed_with(ws) == (1008, "no message for 5.5 s")
    assert "WS_IDLE_CLOSED" in kinds(line, CALL)


@pytest.mark.parametrize("call_sid", [
    "CA" + "e" * 32 + "\n2026-01-01 00:00:00 INFO WATCHDOG_REDIRECT_OK call=CA" + "f" * 32,
    "CA" + "e" * 5_000, "not-a-call"])
def test_a_forged_call_sid_is_refused_and_forges_no_log_line(phone_line, caplog, call_sid):
    line = line_for(phone_line)
    ws = open_ws(line)
    ws.send(start_message(call_sid))
    assert closed_with(ws)[0] == 1008
    assert not any(r.getMessage().count("\n") for r in caplog.records)
    assert not any("WATCHDOG_REDIRECT_OK" in r.getMessage().split(" ", 1)[0]
                   for r in caplog.records)
    rows = line.store.events("")
    assert all(len(json.dumps(e["detail"])) < 5000 for e in rows)


def test_a_message_bigger_than_twilio_sends_closes_the_socket_with_1009(phone_line):
    line = line_for(phone_line)
    ws = open_ws(line)
    try:
        ws.send("x" * (2 * 1024 * 1024))  # a 2 MB message
        code = closed_with(ws)[0]
    except (OSError, websocket.WebSocketConnectionClosedException):
        code = "cut while still sending"  # the server had refused the message already
    assert code in (1009, "cut while still sending")
    result = line.carrier.place_call("three_turns")  # and the next call is served
    assert result.error_codes == [] and len(result.heard) == 3


def test_bad_messages_are_skipped_and_the_server_keeps_serving(phone_line):
    line = line_for(phone_line)
    line.store.ensure_call(CALL, turn=1)
    ws = open_ws(line)
    ws.send(media_message())  # before start
    ws.send(start_message(CALL))
    ws.send("this is not json")
    ws.send_binary(b"\x00\x01binary")
    ws.send(json.dumps({"event": "teleport"}))
    ws.send(json.dumps({"event": "media", "media": {"payload": "@@not base64@@"}}))
    ws.send(json.dumps({"event": "media"}))
    ws.send(json.dumps([1, 2, 3]))
    ws.send(json.dumps({"event": "mark", "mark": {"name": "never-sent"}}))
    ws.send(json.dumps({"event": "mark", "mark": {"name": "never-sent-either"}}))
    for _ in range(60):
        ws.send(media_message())
    ws.send(json.dumps({"event": "stop", "streamSid": STREAM}))
    wait_until(lambda: "WS_DONE" in kinds(line, CALL))
    events = line.store.events(CALL)
    reasons = [e["detail"]["reason"] for e in line.store.events("") + events
               if e["kind"] == "WS_BAD"]
    assert "media before start" in reasons
    assert sum(r.startswith(("not a JSON", "binary", "unknown event", "bad base64",
                             "malformed")) for r in reasons) >= 5
    assert [e["detail"]["name"] for e in events if e["kind"] == "MARK_UNKNOWN"] == ["never-sent"]
    done = [e["detail"] for e in events if e["kind"] == "WS_DONE"][0]
    assert done["rx"] == 60 and done["bad"] == 7
    result = line.carrier.place_call("three_turns")  # and the next call is served
    assert result.error_codes == [] and len(result.heard) == 3


def thinking_heard(line) -> bool:
    return any("thinking" in h.get("url", "") for run in list(line.carrier.calls.values())
               for h in run.result.heard)


def test_thinking_hint_plays_a_filler_when_the_reply_is_late(phone_line):
    line = line_for(phone_line, reply_mode="play", thinking_hint_ms=300, llm_timeout_sec=60)
    llm = line.runtime.engines.llm
    answer = llm.reply

    def late_reply(history, text):  # later than the hint, however late its timer fires
        wait_until(lambda: thinking_heard(line))
        return answer(history, text)
    llm.reply = late_reply
    result = line.carrier.place_call({"steps": [{"say": "שלום, מה שעות הפתיחה שלכם?"}]})
    plays = [h["url"].rsplit("/", 1)[-1] for h in result.heard]
    assert plays[0] == "thinking_he.mp3" and len(plays) == 2  # the filler, then the reply
    events = kinds(line, result.call_sid)
    assert "THINKING_HINT_TX" in events and "TURN_STALE" not in events
    assert events.count("PING_PONG_TX") == 1


def test_no_thinking_hint_when_the_reply_is_quick(phone_line, monkeypatch):
    line = line_for(phone_line, reply_mode="play", thinking_hint_ms=300)
    fired = []
    hint = StreamTurns._thinking_hint

    def after_the_reply(self, my_id):  # the hint's time comes, however loaded, after the reply
        wait_until(lambda: "PING_PONG_TX" in kinds(line, self.call_sid))
        hint(self, my_id)
        fired.append(my_id)
    monkeypatch.setattr(StreamTurns, "_thinking_hint", after_the_reply)
    result = line.carrier.place_call({"steps": [{"say": "שלום, מה שעות הפתיחה שלכם?"}]})
    wait_until(lambda: fired)  # the hint's timer has fired and found the turn answered
    assert [h["url"].rsplit("/", 1)[-1] for h in result.heard if "thinking" in h["url"]] == []
    assert "THINKING_HINT_TX" not in kinds(line, result.call_sid)


def test_a_key_pressed_while_the_line_speaks_interrupts_it_and_is_the_next_turn(phone_line):
    line = line_for(phone_line, reply_mode="stream", speed=1.0)
    script = {"steps": [{"say": "שלום, מה שעות הפתיחה שלכם?"},
                        {"dtmf": "1", "during_reply": True, "after": 0.3}], "end": "hangup"}
    result = line.carrier.place_call(script, speed=1.0)
    assert result.streams[0]["clears"] >= 1  # the reply was cut off
    barge = [e["detail"] for e in line.store.events(result.call_sid) if e["kind"] == "BARGE_IN"]
    assert barge and barge[0]["by"] == "key"
    said = [m["text"] for m in line.store.history(result.call_sid) if m["role"] == "user"]
    assert said[-1] == "1"  # the key became the next turn's input
    assert len([h for h in result.heard if h["kind"] == "stream"]) >= 2


def test_when_twilio_stops_a_stream_that_ran_the_fallback_reason_is_true(phone_line):
    line = line_for(phone_line, reply_mode="stream")
    result = line.carrier.place_call({"steps": [{"say": "שלום"}, {"say": "מה המחירים?"},
                                                {"silence": 30}], "end": "hangup"},
                                     stream_stop_after=12)
    fallback = [e["detail"] for e in line.store.events(result.call_sid)
                if e["kind"] == "STREAM_FALLBACK"]
    assert fallback and fallback[0]["reason"] == "stream ended with no reply pending"
    assert result.streams[0]["closed_by"] == "twilio"


def test_no_thinking_hint_by_default(phone_line):
    line = line_for(phone_line, reply_mode="play")
    assert line.runtime.settings.thinking_hint_ms == 0
    result = line.carrier.place_call({"steps": [{"say": "שלום, מה שעות הפתיחה שלכם?"}]})
    assert [h["url"].rsplit("/", 1)[-1] for h in result.heard] != [] and not thinking_heard(line)
    assert "THINKING_HINT_TX" not in kinds(line, result.call_sid)


def test_a_stream_start_is_recorded_while_every_turn_thread_is_busy(phone_line):
    line = line_for(phone_line)
    line.store.ensure_call(CALL, turn=1, turn_mode="stream")
    pool, gate, entered = line.runtime.turn_pool, threading.Event(), []
    for _ in range(pool._max_workers):  # every turn thread blocked (as in a slow engine)
        pool.submit(lambda: (entered.append(1), gate.wait()))
    wait_until(lambda: len(entered) == pool._max_workers)
    try:
        ws = open_ws(line)
        ws.send(start_message(CALL))
        wait_until(lambda: "WS_START" in kinds(line, CALL))  # the last step of the start
        assert line.store.get_call(CALL)["stream_started_turn"] == 1
        assert len(entered) == pool._max_workers and not gate.is_set()  # still all busy
        ws.close()
    finally:
        gate.set()


@pytest.mark.parametrize("start,call_sid", [
    ({"streamSid": "MZ" + "a" * 32 + "\n"}, "CA" + "1" * 32),
    ({"streamSid": "MZ" + "a" * 32}, "CA" + "1" * 32 + "\n"),
    ({"streamSid": "MZ" + "a" * 32, "accountSid": "AC" + "2" * 32 + "\n"}, "CA" + "1" * 32),
])
def test_a_sid_with_a_line_break_after_it_is_not_of_twilios_shape(start, call_sid):
    from ivr.media.session import start_problem
    assert start_problem(start, call_sid, 1).endswith("missing or not of Twilio's shape")
    assert start_problem({**start, "streamSid": "MZ" + "a" * 32, "accountSid": "AC" + "2" * 32},
                         "CA" + "1" * 32, 1) is None
