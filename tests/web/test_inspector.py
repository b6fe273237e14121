"""The request inspector: locked by default, and a whole emulated call readable in Chromium."""

import datetime
import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ivr.phrases import REPEAT_PROMPT

from ..conftest import AUTH_TOKEN, BASE, CALL_SID, backdate, wait_until
from ..livehelpers import ROOT

ARTIFACTS = ROOT / "test-artifacts"
FAKES = {"asr_engine": "fake", "llm_engine": "fake", "tts_engine": "fake", "turn_mode": "stream"}


LOCAL = "http://127.0.0.1:5000"


@pytest.mark.parametrize("base,peer,status", [
    (BASE, "127.0.0.1", 401),  # bound to loopback behind a reverse proxy: the world's requests
    (BASE, "203.0.113.7", 401),
    (LOCAL, "203.0.113.7", 401),
    (LOCAL, "127.0.0.1", 200),
    ("http://localhost:5000", "::1", 200),
])
def test_without_a_token_only_a_local_line_is_open(client, runtime, settings, base, peer, status):
    runtime.settings = settings.replace(bind_host="127.0.0.1", public_base_url=base)
    response = client.get("/inspector", environ_base={"REMOTE_ADDR": peer})
    assert response.status_code == status
    if status == 401:
        assert b"INSPECTOR_TOKEN" in response.data


def test_the_token_cookie_is_secure_behind_an_https_proxy(client, runtime, settings):
    runtime.settings = settings.replace(inspector_token="s3cret-inspector")
    response = client.get("/inspector?token=s3cret-inspector")  # plain http from the proxy
    assert "; Secure" in response.headers["Set-Cookie"]


def test_the_token_cookie_works_over_http_on_a_local_line(client, runtime, settings):
    runtime.settings = settings.replace(inspector_token="s3cret-inspector", public_base_url=LOCAL)
    response = client.get("/inspector?token=s3cret-inspector")
    assert "Secure" not in response.headers["Set-Cookie"]
    assert client.get("/inspector").status_code == 200


def test_token_in_query_becomes_a_cookie_and_bearer_works(client, runtime, settings):
    runtime.settings = settings.replace(inspector_token="s3cret-inspector")
    assert client.get("/inspector?token=wrong").status_code == 401
    first = client.get("/inspector?token=s3cret-inspector")
    assert first.status_code == 302 and first.headers["Location"].endswith("/inspector")
    assert "HttpOnly" in first.headers["Set-Cookie"]
    assert client.get("/inspector").status_code == 200  # the cookie now
    other = client.application.test_client()  # a new client has no cookie
    assert other.get("/inspector").status_code == 401
    ok = other.get("/inspector", headers={"Authorization": "Bearer s3cret-inspector"})
    assert ok.status_code == 200 and ok.headers["Cache-Control"] == "no-store"


def test_unknown_call_is_404(client, runtime, settings):
    runtime.settings = settings.replace(public_base_url=LOCAL)
    assert client.get("/inspector/calls/CA" + "0" * 32).status_code == 404


@pytest.fixture
def fallback_call(phone_line):
    line = phone_line(bind_host="127.0.0.1", **FAKES)
    line.runtime.engines.asr.texts = iter(["מה שעות הפתיחה שלכם?"] * 5)
    result = line.carrier.place_call({"steps": [{"say": "שלום, מה שעות הפתיחה שלכם?"}]},
                                     ws_refuse=True)
    return line, result


def test_a_call_with_a_fallback_reads_as_a_timeline(fallback_call):
    line, result = fallback_call
    client = line.app.test_client()
    listing = client.get("/inspector").get_data(as_text=True)
    assert f"/inspector/calls/{result.call_sid}" in listing and "+972501234567" in listing
    page = client.get(f"/inspector/calls/{result.call_sid}").get_data(as_text=True)
    for expected in ("STREAM_STATUS", "stream-error", "31920", "STREAM_FALLBACK", "RECORDING_SAVED",
                     "TURN", "TwiML answered", "&lt;Record", "מה שעות הפתיחה שלכם?", "<audio",
                     "CALL_STATUS", "stream never started", 'class="he"'):
        assert expected in page, expected
    assert AUTH_TOKEN not in page


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("Debian's chromium is needed for this test: apt-get install chromium")
    return path


@pytest.mark.live  # starts a process
def test_inspector_in_headless_chromium_with_a_screenshot(fallback_call, tmp_path):
    line, result = fallback_call
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "inspector_call.png"
    shot.unlink(missing_ok=True)
    url = f"{line.url}/inspector/calls/{result.call_sid}"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'chromium'}", "--window-size=1300,1800"]
    dom = subprocess.run([chromium(), *flags, "--dump-dom", url], capture_output=True,
                         text=True, timeout=120)
    assert "STREAM_FALLBACK" in dom.stdout and "מה שעות הפתיחה שלכם?" in dom.stdout
    subprocess.run([chromium(), *flags, f"--screenshot={shot}", url], capture_output=True,
                   timeout=120)
    assert shot.is_file() and shot.stat().st_size > 20_000
    assert Path(shot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_each_turn_shows_its_stage_timing_bar(phone_line):
    line = phone_line(bind_host="127.0.0.1", reply_mode="play", **FAKES)
    result = line.carrier.place_call({"steps": [{"say": "שלום, מה שעות הפתיחה שלכם?"}]})
    (turn,) = wait_until(lambda: line.store.turns(result.call_sid))
    first_audio = json.loads(turn["timings"])["first_audio"]
    assert first_audio == turn["first_audio_ms"] > 0
    page = line.app.test_client().get(f"/inspector/calls/{result.call_sid}").get_data(
        as_text=True)
    assert 'class="bar"' in page and 'class="seg first_audio"' in page
    assert f"first audio out {first_audio} ms" in page


SCRIPTED = {"asr_engine": "fake", "llm_engine": "scripted", "tts_engine": "fake"}
TURN_ROW = re.compile(r'<tr class="[^"]*">\s*<td[^>]*>(\d+)</td><td>(\w+)</td>\s*'
                      r'<td class="he">([^<]*)')


def test_turns_are_numbered_from_1_as_heard_the_greeting_and_silence_included(phone_line):
    line = phone_line(bind_host="127.0.0.1", turn_mode="gather", **SCRIPTED)
    flow = line.runtime.engines.llm.flow
    result = line.carrier.place_call({"steps": [{"say": "מה שעות הפתיחה?"}, {"silence": 20},
                                                {"say": "מה הכתובת?"}], "reply_timeout": 60})
    wait_until(lambda: "מה הכתובת?" in [t["user_text"] for t in line.store.turns(result.call_sid)])
    page = line.app.test_client().get(f"/inspector/calls/{result.call_sid}").get_data(
        as_text=True)
    rows = [(int(n), source, said.strip()) for n, source, said in TURN_ROW.findall(page)]
    assert [n for n, _s, _t in rows] == list(range(1, len(rows) + 1))
    assert rows[0] == (1, "greeting", "") and rows[1] == (2, "gather", "מה שעות הפתיחה?")
    assert rows[-1] == (len(rows), "gather", "מה הכתובת?")
    assert len(rows) >= 4 and all(said == "" for _n, _s, said in rows[2:-1])  # silence
    assert page.count(REPEAT_PROMPT) == len(rows) - 3  # the line's answer to each silence
    for heard in (flow["greeting"], flow["intents"][0]["answer"], flow["intents"][1]["answer"]):
        assert html.escape(heard, quote=False) in page, heard


NO_STATUS = "ended (no status from Twilio)"
NOV_23_1405_IST = datetime.datetime(2026, 11, 23, 12, 5, tzinfo=datetime.UTC).timestamp()


def local_inspector(client, runtime, settings, **changes):
    """The inspector's pages by path, with the token (webhooks stay signed for BASE)."""
    runtime.settings = settings.replace(inspector_token="s3cret-inspector", **changes)
    return lambda path: client.get(path, headers={"Authorization": "Bearer s3cret-inspector"}
                                   ).get_data(as_text=True)


def test_times_are_in_the_line_s_time_zone_with_the_zone_named(client, runtime, settings):
    page = local_inspector(client, runtime, settings)
    runtime.store.ensure_call(CALL_SID, from_number="+972501111111")
    runtime.store.update_call(CALL_SID, started_at=NOV_23_1405_IST)
    runtime.store.add_lead(CALL_SID, caller="+972501111111", name="דנה")
    for text in (page("/inspector"), page(f"/inspector/calls/{CALL_SID}")):
        assert "2026-11-23 14:05:00 IST" in text and "12:05:00" not in text
        assert "Times in Asia/Jerusalem" in text


def test_doctor_s_probe_is_not_in_the_owner_s_list_but_can_be_shown_as_a_check(
        client, runtime, settings, twilio_post):
    page = local_inspector(client, runtime, settings)
    probe = "CA" + "d0c" * 10 + "00"
    twilio_post("/webhook/incoming_call", CallSid=probe, From="doctor", To="doctor")
    twilio_post("/webhook/stream_ended", CallSid=probe, From="doctor", To="doctor")
    twilio_post("/webhook/incoming_call", From="+972501111111")
    listing = page("/inspector")
    assert probe not in listing and CALL_SID in listing and "Show</a> 1 check call" in listing
    shown = page("/inspector?checks=1")
    assert probe in shown and "check (doctor)" in shown
    assert "A check call by" in page(f"/inspector/calls/{probe}")


def test_a_call_twilio_never_sent_a_final_status_for_ends_after_the_timeout(
        client, runtime, settings, twilio_post):
    page = local_inspector(client, runtime, settings)  # NO_STATUS_AFTER_SEC: 900
    quiet, live = CALL_SID, "CA" + "b" * 32
    for sid in (quiet, live):
        twilio_post("/webhook/incoming_call", CallSid=sid, From="+972501111111",
                    CallStatus="ringing")
    runtime.store.flush()
    backdate(runtime.store, quiet, 901 / 86400)  # its last event fifteen minutes ago
    listing = page("/inspector")
    assert listing.count(NO_STATUS) == 1
    assert NO_STATUS in page(f"/inspector/calls/{quiet}")
    assert NO_STATUS not in page(f"/inspector/calls/{live}")
    twilio_post("/webhook/call_status", CallSid=quiet, CallStatus="completed", CallDuration="30")
    assert NO_STATUS not in page("/inspector")  # the status came after all
