"""The emulator driving the real line: signed webhooks accepted, records kept, `call` command."""

import json
import os
import subprocess
import sys
import wave

import pytest

from ..livehelpers import ROOT

pytestmark = pytest.mark.live  # rings whole calls through the emulator


def test_the_real_line_accepts_the_emulators_signed_webhooks(phone_line):
    line = phone_line()
    result = line.carrier.place_call({"steps": [{"say": "מה שעות הפתיחה?"}], "end": "hangup"})
    statuses = {r["url"].split("?")[0].rsplit("/", 1)[-1]: r["status"] for r in result.requests
                if r["direction"] == "out" and "/webhook/" in r["url"]}
    assert statuses["incoming_call"] == 200 and statuses["handle_gather"] == 200
    assert statuses["call_status"] == 204
    call = line.store.get_call(result.call_sid)
    assert call["ended"] and call["status"] == "completed"
    gather = [e for e in line.store.events(result.call_sid) if e["kind"] == "GATHER"][0]
    assert gather["detail"]["speech"] == "מה שעות הפתיחה?"
    assert not any(e["kind"] == "SIGNATURE_REJECTED" for e in line.store.events(""))


def test_call_command_rings_a_running_carrier_and_writes_wav_and_log(phone_line, tmp_path):
    line = phone_line(local=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "OPENAI_"))}
    env.update(VAR_DIR=str(tmp_path / "var"), PUBLIC_BASE_URL=line.url)
    wav, log = tmp_path / "call.wav", tmp_path / "call.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "ivr", "call", "--server", line.url, "--carrier", line.carrier.url,
         "--script", "dtmf", "--speed", "10", "--wav", str(wav), "--log", str(log)],
        cwd=ROOT, env=env, text=True, capture_output=True, timeout=120)
    assert "caller  presses 1" in proc.stdout, proc.stdout + proc.stderr
    assert "POST" in proc.stdout and "/webhook/incoming_call → 200" in proc.stdout
    with wave.open(str(wav)) as parsed:
        assert parsed.getnchannels() == 2 and parsed.getnframes() > 8000
    requests_logged = [json.loads(row) for row in log.read_text().splitlines()]
    assert requests_logged[0]["url"].endswith("/webhook/incoming_call")
    assert any(r.get("params", {}).get("Digits") == "1" for r in requests_logged)
    assert line.store.list_calls()[0]["ended"]


def test_call_command_rejects_an_unknown_fault(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "ivr", "call", "--fault", "meteor"], cwd=ROOT,
                          env={**os.environ, "VAR_DIR": str(tmp_path)}, text=True,
                          capture_output=True, timeout=60)
    assert proc.returncode != 0 and "unknown fault 'meteor'" in proc.stderr
