"""A turn's trace sent over OTLP/HTTP to a real receiver: its stages, its call, none of the
caller's words or number; nothing of OpenTelemetry loaded when no endpoint is set."""

import json
import os
import sqlite3
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from ivr import tracing
from ivr.sim.script import CallerScript

from .livehelpers import ROOT, free_port, start_script_env, wait_for, wait_until
from .test_metrics import ASK, FAKES, turn_events

CALLER = CallerScript.from_number  # the emulator's caller, +972…
OTEL_ENV = (*tracing.ENDPOINT_ENV, "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES")


class Receiver:
    """An OTLP/HTTP trace receiver on loopback: each POSTed ExportTraceServiceRequest decoded,
    its spans kept with their resource's attributes."""

    def __init__(self):
        self.spans: list[dict] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportTraceServiceRequest.FromString(body)
                with receiver.lock:
                    receiver.spans += [
                        {"path": self.path, "resource": attributes(rs.resource.attributes),
                         "name": s.name, "trace_id": s.trace_id, "span_id": s.span_id,
                         "parent": s.parent_span_id, "start": s.start_time_unix_nano,
                         "end": s.end_time_unix_nano, "attributes": attributes(s.attributes),
                         "status": s.status.code}
                        for rs in request.resource_spans for ss in rs.scope_spans
                        for s in ss.spans]
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def named(self, name: str) -> list[dict]:
        with self.lock:
            return [s for s in self.spans if s["name"] == name]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def attributes(pairs) -> dict:
    return {kv.key: getattr(kv.value, kv.value.WhichOneof("value")) for kv in pairs}


@pytest.fixture
def receiver(monkeypatch):
    """The receiver, and this process's OTLP endpoint set to it (the SDK adds /v1/traces)."""
    for name in OTEL_ENV:
        monkeypatch.delenv(name, raising=False)
    r = Receiver()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", r.url)
    yield r
    tracing.shutdown()  # the next test's provider reads its own endpoint
    r.stop()


def carries_callers_words_or_number(value) -> bool:
    text = str(value)
    return any("\u0590" <= ch <= "\u05ff" for ch in text) or any(
        number in text for number in (CALLER.lstrip("+"), "0" + CALLER[4:], CALLER[4:]))


@pytest.mark.parametrize("mode", ["play", "stream"])
def test_each_turn_of_a_call_is_a_turn_span_with_its_stages_in_the_calls_trace(
        phone_line, receiver, mode):
    """A call through the emulator with two turns: two `turn` spans in one trace (the call's),
    each as long as the turn (from the end of the caller's speech to its record) with a child
    per stage ending when the TURN event says; the reply mode, the turn, the call's hash as
    attributes, and neither the caller's Hebrew nor the caller's number anywhere."""
    line = phone_line(**FAKES, reply_mode=mode)
    result = line.carrier.place_call(ASK)
    assert result.error_codes == []
    turns = wait_until(lambda: len(turn_events(line, result.call_sid)) == 2
                       and turn_events(line, result.call_sid))
    assert tracing.force_flush()
    spans = wait_until(lambda: len(receiver.named("turn")) == 2 and receiver.spans)
    assert {s["path"] for s in spans} == {"/v1/traces"}
    assert {s["resource"]["service.name"] for s in spans} == {"ivr"}
    roots = {s["attributes"]["ivr.turn"]: s for s in spans if s["name"] == "turn"}
    assert sorted(roots) == [1, 2]
    trace = tracing.trace_id(result.call_sid).to_bytes(16)
    for event in turns:
        root = roots[event["turn"]]
        assert root["parent"] == b"" and root["trace_id"] == trace
        assert root["attributes"]["ivr.mode"] == mode
        assert root["attributes"]["ivr.call"] == tracing.call_hash(result.call_sid)
        assert root["end"] - root["start"] == event["turn_ms"] * 1_000_000
        children = {s["name"]: s for s in spans if s["parent"] == root["span_id"]}
        assert {"asr", "llm_first", "first_chunk_audio", "first_audio"} <= set(children)
        for name, child in children.items():
            assert child["trace_id"] == trace and child["start"] == root["start"]
            assert child["end"] - child["start"] == event[f"{name}_ms"] * 1_000_000
            assert child["end"] <= root["end"]
    for span in spans:
        values = [*span["attributes"].values(), *span["attributes"], span["name"]]
        assert not any(carries_callers_words_or_number(v) for v in values), span
        assert not any(result.call_sid in str(v) for v in values)


PROCESS = """
import sys
from ivr import tracing
tracing.event("TURN", "CA" + "b" * 32, {"turn": 3, "mode": "play", "source": "play",
              "fallback": "llm-error", "user": "מה השעה", "turn_ms": 900, "asr_ms": 400,
              "first_audio_ms": 850})
print(any(name.startswith("opentelemetry") for name in sys.modules))
"""


def test_a_process_sends_the_spans_it_holds_as_it_exits_under_otel_service_name(receiver):
    """A process whose batch would wait 10 minutes sends its turn (the fallback as the span's
    error) before it ends; OTEL_SERVICE_NAME wins over `ivr`."""
    env = {**os.environ, "OTEL_SERVICE_NAME": "front-desk", "OTEL_BSP_SCHEDULE_DELAY": "600000"}
    out = subprocess.run([sys.executable, "-c", PROCESS], cwd=ROOT, env=env, text=True,
                         capture_output=True, check=True)
    assert out.stdout.strip() == "True" and "TRACING_ERR" not in out.stderr
    [turn] = receiver.named("turn")  # already there: no waiting
    assert turn["resource"]["service.name"] == "front-desk"
    assert turn["attributes"]["ivr.fallback"] == "llm-error"
    assert turn["status"] == 2  # STATUS_CODE_ERROR
    assert turn["end"] - turn["start"] == 900 * 1_000_000
    assert sorted(s["name"] for s in receiver.spans) == ["asr", "first_audio", "turn"]


def test_with_no_endpoint_opentelemetry_is_never_imported():
    """The default line pays nothing: the app imported and a turn's event logged, and not one
    opentelemetry module loaded (nor in gunicorn's master, which imports the same)."""
    probe = ("import sys, ivr.asgi, ivr.gunicorn_conf\n"
             "from ivr import tracing\n"
             "tracing.event('TURN', 'CA' + 'c' * 32, {'turn': 1, 'mode': 'play', 'turn_ms': 5})\n"
             "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, text=True,
                         capture_output=True, check=True).stdout.strip()
    assert out == "[]"


@pytest.mark.live
def test_under_gunicorn_the_worker_traces_and_sends_its_spans_as_it_stops(tmp_path, receiver):
    """scripts/start.sh with an endpoint and a batch that would wait 10 minutes: the worker
    makes the spans of a call's turn, and stopping the line (SIGTERM, as a host does) sends
    them before the worker ends."""
    from ivr.config import LOCAL_ACCOUNT_SID, local_auth_token
    from ivr.sim import Carrier
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    carrier = Carrier(base, account_sid=LOCAL_ACCOUNT_SID,
                      auth_token=local_auth_token(tmp_path / "var")).start()
    env = start_script_env(tmp_path, port, TWILIO_API_BASE_URL=carrier.url,
                           OTEL_BSP_SCHEDULE_DELAY="600000",
                           **{k.upper(): v for k, v in FAKES.items()})
    line = subprocess.Popen(["bash", "scripts/start.sh"], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for(base + "/healthz", line)
        result = carrier.place_call({"steps": [{"say": "כמה זה עולה?"}], "end": "hangup"})
        assert result.error_codes == []

        def turns() -> list[dict]:
            with sqlite3.connect(tmp_path / "ivr.sqlite3") as conn:
                return [json.loads(d) for (d,) in conn.execute(
                    "SELECT detail FROM events WHERE kind = 'TURN'")]
        [event] = wait_until(turns)
        assert receiver.spans == []  # held by the worker's batch
    finally:
        line.terminate()
        output = line.communicate(timeout=120)[0]
        carrier.stop()
    assert line.returncode == 0, output
    [turn] = receiver.named("turn")
    assert turn["resource"]["service.name"] == "ivr"
    assert turn["attributes"]["ivr.call"] == tracing.call_hash(result.call_sid)
    assert turn["end"] - turn["start"] == event["turn_ms"] * 1_000_000
    assert "TRACING_ERR" not in output
