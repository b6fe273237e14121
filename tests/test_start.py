"""scripts/start.sh as an owner runs it: config checks first, then one live gunicorn."""

import os
import signal
import socket
import subprocess
import sys
import xml.etree.ElementTree as ET
from urllib.parse import urlsplit

import pytest
import requests

from .conftest import sign
from .livehelpers import ROOT, free_port, start_script_env, wait_for

CALL_SID = "CA" + "d" * 32
HTTP_TIMEOUT = 30  # a deadline for a loaded machine, not a speed requirement


@pytest.fixture
def serve(tmp_path):
    procs = []

    def start(**extra):
        port = free_port()
        proc = subprocess.Popen(["bash", "scripts/start.sh"], cwd=ROOT, text=True,
                                env=start_script_env(tmp_path, port, **extra),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        procs.append(proc)
        base = f"http://127.0.0.1:{port}"
        wait_for(base + "/healthz", proc)
        token = (tmp_path / "var" / "emulator_auth_token").read_text()
        return base, token
    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)


def signed_post(base, token, path, **params):
    url = base + path
    return requests.post(url, data=params, headers={"X-Twilio-Signature":
                                                    sign(url, params, token)}, timeout=HTTP_TIMEOUT)


def test_gunicorn_serves_healthz_and_a_signed_incoming_call_with_a_stream(serve):
    base, token = serve(ASR_ENGINE="fake")
    health = requests.get(base + "/healthz", timeout=HTTP_TIMEOUT).json()
    assert health["status"] == "ok" and health["turn_mode"] == "stream"
    assert health["local_mode"] is True and health["signatures"] is True
    response = signed_post(base, token, "/webhook/incoming_call", CallSid=CALL_SID)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/xml")
    stream = ET.fromstring(response.content).find("Connect/Stream")
    url = urlsplit(stream.get("url"))
    assert url.scheme == "wss" and url.query == "" and url.path == "/ws/twilio-media"
    assert {p.get("name") for p in stream.findall("Parameter")} == {"call_sid", "turn", "token"}
    forged = requests.post(base + "/webhook/incoming_call", data={"CallSid": CALL_SID},
                           headers={"X-Twilio-Signature": "Zm9yZ2Vk"}, timeout=HTTP_TIMEOUT)
    assert forged.status_code == 403


def test_embedded_defaults_answer_with_twilio_gather(serve):
    base, token = serve()
    assert requests.get(base + "/healthz", timeout=HTTP_TIMEOUT).json()["engines"]["asr"] == "none"
    response = signed_post(base, token, "/webhook/incoming_call", CallSid=CALL_SID)
    assert ET.fromstring(response.content).find("Gather").get("language") == "he-IL"


def test_bad_environment_stops_start_up_with_every_problem(tmp_path):
    env = start_script_env(tmp_path, free_port(), VAD_RMS="x", MAX_UTT_SEC="-1")
    result = subprocess.run(["bash", "scripts/start.sh"], cwd=ROOT, env=env, text=True,
                            capture_output=True, timeout=120)
    assert result.returncode == 1
    assert "VAD_RMS='x'" in result.stderr and "MAX_UTT_SEC='-1'" in result.stderr


def test_a_second_server_on_a_busy_port_is_refused(tmp_path, serve):
    base, _ = serve()
    port = urlsplit(base).port
    result = subprocess.run(["bash", "scripts/start.sh"], cwd=ROOT, text=True,
                            env=start_script_env(tmp_path, port), capture_output=True,
                            timeout=120)
    assert result.returncode == 1 and "already in use" in result.stderr


def test_run_local_starts_the_carrier_and_call_rings_through_it(tmp_path):
    port = free_port()
    while True:  # the carrier takes PORT+1
        try:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", port + 1))
            break
        except OSError:
            port = free_port()
    env = start_script_env(tmp_path, port)
    proc = subprocess.Popen(["bash", "scripts/run_local.sh"], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        wait_for(f"http://127.0.0.1:{port}/healthz", proc)
        wait_for(f"http://127.0.0.1:{port + 1}/sim/health", proc)
        call = subprocess.run([sys.executable, "-m", "ivr", "call", "--script", "dtmf",
                               "--speed", "10"], cwd=ROOT, env=env, text=True,
                              capture_output=True, timeout=120)
        assert "private one" not in call.stderr
        assert "caller  presses 1" in call.stdout and "completed" in call.stdout
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
