"""OpenTelemetry traces of the turns (OTLP/HTTP) from the event log, when an endpoint is set."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Mapping
from typing import Any

from .metrics import is_number, label

log = logging.getLogger("ivr")
# the switch: the SDK itself reads these and every other OTEL_* variable (headers, timeout,
# OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER, OTEL_BSP_*)
ENDPOINT_ENV = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
SERVICE = "ivr"  # service.name, unless OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES names one
# the TURN event's `<stage>_ms`: when each stage first happened after the end of the caller's
# speech (SpokenReply.ms); each is a child span from that end to the stage
STAGES = ("asr", "llm_first", "llm_done", "first_chunk", "first_chunk_audio", "first_audio",
          "last_chunk")
CALL_ID_CHARS = 16  # of the call SID's SHA-256 (hex): the same call's spans, never its SID


def enabled() -> bool:
    """An OTLP endpoint is set for traces."""
    return any(os.environ.get(name) for name in ENDPOINT_ENV)


class Tracer:
    """This process's tracer provider (OTLP/HTTP exporter behind a batch processor) and the
    trace ids it gives: a call's turns share the trace derived from its SID. opentelemetry is
    imported here, on first use: in a gunicorn worker, never in the master."""

    def __init__(self):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

        class CallTraceIds(RandomIdGenerator):
            """A root span's trace id: the one set for this thread, else a random one."""

            def __init__(self):
                self.next = threading.local()

            def generate_trace_id(self) -> int:
                return getattr(self.next, "trace_id", 0) or super().generate_trace_id()

        self.ids = CallTraceIds()
        resource = Resource.create({SERVICE_NAME: SERVICE}).merge(OTELResourceDetector().detect())
        # not the global provider: the Google clients' own spans stay out of these traces
        self.provider = TracerProvider(resource=resource, id_generator=self.ids)
        self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        self.tracer = self.provider.get_tracer("ivr")

    def turn(self, call_sid: str | None, d: Mapping[str, Any], end_ns: int) -> None:
        """One `turn` span from the end of the caller's speech to the turn's record (the event,
        at `end_ns`), a child span per stage; no words, no numbers of the caller."""
        from opentelemetry.trace import Status, StatusCode, set_span_in_context
        stages = {s: d[f"{s}_ms"] for s in STAGES if is_number(d.get(f"{s}_ms"))}
        length_ms = max([d["turn_ms"] if is_number(d.get("turn_ms")) else 0, *stages.values()])
        start_ns = end_ns - round(length_ms * 1e6)
        attributes = {"ivr.mode": label(d.get("mode")), "ivr.source": label(d.get("source"))}
        if call_sid:
            attributes["ivr.call"] = call_hash(call_sid)
        if is_number(d.get("turn")):
            attributes["ivr.turn"] = int(d["turn"])
        if is_number(d.get("chunks")):
            attributes["ivr.chunks"] = int(d["chunks"])
        if d.get("fallback"):
            attributes["ivr.fallback"] = label(d["fallback"])
        if d.get("ending"):
            attributes["ivr.ending"] = label(d["ending"])
        self.ids.next.trace_id = trace_id(call_sid) if call_sid else 0
        try:
            span = self.tracer.start_span("turn", start_time=start_ns, attributes=attributes)
        finally:
            self.ids.next.trace_id = 0
        if d.get("fallback"):
            span.set_status(Status(StatusCode.ERROR, attributes["ivr.fallback"]))
        context = set_span_in_context(span)
        for stage, ms in sorted(stages.items(), key=lambda item: item[1]):
            child = self.tracer.start_span(stage, context=context, start_time=start_ns,
                                           attributes={"ivr.mode": attributes["ivr.mode"]})
            child.end(end_time=start_ns + round(ms * 1e6))
        span.end(end_time=end_ns)


def call_hash(call_sid: str) -> str:
    """The call's name in a trace: its SID's SHA-256, cut (the same on every worker)."""
    return hashlib.sha256(call_sid.encode()).hexdigest()[:CALL_ID_CHARS]


def trace_id(call_sid: str) -> int:
    """The call's trace: 128 bits of its SID's SHA-256 (never 0, OpenTelemetry's invalid id)."""
    return int.from_bytes(hashlib.sha256(b"trace:" + call_sid.encode()).digest()[:16]) or 1


TRACERS: list[Tracer] = []
TRACERS_LOCK = threading.Lock()


def tracer() -> Tracer:
    """This process's tracer (two threads asking first get the same one)."""
    if not TRACERS:
        with TRACERS_LOCK:
            if not TRACERS:
                TRACERS.append(Tracer())
    return TRACERS[0]


def event(kind: str, call_sid: str | None, detail: Mapping[str, Any]) -> None:
    """A TURN event becomes the turn's spans when an endpoint is set; never raises."""
    if kind != "TURN" or not enabled():
        return
    try:
        tracer().turn(call_sid, detail, time.time_ns())
    except Exception as exc:  # noqa: BLE001 - a trace is never worth a call
        log.warning("TRACING_ERR kind=%s err=%r", kind, exc)


def force_flush() -> bool:
    """Export the spans ended so far (the batch processor's queue); True when done."""
    return TRACERS[0].provider.force_flush() if TRACERS else True


def shutdown() -> None:
    """Export what is queued and stop (a gunicorn worker's exit); a later turn starts anew."""
    with TRACERS_LOCK:
        gone = TRACERS[:]
        TRACERS.clear()
    for t in gone:
        t.provider.shutdown()
