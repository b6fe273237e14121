"""Recordings: fetched only from this account's plain recording paths, with no redirects and one
deadline; kept with their metadata for the owner; purged after the retention horizon."""

from __future__ import annotations

import json
import os
import socketserver
import threading
import time

import pytest
from flask import Flask, Response, redirect, request

from ivr import audio, recordings
from ivr.app import create_app
from ivr.recordings import (
    RecordingRefused,
    RecordingTimeout,
    check_recording_url,
    download,
    keep,
    purge_before,
)
from ivr.sim import Carrier
from ivr.web import webhooks

from .conftest import ACCOUNT_SID, AUTH_TOKEN, BASE, CALL_SID, make_settings, sign
from .livehelpers import LiveServer

RE_SID = "RE" + "3" * 32
PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{RE_SID}"
API = "https://api.twilio.com"
BUDGET = 1.0  # the fetch deadline in these tests (production: recordings.FETCH_BUDGET_SEC)
MARGIN = 4.0  # generous: a loaded CI machine; the attacks below take 10 s or more unchecked
DRIP_SEC = 0.2  # the server sends one byte this often: every read returns well within a timeout
DRIP_BYTES = 50  # 10 s in all: a fetch without one deadline sits through the whole drip
LATE_SEC = 1.0  # a recording that arrives in time, but late


class HostileTwilio:
    """A loopback 'Twilio API' whose recording answers are ok, a redirect, a drip or slow 404s."""

    def __init__(self):
        self.behaviour = "ok"
        self.hits: list[str] = []
        self.stopping = threading.Event()
        self.drip_closed = threading.Event()
        self.app = Flask("hostile-twilio")
        self.app.add_url_rule("/<path:path>", "any", self.answer)
        self.live = LiveServer().serve(self.app)
        self.url = self.live.url

    def answer(self, path: str) -> Response:
        self.hits.append(request.full_path.rstrip("?"))
        if self.behaviour == "redirect" and "elsewhere" not in path:
            return redirect(f"{self.url}/elsewhere.wav", 302)
        if self.behaviour == "drip":
            return Response(self.drip(), mimetype="audio/x-wav",
                            headers={"Content-Length": str(DRIP_BYTES)})
        if self.behaviour == "late":
            self.stopping.wait(LATE_SEC)
        if self.behaviour == "slow-404":
            self.stopping.wait(DRIP_SEC * 4)
            return Response("not yet", status=404)
        return Response(audio.wav_bytes(audio.beep_pcm16(500)), mimetype="audio/x-wav")

    def drip(self):
        try:
            for _ in range(DRIP_BYTES):
                if self.stopping.wait(DRIP_SEC):
                    return
                yield b"\0"
        finally:
            self.drip_closed.set()

    def stop(self):
        self.stopping.set()
        self.live.stop()


class HeaderDrip(socketserver.ThreadingTCPServer):
    """A raw loopback server that sends its response headers one byte at a time."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        self.stopping = threading.Event()
        super().__init__(("127.0.0.1", 0), self.Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, daemon=True,
                         kwargs={"poll_interval": 0.05}).start()  # a quick shutdown

    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            self.request.recv(65536)
            self.request.sendall(b"HTTP/1.1 200 OK\r\nX-Drip: ")
            for _ in range(DRIP_BYTES):
                if self.server.stopping.wait(DRIP_SEC):
                    return
                self.request.sendall(b"a")
            self.request.sendall(b"\r\nContent-Length: 0\r\n\r\n")

    def stop(self):
        self.stopping.set()
        self.shutdown()
        self.server_close()


@pytest.fixture
def hostile():
    server = HostileTwilio()
    yield server
    server.stop()


@pytest.fixture
def settings(tmp_path, hostile):
    """The app's settings (conftest's `app` uses them) with the hostile server as the API."""
    return make_settings(tmp_path, twilio_api_base_url=hostile.url)


def timed_download(settings, url: str) -> tuple[type | None, float]:
    started = time.monotonic()
    try:
        download(settings, url, budget_sec=BUDGET)
    except Exception as exc:  # noqa: BLE001 - the test looks at which failure it was
        return type(exc), time.monotonic() - started
    return None, time.monotonic() - started


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


def test_the_emulator_serves_a_recording_within_the_deadline(tmp_path):
    pcm = audio.beep_pcm16(400)
    with Carrier("http://127.0.0.1:9", account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as carrier:
        carrier.recordings[RE_SID] = pcm
        settings = make_settings(tmp_path, twilio_api_base_url=carrier.url)
        data = download(settings, carrier.url + PATH, budget_sec=BUDGET * 5)
    assert audio.decode_to_pcm16(data) == pcm


def test_a_redirect_is_refused_and_not_followed(settings, hostile):
    hostile.behaviour = "redirect"
    with pytest.raises(RecordingRefused, match="302 redirect"):
        download(settings, hostile.url + PATH, budget_sec=BUDGET)
    assert hostile.hits == [PATH + ".wav"]


def test_a_body_sent_one_byte_at_a_time_is_cut_off_at_the_deadline(settings, hostile):
    hostile.behaviour = "drip"
    failure, seconds = timed_download(settings, hostile.url + PATH)
    assert failure is RecordingTimeout
    assert seconds < BUDGET + MARGIN
    assert hostile.drip_closed.wait(MARGIN)  # the socket was cut: the server stopped dripping


def test_headers_sent_one_byte_at_a_time_are_cut_off_at_the_deadline(tmp_path):
    server = HeaderDrip()
    try:
        settings = make_settings(tmp_path, twilio_api_base_url=server.url)
        failure, seconds = timed_download(settings, server.url + PATH)
    finally:
        server.stop()
    assert failure is RecordingTimeout
    assert seconds < BUDGET + MARGIN


def test_slow_not_ready_answers_share_the_one_deadline(settings, hostile):
    hostile.behaviour = "slow-404"
    failure, seconds = timed_download(settings, hostile.url + PATH)
    assert failure is RecordingTimeout
    assert seconds < BUDGET + MARGIN
    assert len(hostile.hits) < recordings.NOT_READY_RETRIES + 1


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


def test_webhook_reprompts_when_the_recording_redirects(twilio_post, runtime, hostile):
    hostile.behaviour = "redirect"
    response = post_recording(twilio_post, hostile.url + PATH)
    assert response.status_code == 200 and b"<Record " in response.data
    (event,) = recording_events(runtime)
    assert event["kind"] == "RECORDING_REFUSED" and "redirect" in event["detail"]["reason"]
    assert hostile.hits == [PATH + ".wav"]


def test_webhook_reprompts_when_the_recording_drips(twilio_post, runtime, hostile, monkeypatch):
    monkeypatch.setattr(webhooks, "RECORDING_FETCH_BUDGET_SEC", BUDGET)
    hostile.behaviour = "drip"
    started = time.monotonic()
    response = post_recording(twilio_post, hostile.url + PATH)
    assert time.monotonic() - started < BUDGET + MARGIN
    assert response.status_code == 200 and b"<Record " in response.data
    (event,) = recording_events(runtime)
    assert event["kind"] == "RECORDING_ERR" and "RecordingTimeout" in event["detail"]["err"]


def test_time_spent_fetching_comes_out_of_the_turns_budget(settings, hostile, monkeypatch):
    monkeypatch.setattr(webhooks, "TWILIO_WEBHOOK_BUDGET_SEC", LATE_SEC * 2.5)
    monkeypatch.setattr(webhooks, "RECORDING_FETCH_BUDGET_SEC", LATE_SEC * 5)
    hostile.behaviour = "late"
    app = create_app(settings.replace(asr_engine="fake", llm_engine="fake", tts_engine="fake",
                                      turn_mode="record", llm_timeout_sec=30.0))
    rt = app.extensions["ivr"]
    rt.engines.llm.delay = LATE_SEC * 3
    params = {"CallSid": CALL_SID, "AccountSid": ACCOUNT_SID, "RecordingSid": RE_SID,
              "RecordingUrl": hostile.url + PATH, "RecordingDuration": "1"}
    try:
        response = app.test_client().post("/webhook/handle_recording", data=params, headers={
            "X-Twilio-Signature": sign(BASE + "/webhook/handle_recording", params)})
        errors = [e["detail"]["err"] for e in rt.store.events(CALL_SID) if e["kind"] == "LLM_ERR"]
    finally:
        rt.close()
    assert response.status_code == 200 and b"<Play>" in response.data
    (err,) = errors  # the LLM had only what the late fetch left of the webhook's budget
    allowed = float(err.split("took longer than ")[1].split(" s")[0])
    assert allowed <= LATE_SEC * 2.5 - LATE_SEC


def test_keep_saves_the_audio_and_its_metadata_under_a_safe_name(tmp_path):
    path = keep(str(tmp_path), "RE../x1", b"RIFFdata", {"call_sid": "CA1"})
    assert path == tmp_path / "recordings" / "REx1.wav" and path.read_bytes() == b"RIFFdata"
    assert json.loads((tmp_path / "recordings" / "REx1.json").read_text()) == {"call_sid": "CA1"}


def test_purge_before_deletes_old_recordings_with_their_metadata_and_keeps_recent(tmp_path):
    old, recent = keep(str(tmp_path), "REold", b"a", {}), keep(str(tmp_path), "REnew", b"b", {})
    lonely = tmp_path / "recordings" / "RElonely.json"  # metadata whose audio is gone
    lonely.write_text("{}")
    then = time.time() - 100 * 86400
    for path in (old, old.with_suffix(".json"), lonely):
        os.utime(path, (then, then))
    assert purge_before(str(tmp_path), time.time() - 90 * 86400) == 2
    assert sorted(p.name for p in (tmp_path / "recordings").iterdir()) == [
        "REnew.json", "REnew.wav"]
    assert recent.exists()


def test_purge_before_with_no_recordings_folder_is_zero(tmp_path):
    assert purge_before(str(tmp_path / "nothing-here"), time.time()) == 0
