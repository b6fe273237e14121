"""The public MP3 files Twilio fetches, and /healthz (with the server's load)."""

import asyncio
import os
import threading
import time

import pytest

from ivr.lanes import Lanes
from ivr.media.loop import LagProbe

from ..conftest import wait_until


@pytest.fixture
def mp3(settings):
    path = os.path.join(settings.tts_dir, "greeting_he.mp3")
    with open(path, "wb") as handle:
        handle.write(b"ID3" + b"\0" * 200)
    return path


def test_cache_file_is_served_as_cacheable_audio_mpeg(client, mp3):
    response = client.get("/static/tts/greeting_he.mp3")
    assert response.status_code == 200 and response.mimetype == "audio/mpeg"
    assert response.data.startswith(b"ID3")
    assert "max-age=86400" in response.headers["Cache-Control"]
    assert response.headers["Content-Length"] == "203"


def test_head_answers_without_a_body(client, mp3):
    response = client.head("/static/tts/greeting_he.mp3")
    assert response.status_code == 200 and response.data == b""
    assert response.headers["Content-Type"] == "audio/mpeg"


@pytest.mark.parametrize("name", [
    "missing.mp3", "../ivr.sqlite3", "..%2Fivr.sqlite3", "%2e%2e/var/x.mp3", "sub/x.mp3",
    ".hidden.mp3", "greeting_he.wav", "a" * 200 + ".mp3", "link.mp3", "newline.mp3%0A",
])
def test_anything_but_a_plain_cache_file_is_404(client, mp3, settings, tmp_path, name):
    secret = tmp_path / "secret.mp3"
    secret.write_bytes(b"secret")
    os.symlink(secret, os.path.join(settings.tts_dir, "link.mp3"))
    os.makedirs(os.path.join(settings.tts_dir, "sub"))
    open(os.path.join(settings.tts_dir, "sub", "x.mp3"), "wb").close()
    with open(os.path.join(settings.tts_dir, "newline.mp3\n"), "wb") as odd:  # not a cache name
        odd.write(b"ID3" + b"\0" * 200)
    response = client.get("/static/tts/" + name)
    assert response.status_code == 404


def test_a_name_with_a_line_break_after_mp3_is_not_a_cache_file(app, mp3):
    """The file-name check itself (not only the router, whose path rule stops at a line break)."""
    from werkzeug.exceptions import NotFound

    from ivr.web.public import tts_file
    with open(mp3 + "\n", "wb") as odd:
        odd.write(b"ID3" + b"\0" * 200)
    with app.test_request_context("/static/tts/greeting_he.mp3"):
        served = tts_file("greeting_he.mp3")
        assert served.status_code == 200
        served.close()
        with pytest.raises(NotFound):
            tts_file("greeting_he.mp3\n")


def test_healthz_reports_engines_scheduler_and_database(client):
    response = client.get("/healthz")
    body = response.get_json()
    assert response.status_code == 200 and body["status"] == "ok"
    assert body["engines"] == {"asr": "none", "llm": "scripted", "tts": "espeak"}
    assert body["scheduler"]["running"] is True and body["db"]["ok"] is True


def test_healthz_is_503_when_the_scheduler_is_down(client, runtime):
    runtime.scheduler.shutdown(wait=False)
    response = client.get("/healthz")
    assert response.status_code == 503 and response.get_json()["status"] == "degraded"


def unhealthy(client) -> dict | None:
    """/healthz's body once it answers 503."""
    response = client.get("/healthz")
    return response.get_json() if response.status_code == 503 else None


def test_healthz_is_503_while_requests_wait_for_a_thread_and_reports_the_lanes(client, runtime):
    runtime.settings = runtime.settings.replace(health_max_wait_sec=0.1)
    runtime.lanes = Lanes({"calls": 4, "turns": 1})
    gate = threading.Event()
    busy = runtime.lanes["turns"].submit(gate.wait, 60)  # a turn waiting on a stalled engine
    queued = runtime.lanes["turns"].submit(lambda: "answered")
    body = wait_until(lambda: unhealthy(client))
    (problem,) = body["problems"]
    assert problem.startswith("turns requests wait for a thread: the oldest for ")
    assert "(1 of 1 threads busy, 1 queued; HEALTH_MAX_WAIT_SEC=0.1)" in problem
    turns = body["load"]["lanes"]["turns"]
    assert turns["busy"] == 1 and turns["queued"] == 1 and turns["waited_sec"] > 0.1
    assert body["load"]["continuations"] == {"waiting": 0, "cap": 40}
    assert client.get("/livez").get_json() == {"status": "alive"}  # no restart for overload
    gate.set()
    assert busy.result() and queued.result() == "answered"
    assert client.get("/healthz").status_code == 200
    runtime.lanes.close()


def test_healthz_is_503_after_the_event_loop_ran_late(client, runtime):
    runtime.settings = runtime.settings.replace(health_max_wait_sec=0.1)
    loop, probe = asyncio.new_event_loop(), LagProbe()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    loop.call_soon_threadsafe(probe.start, loop)
    runtime.lanes = Lanes({}, probe)
    wait_until(lambda: probe.recent_lag_ms())  # it ticks
    loop.call_soon_threadsafe(time.sleep, 0.3)  # a handler holds the loop 300 ms
    body = wait_until(lambda: unhealthy(client))
    assert any(p.startswith("the event loop ran ") for p in body["problems"])
    assert body["load"]["loop_lag_ms"]["recent_max"] > 100
    loop.call_soon_threadsafe(loop.stop)
    thread.join(60)
    loop.close()
