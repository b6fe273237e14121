"""The line on the Twilio the emulator now models: an unsigned Media Streams upgrade (a good
stream token lets it in), and webhooks signed with a Webhooks SharedKey."""

import json
import subprocess
import sys

import pytest
import requests
import websocket
from twilio.request_validator import RequestValidator

from ivr import signatures, twiml
from ivr.sim import Carrier

from .conftest import ACCOUNT_SID, AUTH_TOKEN, BASE, CALL_SID, make_settings, sign
from .livehelpers import ROOT, free_port, start_script_env, wait_for, wait_until

FAKES = {"asr_engine": "fake", "llm_engine": "fake", "tts_engine": "fake", "turn_mode": "stream"}
SECRET = "webhooks-shared-key-secret-0123"
KEY = ("KS" + "1" * 32, SECRET, "HMAC_SHA256")
CALL = "CA" + "e" * 32
STREAM = "MZ" + "5" * 32


def kinds(line, call_sid):
    return [e["kind"] for e in line.store.events(call_sid)]


# ---- the unsigned Media Streams upgrade --------------------------------------------------------


def raw_socket(line, signature: str | None = None):
    headers = [f"X-Twilio-Signature: {signature}"] if signature is not None else []
    return websocket.create_connection(line.url.replace("http", "ws") + "/ws/twilio-media",
                                       header=headers, timeout=10)


def start(call_sid, turn=1, token=None):
    token = twiml.stream_token(AUTH_TOKEN, call_sid, turn) if token is None else token
    return json.dumps({"event": "start", "streamSid": STREAM,
                       "start": {"streamSid": STREAM, "callSid": call_sid,
                                 "customParameters": {"call_sid": call_sid, "turn": str(turn),
                                                      "token": token}}})


MEDIA = json.dumps({"event": "media", "streamSid": STREAM,
                    "media": {"payload": "//////////8=", "track": "inbound"}})


def closed_with(ws) -> tuple[int, str]:
    while True:
        opcode, data = ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return int.from_bytes(data[:2], "big"), data[2:].decode()


def test_unsigned_upgrades_with_good_tokens_stream_every_turn_and_are_logged_once(phone_line):
    line = phone_line(**FAKES, reply_mode="play")
    result = line.carrier.place_call("three_turns", ws_unsigned=True)
    assert result.error_codes == [] and len(result.connects) == 4  # a new socket every turn
    assert len(result.forks) == 3  # and one over each reply
    assert all(s["opened"] is not None for s in result.streams)
    assert kinds(line, result.call_sid).count("PING_PONG_TX") == 3
    assert [e["kind"] for e in line.store.events("")].count("WS_UNSIGNED") == 1


@pytest.mark.parametrize("first", [MEDIA, start(CALL, token="0" * 32), start(CALL, token="")])
def test_an_unsigned_socket_without_a_good_start_is_closed_before_any_media(phone_line, first):
    line = phone_line(**FAKES)
    line.store.ensure_call(CALL, turn=1, turn_mode="stream")
    ws = raw_socket(line)  # accepted (101): Twilio may not sign the upgrade
    ws.send(first)
    for _ in range(5):
        try:
            ws.send(MEDIA)
        except (websocket.WebSocketException, OSError):
            break
    assert closed_with(ws)[0] == 1008
    done = wait_until(lambda: [e["detail"] for e in line.store.events("")
                               if e["kind"] == "WS_DONE"])
    assert done[0]["rx"] == 0 and "WS_START" not in kinds(line, CALL)


def test_an_unsigned_socket_with_a_good_start_is_served(phone_line):
    line = phone_line(**FAKES)
    line.store.ensure_call(CALL, turn=1, turn_mode="stream")
    ws = raw_socket(line)
    ws.send(start(CALL))
    for _ in range(60):
        ws.send(MEDIA)
    wait_until(lambda: "WS_START" in kinds(line, CALL))
    ws.close()
    done = wait_until(lambda: [e["detail"] for e in line.store.events(CALL)
                               if e["kind"] == "WS_DONE"])
    assert done[0]["rx"] == 60


@pytest.mark.parametrize("signature", ["Zm9yZ2Vk", sign(BASE + "/ws/twilio-media", {})])
def test_a_present_but_wrong_signature_is_still_refused_with_403(phone_line, signature):
    line = phone_line(**FAKES)
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        raw_socket(line, signature)  # forged, or signed for another URL
    assert refused.value.status_code == 403
    assert "WS_UNSIGNED" not in [e["kind"] for e in line.store.events("")]


# ---- webhooks signed with a Webhooks SharedKey -------------------------------------------------


def test_signature_rules(tmp_path):
    settings = make_settings(tmp_path, twilio_webhook_shared_key=f"old-secret, {SECRET}")
    url, params = BASE + "/webhook/call_status", {"CallSid": CALL_SID}
    sha256 = RequestValidator(SECRET).compute_signature(url, params, "HMAC_SHA256")
    header = f"key={KEY[0]},algorithm=HMAC_SHA256"
    assert signatures.problem(settings, url, params, sign(url, params)) is None  # the token's
    assert signatures.problem(settings, url, params, sha256, header) is None  # the 2nd key's
    assert "does not match the Webhooks SharedKey" in signatures.problem(
        settings, url, params, sign(url, params), header)  # the header decides which secret
    assert "unsupported" in signatures.problem(settings, url, params, sha256,
                                               "key=x,algorithm=HMAC_MD5")
    assert "TWILIO_WEBHOOK_SHARED_KEY is not set" in signatures.problem(
        settings.replace(twilio_webhook_shared_key=""), url, params, sha256, header)
    assert signatures.problem(settings, url, params, "") == "missing X-Twilio-Signature"


def shared_key_carrier(line, **options):
    return Carrier(line.url, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, speed=10,
                   shared_key=KEY, **options).start()


@pytest.mark.parametrize("mode", ["gather", "stream"])
def test_a_line_with_the_shared_key_takes_webhooks_and_upgrades_signed_with_it(phone_line,
                                                                               mode):
    line = phone_line(**{**FAKES, "turn_mode": mode}, twilio_webhook_shared_key=SECRET)
    carrier = shared_key_carrier(line)
    try:
        result = carrier.place_call({"steps": [{"say": "מה שעות הפתיחה?"}], "end": "hangup"})
    finally:
        carrier.stop()
    assert result.error_codes == [] and len(line.store.turns(result.call_sid)) == 1
    assert "SIGNATURE_REJECTED" not in [e["kind"] for e in line.store.events("")]
    assert ("WS_START" in kinds(line, result.call_sid)) == (mode == "stream")


def test_a_line_without_the_shared_key_refuses_what_is_signed_with_it(phone_line):
    line = phone_line(**{**FAKES, "turn_mode": "gather"})
    carrier = shared_key_carrier(line)
    try:
        result = carrier.place_call({"steps": [{"say": "שלום"}], "end": "hangup"})
    finally:
        carrier.stop()
    assert result.error_codes == [11200, 15003]  # incoming_call and call_status answered 403
    line.runtime.rejections.close()
    reasons = [e["detail"] for e in line.store.events("") if e["kind"] == "SIGNATURE_REJECTED"]
    assert "TWILIO_WEBHOOK_SHARED_KEY is not set" in json.dumps(reasons, ensure_ascii=False)


@pytest.mark.live  # starts a process
def test_the_carrier_command_signs_with_the_environments_shared_key(phone_line, tmp_path):
    line = phone_line(**{**FAKES, "turn_mode": "gather"}, twilio_webhook_shared_key=SECRET)
    port = free_port()
    other = "a-token-the-line-does-not-know-0"  # so only the shared key can sign for the line
    env = start_script_env(tmp_path, port, PUBLIC_BASE_URL=line.url,
                           TWILIO_ACCOUNT_SID=ACCOUNT_SID, TWILIO_AUTH_TOKEN=other)
    missing = subprocess.run([sys.executable, "-m", "ivr", "carrier", "--shared-key"], cwd=ROOT,
                             env=env, capture_output=True, text=True, timeout=60)
    assert missing.returncode != 0 and "TWILIO_WEBHOOK_SHARED_KEY" in missing.stderr
    env["TWILIO_WEBHOOK_SHARED_KEY"] = SECRET
    carrier = subprocess.Popen([sys.executable, "-m", "ivr", "carrier", "--shared-key", "--port",
                                str(port), "--server", line.url], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(f"http://127.0.0.1:{port}/sim/health", carrier)
        result = requests.post(f"http://127.0.0.1:{port}/sim/calls", timeout=120, json={
            "token": other, "speed": 10,
            "script": {"steps": [{"say": "שלום"}], "end": "hangup"}}).json()
    finally:
        carrier.terminate()
        carrier.wait(30)
    assert result["errors"] == [] and len(line.store.turns(result["call_sid"])) == 1
