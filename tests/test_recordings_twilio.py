"""Recordings where Twilio puts them: on a regional API host, or behind one redirect to Twilio or
to pre-signed storage (followed without our credentials); any other redirect is refused."""

import pytest
import requests
from flask import Flask, redirect

from ivr import audio
from ivr.recordings import RecordingRefused, check_recording_url, download, redirect_problem
from ivr.sim.storage import Storage

from .conftest import ACCOUNT_SID, make_settings
from .livehelpers import LiveServer

FAKES = {"asr_engine": "fake", "llm_engine": "fake", "tts_engine": "fake", "turn_mode": "record"}
ASK = {"steps": [{"say": "שלום, מה שעות הפתיחה שלכם?"}], "end": "hangup"}
RE_SID = "RE" + "4" * 32
PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{RE_SID}"
SIGNED = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=k&X-Amz-Signature=s"


@pytest.mark.parametrize("host,ok", [
    ("api.twilio.com", True), ("api.dublin.ie1.twilio.com", True),
    ("api.sydney.au1.twilio.com", True), ("api.ie1.twilio.com", True),
    ("evil.twilio.com", False), ("api.twilio.com.evil.example", False),
    ("api.a.b.c.twilio.com", False), ("api-dublin.example.com", False)])
def test_recording_hosts_are_twilios_api_hosts_regional_ones_included(tmp_path, host, ok):
    settings = make_settings(tmp_path)
    if ok:
        assert check_recording_url(settings, f"https://{host}{PATH}") == f"https://{host}{PATH}.wav"
    else:
        with pytest.raises(RecordingRefused, match="not the Twilio API"):
            check_recording_url(settings, f"https://{host}{PATH}")
    with pytest.raises(RecordingRefused):
        check_recording_url(settings, f"http://{host}{PATH}")


def test_with_the_emulator_as_twilio_its_hosts_are_reached_through_it(tmp_path):
    settings = make_settings(tmp_path, twilio_api_base_url="http://127.0.0.1:8765")
    fetched = check_recording_url(settings, f"https://api.dublin.ie1.twilio.com{PATH}")
    assert fetched == f"http://127.0.0.1:8765{PATH}.wav"


@pytest.mark.parametrize("url,problem", [
    ("https://api.twilio.com/x.wav", None),
    ("https://media.twiliocdn.com/AC1/RE1", None),
    (f"https://bucket.s3.amazonaws.com/RE1.wav?{SIGNED}", None),
    (f"https://s3.eu-west-1.amazonaws.com/b/RE1?{SIGNED}", None),
    ("https://s3-external-1.amazonaws.com/b/RE1?AWSAccessKeyId=a&Signature=b&Expires=1", None),
    ("https://storage.googleapis.com/b/RE1?X-Goog-Algorithm=a&X-Goog-Credential=b"
     "&X-Goog-Signature=c", None),
    ("https://bucket.s3.amazonaws.com/RE1.wav", "not pre-signed"),
    (f"http://bucket.s3.amazonaws.com/RE1.wav?{SIGNED}", "not https"),
    ("http://api.twilio.com/x.wav", "not https"),
    (f"https://evil.example/RE1.wav?{SIGNED}", "neither Twilio's nor a storage service's"),
    (f"https://x.execute-api.us-east-1.amazonaws.com/RE1?{SIGNED}", "neither"),
    (f"https://s3.amazonaws.com.evil.example/RE1?{SIGNED}", "neither"),
    ("https://user:pw@api.twilio.com/x.wav", "credentials"),
    (f"https://bucket.s3.amazonaws.com:8443/RE1.wav?{SIGNED}", "not https"),
])
def test_which_redirects_are_followed(url, problem):
    found = redirect_problem(url)
    assert found is None if problem is None else problem in found


def test_an_allowed_storage_origin_is_storage_but_must_still_be_pre_signed():
    origin = "http://127.0.0.1:9000"
    assert redirect_problem(f"{origin}/b/RE1?{SIGNED}", (origin,)) is None
    assert "not pre-signed" in redirect_problem(f"{origin}/b/RE1", (origin,))
    assert redirect_problem(f"{origin}/b/RE1?{SIGNED}") == "not https"  # not allowed: refused


def test_the_redirect_is_followed_without_our_credentials_whatever_the_session_carries(
        tmp_path):
    storage = Storage()
    storage.put("r.wav", audio.wav_bytes(audio.beep_pcm16(300)), "audio/x-wav")
    twilio = Flask("twilio")
    twilio.add_url_rule("/<path:p>", "r", lambda p: redirect(storage.presigned_url("r.wav")))
    server = LiveServer().serve(twilio)
    session = requests.Session()
    session.auth = ("AC-session", "session-secret")  # e.g. a shared session with Basic auth
    try:
        settings = make_settings(tmp_path, twilio_api_base_url=server.url,
                                 recording_storage_origins=(storage.url,))
        data = download(settings, server.url + PATH, session=session, budget_sec=10)
    finally:
        server.stop()
        storage.stop()
    assert audio.decode_to_pcm16(data) == audio.beep_pcm16(300)
    assert storage.requests == [{"path": "/emulator-recordings/r.wav", "signed": True,
                                 "authorization": False}]


def recording_events(line, call_sid):
    return [e for e in line.store.events(call_sid) if e["kind"].startswith("RECORDING")]


def test_a_recording_on_a_regional_api_host_is_fetched(phone_line):
    line = phone_line(**FAKES)
    result = line.carrier.place_call(ASK, recording_regional=True)
    events = recording_events(line, result.call_sid)
    assert events[0]["detail"]["url"].startswith("https://api.dublin.ie1.twilio.com/2010-04-01/")
    assert [e["kind"] for e in events] == ["RECORDING", "RECORDING_SAVED"]
    assert [t["source"] for t in line.store.turns(result.call_sid)] == ["record"]


def test_a_recording_redirected_to_pre_signed_storage_is_fetched_without_credentials(
        phone_line):
    line = phone_line(**FAKES)
    storage = line.carrier.storage
    line.runtime.settings = line.runtime.settings.replace(
        recording_storage_origins=(storage.url,))  # loopback stands in for https S3
    result = line.carrier.place_call(ASK, recording_redirect="storage")
    kinds = [e["kind"] for e in recording_events(line, result.call_sid)]
    assert kinds == ["RECORDING", "RECORDING_SAVED"]
    assert [(r["signed"], r["authorization"]) for r in storage.requests] == [(True, False)]
    fetches = [r["status"] for r in result.requests if "/Recordings/" in r["url"]]
    assert fetches == [302]


@pytest.mark.parametrize("fault,allowed,why", [
    ("storage", False, "not https"),  # an unknown host, plain http
    ("unsigned", True, "not pre-signed")])
def test_an_off_twilio_redirect_is_refused_and_never_requested(phone_line, fault, allowed, why):
    line = phone_line(**FAKES)
    storage = line.carrier.storage
    if allowed:
        line.runtime.settings = line.runtime.settings.replace(
            recording_storage_origins=(storage.url,))
    result = line.carrier.place_call(ASK, recording_redirect=fault)
    refused = [e["detail"] for e in recording_events(line, result.call_sid)
               if e["kind"] == "RECORDING_REFUSED"]
    assert refused and why in refused[0]["reason"] and storage.requests == []
    heard = [h["url"].rsplit("/", 1)[-1] for h in result.heard]
    assert heard[:2] == ["greeting_he.mp3", "fallback_he.mp3"]  # re-prompted, never silence
