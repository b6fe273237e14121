"""Whatever breaks, the caller hears something and the call's record is complete."""

import threading
import time

import pytest
from flask import Flask

from ivr.recordings import RecordingRefused, check_recording_url

from .conftest import ACCOUNT_SID, make_settings
from .livehelpers import LiveServer

FAKES = {"asr_engine": "fake", "llm_engine": "fake", "tts_engine": "fake", "turn_mode": "stream",
         "stream_start_timeout_sec": 1.0, "no_media_timeout_sec": 1.0}
ASK = {"steps": [{"say": "שלום, מה שעות הפתיחה שלכם?"}], "end": "hangup"}
BAD_EVENTS = ("_ERR", "_FAIL")


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
    line = phone_line(speed=1.0, **FAKES)
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
def test_each_engine_timing_out_still_gives_a_sound(phone_line, slow, phrase):
    line = phone_line(asr_timeout_sec=0.3, llm_timeout_sec=0.3, tts_timeout_sec=0.3, **FAKES)
    getattr(line.runtime.engines, slow).delay = 1.0
    result = line.carrier.place_call(ASK)
    assert len(result.heard) == 1 and result.heard[0]["duration"] > 0.2
    (turn,) = line.store.turns(result.call_sid)
    if phrase:
        assert turn["reply_text"].startswith(phrase)
    else:
        assert result.heard[0]["url"].endswith(("/beep.mp3", "/fallback_he.mp3"))
    assert f"{slow.upper()}_ERR" in kinds(line, result.call_sid)


def test_silent_caller_is_reprompted_then_told_goodbye(phone_line):
    line = phone_line(**{**FAKES, "turn_mode": "record"})
    result = line.carrier.place_call("silent")
    kinds_heard = [h["url"].rsplit("/", 1)[-1] for h in result.heard if h["kind"] == "play"]
    assert kinds_heard == ["fallback_he.mp3"] * 2 + ["goodbye_he.mp3"]
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
    assert [h["kind"] for h in result.heard] == ["play"]


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


def test_caller_hanging_up_mid_turn_leaves_no_job_and_no_error(phone_line):
    line = phone_line(**FAKES)
    line.runtime.engines.llm.delay = 1.0
    script = {"steps": [{"say": "שלום, מה שעות הפתיחה שלכם?"}, {"silence": 1.0}, "hangup"]}
    result = line.carrier.place_call(script)
    assert "UTTERANCE" in kinds(line, result.call_sid)  # a turn was in flight at the hang-up
    time.sleep(1.5)  # the turn in flight finishes after the hang-up
    assert [j.id for j in line.runtime.scheduler.get_jobs() if result.call_sid in j.id] == []
    events = kinds(line, result.call_sid)
    assert "TURN_STALE" in events or "TURN" in events
    assert [k for k in events if k.endswith(BAD_EVENTS)] == []
    assert line.store.get_call(result.call_sid)["ended"]


def test_stream_start_watchdog_acts_once_and_moves_a_live_call_to_record(phone_line):
    line = phone_line(**{**FAKES, "turn_mode": "gather"})
    outcome = {}
    caller = threading.Thread(target=lambda: outcome.update(
        result=line.carrier.place_call({"steps": [{"silence": 3}, {"say": "שלום"}],
                                        "end": "hangup"})))
    caller.start()
    deadline = time.time() + 10
    while time.time() < deadline and not line.store.list_calls():
        time.sleep(0.02)
    call_sid = line.store.list_calls()[0]["call_sid"]
    line.store.update_call(call_sid, turn_mode="stream", turn=1, stream_started_turn=0)
    line.runtime.watchdog.check_stream_started(call_sid, 1)
    line.runtime.watchdog.check_stream_started(call_sid, 1)  # a second firing does nothing
    caller.join(60)
    result = outcome["result"]
    assert kinds(line, call_sid).count("WATCHDOG_REDIRECT_OK") == 1
    assert any("records" == e["text"] for e in result.timeline)
    assert len(fallback_turns(line, call_sid)) == 1


def test_a_stalled_turn_gets_the_fallback_phrase_and_its_late_reply_is_dropped(phone_line):
    line = phone_line(speed=1.0, **FAKES)
    line.runtime.engines.llm.delay = 2.0  # within LLM_TIMEOUT_SEC: the turn is just slow
    outcome = {}
    caller = threading.Thread(target=lambda: outcome.update(result=line.carrier.place_call(
        {"steps": [{"say": "שלום"}, {"silence": 4}], "end": "hangup"}, speed=1.0)))
    caller.start()
    deadline = time.time() + 20
    while time.time() < deadline and not any(
            "UTTERANCE" in kinds(line, c["call_sid"]) for c in line.store.list_calls()):
        time.sleep(0.02)
    call_sid = line.store.list_calls()[0]["call_sid"]
    line.runtime.watchdog.check_turn(call_sid, 1)  # as if the turn had outlived its timeouts
    caller.join(60)
    result = outcome["result"]
    events = kinds(line, call_sid)
    assert {"WATCHDOG_STALLED_TURN", "WATCHDOG_FALLBACK_TX", "TURN_STALE"} <= set(events)
    assert result.heard[0]["url"].endswith("/fallback_he.mp3")
    assert [h["kind"] for h in result.heard] == ["play"]  # the late reply was not played
