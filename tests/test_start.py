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

pytestmark = pytest.mark.live  # starts processes

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
    assert ET.fromstring(response.content).find("Gather").get("language") == "iw-IL"


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
    assert result.returncode == 1 and f"port {port} is already in use by " in result.stderr
    assert "gunicorn" in result.stderr and "pkill" not in result.stderr  # the holder, by pid


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


def children(pid: int) -> list[int]:
    path = f"/proc/{pid}/task/{pid}/children"
    return [int(p) for p in open(path).read().split()] if os.path.exists(path) else []


def test_a_worker_killed_mid_call_comes_back_and_its_watchdog_still_moves_the_call(tmp_path):
    """kill -9 of the worker (a crash, an OOM kill) while a call's stream has not started: the
    respawned worker re-arms the call's checks from the store and moves it to <Record>."""
    import sqlite3
    import threading
    import time

    from ivr.config import LOCAL_ACCOUNT_SID, local_auth_token
    from ivr.sim import Carrier
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    token = local_auth_token(tmp_path / "var")
    carrier = Carrier(base, account_sid=LOCAL_ACCOUNT_SID, auth_token=token).start()
    env = start_script_env(tmp_path, port, TWILIO_API_BASE_URL=carrier.url, ASR_ENGINE="fake",
                           LLM_ENGINE="fake", TTS_ENGINE="fake", TURN_MODE="stream",
                           STREAM_START_TIMEOUT_SEC="2")
    proc = subprocess.Popen(["bash", "scripts/start.sh"], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    db = tmp_path / "ivr.sqlite3"

    def events(kind: str) -> list:
        with sqlite3.connect(db) as conn:
            return conn.execute("SELECT call_sid, ts FROM events WHERE kind = ?",
                                (kind,)).fetchall()
    try:
        wait_for(base + "/healthz", proc)
        results = []
        caller = threading.Thread(target=lambda: results.append(carrier.place_call(
            {"steps": [{"silence": 8}], "end": "hangup"}, speed=1.0, stream_hangs=True)))
        caller.start()
        deadline = time.monotonic() + 30
        while not events("TWIML"):
            assert time.monotonic() < deadline, "the call never reached the line"
            time.sleep(0.05)
        [worker] = children(proc.pid)
        os.kill(worker, signal.SIGKILL)
        killed_at = time.time()
        while children(proc.pid) in ([], [worker]):
            assert time.monotonic() < deadline + 30, "gunicorn did not respawn its worker"
            time.sleep(0.05)
        wait_for(base + "/healthz", proc)
        caller.join(90)
        [result] = results
        assert events("WATCHDOG_RECOVERED")
        [(call_sid, redirected_at)] = events("WATCHDOG_REDIRECT_OK")
        assert call_sid == result.call_sid
        updates = [r for r in result.requests if r["direction"] == "in"]
        assert updates and all(r["status"] == 200 for r in updates)
        assert any(h["url"].endswith("/fallback_he.mp3") for h in result.heard)
        print(f"RESTART_RECOVERY_SEC={redirected_at - killed_at:.1f}")
    finally:
        proc.terminate()
        proc.wait(15)
        carrier.stop()


def test_the_line_leaves_no_control_socket_another_line_would_share(serve, tmp_path):
    """gunicorn's control socket is ~/.gunicorn/gunicorn.ctl by default, one path for every
    master on the machine (two lines, a cluster's instances): start.sh runs without one."""
    home = tmp_path / "home"
    home.mkdir()
    base, _ = serve(HOME=str(home))
    assert requests.get(base + "/healthz", timeout=HTTP_TIMEOUT).status_code == 200
    assert not (home / ".gunicorn").exists()
