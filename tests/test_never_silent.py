"""Whatever breaks, the caller hears something and the call's record is complete."""

import json
import threading
from datetime import date

import pytest
from flask import Flask

from ivr.phrases import LLM_FALLBACK
from ivr.recordings import RecordingRefused, check_recording_url

from .conftest import ACCOUNT_SID, make_settings
from .livehelpers import LiveServer, wait_until
from .providers import ProviderServer

pytestmark = pytest.mark.usefixtures("database")

FAKES = {"asr_engine": "fake", "llm_engine": "fake", "tts_engine": "fake", "turn_mode": "stream"}
ASK = {"steps": [{"say": "שלום, מה שעות הפתיחה שלכם?"}], "end": "hangup"}
BAD_EVENTS = ("_ERR", "_FAIL")
ROOMY_SEC = 30.0  # a timeout that healthy fake engines and watchdogs never meet, however loaded
# A caller who stays on the line until the test hangs up (or 60 s of real time at speed 10).
STAY = {"steps": [{"say": "שלום, מה שעות הפתיחה שלכם?"}, {"silence": 600}], "end": "wait",
        "max_duration": 600}


def kinds(line, call_sid):
    return [e["kind"] for e in line.store.events(call_sid)]


def fallback_turns(line, call_sid):
    return [t for t in line.store.turns(call_sid) if t["source"] == "record"]


def test_refused_websocket_moves_to_record_and_the_caller_is_answered(phone_line):
    line = phone_line(**FAKES)
    result = line.carrier.place_call(ASK, ws_refuse=True)
    assert result.error_codes == [31920]
    assert [h["kind"] for h in result.heard] == ["play", "play"]
    assert result.heard[0]["url"].endswith("/fallback_he.mp3")
    call = line.store.get_call(result.call_sid)
    assert call["turn_mode"] == "record" and call["fallback_reason"] == "stream never started"
    events = kinds(line, result.call_sid)
    assert {"STREAM_STATUS", "STREAM_FALLBACK", "RECORDING_SAVED", "TURN"} <= set(events)
    assert len(fallback_turns(line, result.call_sid)) == 1 and call["ended"]
    assert "WATCHDOG_REDIRECT_OK" not in events  # Twilio's action won; the error job stood down


def test_websocket_with_no_media_is_redirected_by_the_watchdog(phone_line):
    line = phone_line(no_media_timeout_sec=1.0, **FAKES)
    # The first sentence is lost on the silent socket; after the fallback prompt (the line's
    # first "reply") the caller says it again, into the Record, whenever the watchdog acted.
    script = {"steps": [{"say": "שלום, מה שעות הפתיחה שלכם?"}, {"say": "מה שעות הפתיחה?"}],
              "end": "hangup"}
    result = line.carrier.place_call(script, ws_no_media=True)
    events = kinds(line, result.call_sid)
    assert "WATCHDOG_REDIRECT_OK" in events and "WS_START" in events
    redirect = [e for e in line.store.events(result.call_sid)
                if e["kind"] == "WATCHDOG_REDIRECT_OK"]
    assert redirect[0]["detail"]["reason"] == "no media for 1 s"
    assert [h["kind"] for h in result.heard] == ["play", "play"]
    assert len(fallback_turns(line, result.call_sid)) == 1


@pytest.mark.parametrize("slow,phrase", [("asr", "אפשר לחזור"), ("llm", "בסדר, איך אוכל"),
                                         ("tts", None)])
def test_each_engine_timing_out_still_gives_a_sound(phone_line, stall, slow, phrase):
    timeouts = {"asr_timeout_sec": ROOMY_SEC, "llm_timeout_sec": ROOMY_SEC,
                "tts_timeout_sec": ROOMY_SEC, f"{slow}_timeout_sec": 1.0}
    line = phone_line(**timeouts, **FAKES)
    stall(getattr(line.runtime.engines, slow), slow)  # never answers: only its timeout helps
    result = line.carrier.place_call(ASK)
    assert stall.entered >= 1 and stall.answered == 0  # (an early transcription at the comma
    # after "שלום", EARLY_ASR_SEC, is a second entry, dropped when the caller goes on)
    assert len(result.heard) == 1 and result.heard[0]["duration"] > 0.2
    (turn,) = line.store.turns(result.call_sid)
    if phrase:
        assert turn["reply_text"].startswith(phrase)
    else:
        assert result.heard[0]["url"].endswith(("/beep.mp3", "/fallback_he.mp3"))
    assert f"{slow.upper()}_ERR" in kinds(line, result.call_sid)


@pytest.fixture
def openai_server():
    server = ProviderServer()
    yield server
    server.stop()


def test_a_chat_model_shut_down_mid_call_gives_the_fallback_phrase(phone_line, openai_server):
    """OpenAI shuts gpt-4o-mini down on 2027-01-14: a call on its last day whose second turn
    falls on the shutdown day. The real client meets the strict stand-in's 404; the caller hears
    the LLM fallback phrase, and start-up had said the model was going (it went on all the same)."""
    def day() -> date:  # the request being answered is already in `requests`: the second
        # question is asked on the shutdown day (a reply begun early, DRAFT_REPLY, is one more
        # request of the first question's)
        chats = [r for r in openai_server.requests if r["path"] == "/v1/chat/completions"]
        asked = [json.dumps([m for m in r["json"]["messages"] if m["role"] == "user"][-1])
                 for r in chats]
        return date(2027, 1, 13) if asked[-1] == asked[0] else date(2027, 1, 14)
    openai_server.today = day
    line = phone_line(asr_engine="fake", llm_engine="openai", tts_engine="fake",
                      turn_mode="stream", openai_api_key="sk-test-key-123456",
                      openai_base_url=openai_server.url + "/v1", openai_model="gpt-4o-mini")
    script = {"steps": [{"say": "שלום, מה שעות הפתיחה שלכם?"}, {"say": "ומה הכתובת שלכם?"}],
              "end": "hangup"}
    result = line.carrier.place_call(script)
    assert result.error_codes == []
    turns = line.store.turns(result.call_sid)
    assert [t["reply_text"] for t in turns] == [openai_server.reply_text, LLM_FALLBACK]
    assert len(result.heard) >= 2 and result.heard[-1]["duration"] > 0.2  # never silence
    errors = [e for e in line.store.events(result.call_sid) if e["kind"] == "LLM_ERR"]
    assert "has been deprecated" in errors[0]["detail"]["err"]
    started = [e for e in line.store.events("") if e["kind"].startswith("MODEL_")]
    assert [(e["kind"] in ("MODEL_DEPRECATED", "MODEL_RETIRED"), e["detail"]["model"],
             e["detail"]["date"]) for e in started] == [(True, "gpt-4o-mini", "2027-01-14")]


def test_silent_caller_is_reprompted_then_told_goodbye(phone_line):
    line = phone_line(**{**FAKES, "turn_mode": "record"})
    result = line.carrier.place_call("silent")
    kinds_heard = [h["url"].rsplit("/", 1)[-1] for h in result.heard if h["kind"] == "play"]
    assert kinds_heard == ["greeting_he.mp3"] + ["fallback_he.mp3"] * 2 + ["goodbye_he.mp3"]
    assert any(e["who"] == "line" and e["text"] == "hangs up" for e in result.timeline)
    call = line.store.get_call(result.call_sid)
    assert call["outcome"] == "silent-hangup" and call["silent_turns"] == 3


def test_recording_not_ready_twice_then_fetched(phone_line):
    line = phone_line(**{**FAKES, "turn_mode": "record"})
    result = line.carrier.place_call(ASK, recording_404s=2)
    fetches = [r["status"] for r in result.requests if r["direction"] == "in"
               and "/Recordings/" in r["url"]]
    assert fetches == [404, 404, 200]
    assert len(fallback_turns(line, result.call_sid)) == 1
    heard = [h["url"].rsplit("/", 1)[-1] for h in result.heard if h["kind"] == "play"]
    assert len(result.heard) == 2 and heard[0] == "greeting_he.mp3"  # then the one reply


def test_a_recording_url_on_a_loopback_port_is_refused_not_fetched(twilio_post, runtime):
    hits = []
    bait = Flask("bait")
    bait.add_url_rule("/<path:p>", "any", lambda p: hits.append(p) or "x")
    server = LiveServer().serve(bait)
    try:
        url = f"{server.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/RE{'1' * 32}"
        response = twilio_post("/webhook/handle_recording", RecordingUrl=url,
                               RecordingSid="RE" + "1" * 32, RecordingDuration="3")
    finally:
        server.stop()
    assert response.status_code == 200 and b"<Record " in response.data
    assert hits == []
    refused = [e for e in runtime.store.events("CA" + "a" * 32) if e["kind"] == "RECORDING_REFUSED"]
    assert "is not the Twilio API" in refused[0]["detail"]["reason"]


@pytest.mark.parametrize("url,ok", [
    (f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/RE{'2' * 32}", True),
    (f"http://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/RE{'2' * 32}", False),
    (f"https://evil.example/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/RE{'2' * 32}", False),
    (f"https://api.twilio.com/2010-04-01/Accounts/AC{'9' * 32}/Recordings/RE{'2' * 32}", False),
    (f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/../Calls", False),
    (f"https://api.twilio.com:8443/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/RE{'2' * 32}",
     False),
    ("file:///etc/passwd", False),
])
def test_recording_url_rules(tmp_path, url, ok):
    settings = make_settings(tmp_path)
    if ok:
        assert check_recording_url(settings, url).endswith(".wav")
    else:
        with pytest.raises(RecordingRefused):
            check_recording_url(settings, url)


def call_in_background(line, script, **faults):
    """Place a call on a thread; returns (thread, outcome) where outcome["result"] appears."""
    outcome = {}
    caller = threading.Thread(target=lambda: outcome.update(
        result=line.carrier.place_call(script, **faults)), daemon=True)
    caller.start()
    return caller, outcome


def the_call(line) -> str:
    return wait_until(lambda: line.store.list_calls())[0]["call_sid"]


def test_caller_hanging_up_mid_turn_leaves_no_job_and_no_error(phone_line, stall):
    line = phone_line(**FAKES, llm_timeout_sec=ROOMY_SEC)
    stall(line.runtime.engines.llm, "llm")  # the turn is still thinking when the caller leaves
    caller, _ = call_in_background(line, STAY)
    call_sid = the_call(line)
    wait_until(lambda: stall.entered and "ASR_TEXT" in kinds(line, call_sid))  # a turn is in
    # flight (its reply begun early on the words, DRAFT_REPLY, may have entered the LLM first)...
    line.carrier.calls[call_sid].hangup("caller")  # ...when the caller hangs up
    caller.join(60)
    wait_until(lambda: line.store.get_call(call_sid)["ended"])
    stall.release()  # the turn in flight finishes after the hang-up
    wait_until(lambda: "TURN_STALE" in kinds(line, call_sid))
    assert line.runtime.watchdog.pending(call_sid) == []
    events = kinds(line, call_sid)
    assert "UTTERANCE" in events and events.count("PING_PONG_TX") == 0
    assert [k for k in events if k.endswith(BAD_EVENTS)] == []


def test_stream_start_watchdog_acts_once_and_moves_a_live_call_to_record(phone_line):
    # A socket that carries no media never times out here (no-media watchdog off), so the
    # call waits in stream mode for the test: no race between the test and the line's timers.
    line = phone_line(**FAKES, no_media_timeout_sec=600)
    # The first sentence is lost on the silent socket; after the fallback prompt the caller
    # says the second one into the Record.
    script = {"steps": [{"say": "שלום"}, {"say": "מה שעות הפתיחה?"}], "end": "hangup"}
    caller, outcome = call_in_background(line, script, ws_no_media=True)
    call_sid = the_call(line)
    wait_until(lambda: "WS_START" in kinds(line, call_sid))
    line.store.update_call(call_sid, stream_started_turn=0)  # as if the stream never started
    line.runtime.watchdog.check_stream_started(call_sid, 1)
    line.runtime.watchdog.check_stream_started(call_sid, 1)  # a second firing does nothing
    caller.join(60)
    result = outcome["result"]
    assert kinds(line, call_sid).count("WATCHDOG_REDIRECT_OK") == 1
    assert any("records" == e["text"] for e in result.timeline)
    assert len(fallback_turns(line, call_sid)) == 1
    assert result.heard[0]["url"].endswith("/fallback_he.mp3")


def test_a_stalled_turn_gets_the_fallback_phrase_and_its_late_reply_is_dropped(phone_line,
                                                                               stall):
    line = phone_line(**FAKES, llm_timeout_sec=ROOMY_SEC)
    stall(line.runtime.engines.llm, "llm")  # the turn is thinking until the test says so
    caller, outcome = call_in_background(line, STAY)
    call_sid = the_call(line)
    wait_until(lambda: stall.entered and "ASR_TEXT" in kinds(line, call_sid))  # the turn's, not
    # only its reply begun early on the words (DRAFT_REPLY)
    line.runtime.watchdog.check_turn(call_sid, 1)  # as if the turn had outlived its timeouts
    run = line.carrier.calls[call_sid]
    wait_until(lambda: len(run.result.streams) == 2)  # the fallback played, a new stream opened
    stall.release()  # now the late reply comes...
    wait_until(lambda: "TURN_STALE" in kinds(line, call_sid))  # ...and is dropped
    run.hangup("caller")
    caller.join(60)
    result = outcome["result"]
    events = kinds(line, call_sid)
    assert {"WATCHDOG_STALLED_TURN", "WATCHDOG_FALLBACK_TX", "TURN_STALE"} <= set(events)
    assert result.heard[0]["url"].endswith("/fallback_he.mp3")
    assert [h["kind"] for h in result.heard] == ["play"]  # the late reply was not played
    assert "PING_PONG_TX" not in events
