"""Recording fetches: plain recording paths of this account only."""

from __future__ import annotations

import pytest
from flask import Flask, request

from ivr.recordings import RecordingRefused, check_recording_url

from .conftest import ACCOUNT_SID, CALL_SID, make_settings
from .livehelpers import LiveServer

RE_SID = "RE" + "3" * 32
PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{RE_SID}"
API = "https://api.twilio.com"


class Bait:
    """A loopback 'Twilio API' that records every request it gets."""

    def __init__(self):
        self.hits: list[str] = []
        app = Flask("bait")
        app.add_url_rule("/<path:path>", "any", lambda path: self.hits.append(request.path) or "x")
        self.live = LiveServer().serve(app)
        self.url = self.live.url


@pytest.fixture
def hostile():
    server = Bait()
    yield server
    server.live.stop()


@pytest.fixture
def settings(tmp_path, hostile):
    """The app's settings (conftest's `app` uses them) with the bait server as the API."""
    return make_settings(tmp_path, twilio_api_base_url=hostile.url)


@pytest.mark.parametrize("path", [
    PATH + "/%2e%2e/%2e%2e/Calls",
    PATH + "/%2E%2E/%2E%2E/Calls.json",
    PATH + "/.%2e/.%2e/Calls",
    PATH + "%2f%2e%2e%2f%2e%2e%2fCalls",
    PATH + "\\..\\..\\Calls",
    PATH + "%5c..%5c..%5cCalls",
    PATH + "/./",
    PATH + "/Transcriptions",
    PATH + ".json",
    PATH + "%00.wav",
    PATH.replace(RE_SID, f"%52{RE_SID[1:]}"),
    PATH.replace(RE_SID, RE_SID[:-1]),
    PATH.replace(RE_SID, RE_SID[:-1] + "g"),
    PATH.replace("/2010-04-01/", "/2010-04-01//"),
    PATH + "#x",
])
def test_anything_but_a_plain_recording_path_is_refused(tmp_path, path):
    with pytest.raises(RecordingRefused, match="not a recording of this account"):
        check_recording_url(make_settings(tmp_path), API + path)


@pytest.mark.parametrize("name,fetched", [
    (RE_SID, RE_SID + ".wav"), (RE_SID + ".wav", RE_SID + ".wav"),
    (RE_SID + ".mp3", RE_SID + ".mp3"), ("RE" + "ab" * 16, "RE" + "ab" * 16 + ".wav")])
def test_plain_recording_paths_are_fetched_as_wav_or_mp3(tmp_path, name, fetched):
    url = API + PATH.replace(RE_SID, name)
    assert check_recording_url(make_settings(tmp_path), url) == API + PATH.replace(RE_SID, fetched)


def test_credentials_in_the_url_are_refused(tmp_path):
    with pytest.raises(RecordingRefused):
        check_recording_url(make_settings(tmp_path), f"https://x:y@api.twilio.com{PATH}")


def recording_events(runtime) -> list[dict]:
    return [e for e in runtime.store.events(CALL_SID) if e["kind"].startswith("RECORDING_")]


def post_recording(twilio_post, url: str):
    return twilio_post("/webhook/handle_recording", RecordingUrl=url, RecordingSid=RE_SID,
                       RecordingDuration="3")


def test_webhook_refuses_an_encoded_dot_dot_without_a_request(twilio_post, runtime, hostile):
    url = hostile.url + PATH + "/%2e%2e/%2e%2e/Calls"
    response = post_recording(twilio_post, url)
    assert response.status_code == 200 and b"<Record " in response.data
    assert hostile.hits == []
    assert [e["kind"] for e in recording_events(runtime)] == ["RECORDING_REFUSED"]
