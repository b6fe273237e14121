"""The doctor passes a healthy line; each check fails, with its fix, when its cause is injected."""

import io
import os
import subprocess
import sys

import pytest

from ivr.doctor import FIRST_AUDIO_SEC, Doctor, report
from ivr.tts_cache.prompts import prewarm

from .livehelpers import ROOT


@pytest.fixture
def healthy(phone_line, monkeypatch):
    line = phone_line(local=True, turn_mode="stream", asr_engine="fake")
    monkeypatch.setenv("TWILIO_API_BASE_URL", line.carrier.url)  # the alerts' Monitor API
    rt = line.runtime
    prewarm(rt.cache, rt.engines.tts, rt.engines.llm, rt.settings, out=io.StringIO())
    return line


def run(line, **kwargs):
    s = line.runtime.settings
    results = Doctor(line.url, s.twilio_auth_token, s.twilio_account_sid, **kwargs).run()
    return {c.name: c for c in results}, results


def test_a_healthy_line_is_go(healthy):
    checks, results = run(healthy)
    assert all(c.ok for c in results), report(results)
    assert "Connect" in checks["incoming_call TwiML"].detail
    assert all(c["ended"] for c in healthy.store.list_calls())  # the doctor closed its call
    assert report(results).endswith(f"GO: {len(results)} passed, 0 failed")


FIRST_AUDIO = f"a silent caller hears the line within {FIRST_AUDIO_SEC:g} s"


def test_a_new_call_on_a_streaming_line_hears_the_greeting_within_2_s(healthy):
    checks, _ = run(healthy)
    first = checks[FIRST_AUDIO]
    assert first.ok and first.detail.startswith("the stream's first audio after"), first.detail
    heard = float(first.detail.split("after ")[1].split(" s")[0])
    assert 0.8 <= heard < FIRST_AUDIO_SEC  # the caller's 0.8 s, then the greeting


def test_a_streaming_line_silent_until_the_caller_speaks_is_no_go(healthy):
    rt = healthy.runtime
    rt.settings = rt.settings.replace(stream_greeting=False)
    checks, results = run(healthy)
    silent = checks[FIRST_AUDIO]
    assert not silent.ok and "said nothing" in silent.detail
    assert "STREAM_GREETING=true" in silent.fix
    assert "NO-GO" in report(results)


def test_a_line_without_websockets_is_told_how_to_serve_them_not_gunicorn_gthread(tmp_path):
    import http.server
    import threading
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True,
                     kwargs={"poll_interval": 0.05}).start()  # a quick shutdown
    try:
        doctor = Doctor(f"http://127.0.0.1:{server.server_address[1]}", "token")
        doctor.check_websocket(offer=True)
    finally:
        server.shutdown()
    (failed,) = doctor.results
    assert not failed.ok and "gthread" not in failed.fix
    assert "ivr.asgi.Worker" in failed.fix and "scripts/start.sh" in failed.fix
    assert "Upgrade" in failed.fix


def test_a_websocket_refused_for_its_signature_names_the_url_and_token(healthy):
    doctor = Doctor(healthy.url, "not-the-lines-token")
    doctor.check_websocket(offer=True)
    (failed,) = doctor.results
    assert not failed.ok and "403" in failed.detail
    assert f"PUBLIC_BASE_URL must be exactly {healthy.url}" in failed.fix


def test_a_wrong_public_base_url_fails_with_its_fix(healthy):
    rt = healthy.runtime
    rt.settings = rt.settings.replace(public_base_url="https://old-deployment.example.com")
    checks, _ = run(healthy)
    failed = checks["incoming_call TwiML"]
    assert not failed.ok and failed.detail.startswith("403")
    assert f"PUBLIC_BASE_URL must be exactly {healthy.url}" in failed.fix
    rt.settings = rt.settings.replace(validate_twilio_signature=False)
    checks, _ = run(healthy)
    failed = checks["incoming_call TwiML"]
    assert "not on" in failed.detail
    assert failed.fix == f"set PUBLIC_BASE_URL on the server to {healthy.url}"


def test_a_missing_mp3_fails_with_its_fix(healthy):
    os.unlink(os.path.join(healthy.runtime.settings.tts_dir, "fallback_he.mp3"))
    checks, _ = run(healthy)
    failed = checks["fallback_he.mp3 answers 200 audio/mpeg"]
    assert not failed.ok and failed.detail.startswith("404") and "prewarm" in failed.fix
    assert checks["greeting_he.mp3 answers 200 audio/mpeg"].ok


def test_a_route_answering_204_instead_of_200_fails_with_its_fix(healthy):
    inner = healthy.app.wsgi_app

    def broken(environ, start_response):
        if environ["PATH_INFO"] == "/webhook/stream_ended":
            start_response("204 No Content", [])
            return [b""]
        return inner(environ, start_response)
    healthy.app.wsgi_app = broken
    checks, _ = run(healthy)
    failed = checks["stream_ended answers 200 text/xml"]
    assert not failed.ok and failed.detail.startswith("204") and "12100" in failed.fix


def test_config_checks_fail_on_http_and_trailing_slash():
    doctor = Doctor("http://line.example.com/", "")
    doctor.check_config()
    assert [c.ok for c in doctor.results] == [False, False, False]
    assert "https://" in doctor.results[0].fix
    assert doctor.results[1].fix.startswith("remove the trailing / from --url")


@pytest.mark.live  # starts a process
def test_the_command_exits_1_on_any_fail(healthy, tmp_path):
    env = {**os.environ, "VAR_DIR": str(tmp_path / "var"), "ASR_ENGINE": "fake",  # the line's
           "TWILIO_API_BASE_URL": healthy.carrier.url}
    good = subprocess.run([sys.executable, "-m", "ivr", "doctor", "--url", healthy.url],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert good.returncode == 0 and "GO:" in good.stdout, good.stdout
    credentials = next(line for line in good.stdout.splitlines() if "credentials" in line)
    assert "TWILIO_AUTH_TOKEN present" not in credentials  # it is the emulator's token
    assert "the local emulator's token" in credentials
    assert FIRST_AUDIO in good.stdout
    bad = subprocess.run([sys.executable, "-m", "ivr", "doctor", "--url", healthy.url + "/"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "NO-GO" in bad.stdout
    assert "fix: remove the trailing / from --url" in bad.stdout


def test_a_local_line_on_another_port_reads_the_alerts_of_its_own_emulator(tmp_path):
    """`doctor --url http://127.0.0.1:5050` with PORT unset: scripts/run_local.sh started that
    line's emulator on 5051, which the alerts check reads (not PORT+1 of the environment)."""
    from ivr.config import LOCAL_ACCOUNT_SID, Settings, local_auth_token
    from ivr.sim import Carrier

    from .livehelpers import free_port
    settings = Settings.from_env({"VAR_DIR": str(tmp_path / "var")})  # local mode, PORT unset
    token = local_auth_token(tmp_path / "var")
    carrier = Carrier("http://127.0.0.1:9", account_sid=LOCAL_ACCOUNT_SID, auth_token=token,
                      port=free_port()).start()
    try:
        line = f"http://127.0.0.1:{int(carrier.url.rsplit(':', 1)[1]) - 1}"
        doctor = Doctor(line, token, LOCAL_ACCOUNT_SID, settings)
        doctor.check_twilio_alerts()
    finally:
        carrier.stop()
    (alerts,) = doctor.results
    assert settings.port + 1 != int(carrier.url.rsplit(":", 1)[1])
    assert alerts.ok and alerts.detail == "none", alerts


@pytest.mark.parametrize("path", ["/webhook/stream_status", "/webhook/stream_ended",
                                  "/webhook/call_status"])
def test_a_status_webhook_refusing_the_signature_is_told_the_signature_fix(healthy, path):
    """A 403 there is a signature mismatch (the URL or the token), not a route to repair."""
    inner = healthy.app.wsgi_app

    def refusing(environ, start_response):
        if environ["PATH_INFO"] == path:
            start_response("403 Forbidden", [])
            return [b""]
        return inner(environ, start_response)
    healthy.app.wsgi_app = refusing
    _, results = run(healthy)
    (failed,) = [c for c in results if not c.ok]
    assert failed.detail.startswith("403") and "must answer" not in failed.fix
    assert f"PUBLIC_BASE_URL must be exactly {healthy.url}" in failed.fix
    assert "127.0.0.1 and localhost differ" in failed.fix and "TWILIO_AUTH_TOKEN" in failed.fix
