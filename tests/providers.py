"""Local servers speaking the OpenAI and Google protocols, for the real client libraries."""

from __future__ import annotations

import base64
import itertools
import json
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from datetime import date

import grpc
import pytest
from flask import Flask, Response, jsonify, request

from ivr import audio
from ivr.chunking import speakable_chunks

from . import openai_contract as contract
from .livehelpers import LiveServer

SPEECH_API_LAST_DAY = date(2027, 1, 5)  # /v1/audio/speech's models shut down the day after:
# tests of that endpoint answer as on this day, so they do not fail once it has passed


@dataclass(frozen=True)
class Called:
    """A function call a scripted model makes (ProviderServer.model): streamed as OpenAI does."""

    name: str
    arguments: dict = field(default_factory=dict)


CALL_IDS = itertools.count(1)


class ProviderServer:
    """One loopback HTTP server; `mode` makes the next answers ok, 429, 500 or slow.

    "slow" holds each request until the server stops (or `slow_sec`): an answer later than any
    stage timeout, however loaded the machine, so only a timeout can end the caller's wait.
    Its OpenAI side refuses what OpenAI refuses (tests/openai_contract.py) on the day `today`
    (default: the real date); `compatible` makes it an older OpenAI-compatible server instead
    (any model, the classic chat request).
    """

    def __init__(self):
        self.app = Flask("fake-provider")
        self.mode = "ok"
        self.today: date | Callable[[], date] | None = None
        self.compatible = False
        self.slow_sec = 60.0
        self.release = threading.Event()
        self.requests: list[dict] = []
        self.reply_text = "אנחנו פתוחים עד שש בערב."
        self.chat_breaks_after: int | None = None  # streamed chat: drop the line after N chars
        self.chat_holds_after: int | None = None  # streamed chat: after N chars, wait `release`
        self.tool_call = ""  # streamed chat: the model then calls this tool (after its text)
        # a scripted model: the chat request's body → what it writes, text and Called calls
        self.model: Callable[[dict], list[str | Called]] | None = None
        self.held_speech = ""  # speech of a text containing this waits for `speech_go`
        self.speech_go = threading.Event()
        self.speech_halfway = threading.Event()  # set: each MP3 stops halfway until it is clear
        self.speech_chars_per_sec = 0.0  # speech as long as the text says (else 0.5 s always)
        self.transcript = "מה שעות הפתיחה?"
        self.refusal: tuple[int, dict] | None = None  # every API request answered this way
        self.app.before_request(self.fault)
        self.app.before_request(self.refuse)
        self.add_routes()
        self.live = LiveServer().serve(self.app)
        self.url = self.live.url

    def fault(self):
        if request.path.startswith("/v1") or ":" in request.path:
            if self.mode == "slow":
                self.release.wait(self.slow_sec)
            elif self.mode in ("429", "500"):
                status = int(self.mode)
                return jsonify({"error": {"code": status, "message": f"injected {status}",
                                          "status": "RESOURCE_EXHAUSTED" if status == 429
                                          else "INTERNAL", "type": "server_error"}}), status
        return None

    def day(self) -> date:
        """The day of the request being answered: `today` (a date, or a function of nothing that
        gives it, asked once a request), else the real date."""
        today = self.today() if callable(self.today) else self.today
        return today or date.today()

    # ---- refusals as the providers send them (the engine probe's tests) ------------------------
    def refuse_openai(self, status: int, code: str | None, message: str,
                      kind: str = "invalid_request_error", param: str | None = None) -> None:
        """Refuse every request as OpenAI does: {"error": {message, type, param, code}}; a
        `{model}` in the message is the model the request named."""
        self.refusal = (status, {"error": {"message": message, "type": kind, "param": param,
                                           "code": code}})

    def refuse_google(self, status: int, status_name: str, message: str, reason: str = "",
                      metadata: dict | None = None) -> None:
        """Refuse every request as a Google REST API does, with its google.rpc.ErrorInfo."""
        details = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason,
                    "domain": "googleapis.com", "metadata": metadata or {}}] if reason else []
        self.refusal = (status, {"error": {"code": status, "message": message,
                                           "status": status_name, "details": details}})

    def refuse(self):
        if self.refusal and (request.path.startswith("/v1") or ":" in request.path):
            status, body = self.refusal
            model = (request.get_json(silent=True) or {}).get("model") or \
                request.form.get("model", "")
            return Response(json.dumps(body).replace("{model}", model), status,
                            mimetype="application/json")
        return None

    def chat_events(self, model: str, body: dict):
        """The reply as OpenAI streams it (SSE): a role, then a few characters a chunk; a
        function call as its name and id first, then its arguments in pieces."""
        def event(delta: dict, finish: str | None = None) -> str:
            return "data: " + json.dumps({
                "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0,
                "model": model, "choices": [{"index": 0, "delta": delta,
                                             "finish_reason": finish}]}) + "\n\n"
        pieces = self.model(body) if self.model else [self.reply_text] + (
            [Called(self.tool_call)] if self.tool_call else [])
        text = "".join(p for p in pieces if isinstance(p, str))
        calls = [p for p in pieces if isinstance(p, Called)]
        if text or not calls:
            yield event({"role": "assistant", "content": "", "refusal": None})
        for i in range(0, len(text), 5):
            if self.chat_breaks_after is not None and i >= self.chat_breaks_after:
                raise ConnectionAbortedError("injected: the stream breaks off")
            if self.chat_holds_after is not None and i >= self.chat_holds_after > i - 5:
                self.release.wait(self.slow_sec)  # a model stalled mid-reply
            yield event({"content": text[i:i + 5]})
        for index, call in enumerate(calls):
            head = {"index": index, "id": f"call_{next(CALL_IDS):024d}", "type": "function",
                    "function": {"name": call.name, "arguments": ""}}
            first = {"tool_calls": [head]}
            yield event(first if text or index else
                        {"role": "assistant", "content": None, "refusal": None, **first})
            arguments = json.dumps(call.arguments, ensure_ascii=False)
            for i in range(0, len(arguments), 7):
                yield event({"tool_calls": [{"index": index,
                                             "function": {"arguments": arguments[i:i + 7]}}]})
        yield event({}, "tool_calls" if calls else "stop")
        yield "data: [DONE]\n\n"

    def add_routes(self):
        app = self.app

        @app.post("/v1/chat/completions")
        def chat():
            body = request.get_json()
            self.requests.append({"path": request.path, "json": body,
                                  "auth": request.headers.get("Authorization")})
            refusal = contract.chat_refusal(body, self.day(), self.compatible)
            if refusal:
                return jsonify(refusal[0]), refusal[1]
            if body.get("stream"):
                return Response(self.chat_events(body["model"], body),
                                mimetype="text/event-stream")
            return jsonify({"id": "chatcmpl-1", "object": "chat.completion", "created": 0,
                            "model": body["model"], "choices": [{
                                "index": 0, "finish_reason": "stop",
                                "message": {"role": "assistant", "content": self.reply_text}}],
                            "usage": {"prompt_tokens": 1, "completion_tokens": 1,
                                      "total_tokens": 2}})

        @app.post("/v1/audio/transcriptions")
        def transcriptions():
            upload = request.files["file"]
            fields = request.form.to_dict(flat=False)
            self.requests.append({"path": request.path, "form": request.form.to_dict(),
                                  "fields": fields, "file": upload.read(),
                                  "filename": upload.filename})
            refusal = contract.transcription_refusal(fields, self.day(), self.compatible)
            if refusal:
                return jsonify(refusal[0]), refusal[1]
            text = self.transcript if isinstance(self.transcript, str) else next(self.transcript)
            return jsonify({"text": text})

        @app.post("/v1/audio/speech")
        def speech():
            body = request.get_json()
            self.requests.append({"path": request.path, "json": body})
            refusal = contract.speech_refusal(body, self.day(), self.compatible)
            if refusal:
                return jsonify(refusal[0]), refusal[1]
            text = body["input"]
            if self.held_speech and self.held_speech in text:
                self.speech_go.wait(self.slow_sec)
            ms = round(1000 * len(text) / self.speech_chars_per_sec) \
                if self.speech_chars_per_sec else 500
            mp3 = audio.pcm16_to_mp3(audio.beep_pcm16(ms))
            if not self.speech_halfway.is_set():
                return Response(mp3, mimetype="audio/mpeg")
            return Response(self.halves(mp3), mimetype="audio/mpeg")

        @app.post("/v1/text:synthesize")
        def google_tts():
            self.requests.append({"path": request.path, "json": request.get_json(),
                                  "auth": request.headers.get("Authorization")})
            mp3 = audio.pcm16_to_mp3(audio.beep_pcm16(500))
            return jsonify({"audioContent": base64.b64encode(mp3).decode()})

    def halves(self, mp3: bytes):
        """The MP3's first half, then (once `speech_halfway` is clear) the rest."""
        yield mp3[:len(mp3) // 2]
        while self.speech_halfway.is_set() and not self.release.is_set():
            self.release.wait(0.01)
        yield mp3[len(mp3) // 2:]

    def stop(self):
        self.release.set()
        self.speech_go.set()
        self.live.stop()


# A three-sentence reply the OpenAI chat streams: cut into several speakable chunks.
REPLY = ("כן, בשמחה, אנחנו פתוחים היום עד שש בערב. ביום שישי אנחנו פתוחים עד אחת בצהריים, "
         "ואפשר לקבוע תור בטלפון או באתר. אם תרצה, אשמח לרשום אותך כבר עכשיו לתור הקרוב.")
CHUNKS = list(speakable_chunks([REPLY]))


@pytest.fixture(name="provider")
def streamed_reply_provider():
    """A ProviderServer whose chat streams REPLY (a module uses it by importing it)."""
    server = ProviderServer()
    server.reply_text = REPLY
    yield server
    server.stop()


@pytest.fixture(name="provider")
def plain_provider():
    """A ProviderServer with its default reply (a module uses it by importing it)."""
    server = ProviderServer()
    yield server
    server.stop()


@pytest.fixture(name="google_speech")
def fake_google_speech():
    """A FakeGoogleSpeech (a module uses it by importing it)."""
    server = FakeGoogleSpeech()
    yield server
    server.stop()


def serve_grpc(handler, tls: grpc.ServerCredentials | None = None) -> tuple[grpc.Server, int]:
    """A started gRPC server of `handler` on a loopback port (TLS with `tls`), and the port."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_secure_port("127.0.0.1:0", tls) if tls else \
        server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


class FakeGoogleSpeech:
    """google.cloud.speech.v1.Speech over an insecure loopback gRPC server.

    A stream is answered as the service does while audio arrives: an interim result each time
    the audio heard goes past another half second (so one second of audio gets one), then the
    final result FINAL_SEC after the client closes its side.
    """

    SERVICE = "google.cloud.speech.v1.Speech"
    INTERIM_BYTES = 4000  # half a second of 8 kHz μ-law
    FINAL_SEC = 0.15

    def __init__(self, tls: grpc.ServerCredentials | None = None):
        """`tls`: served over TLS with these credentials (bench/google_profile.py), else plain."""
        from google.cloud.speech_v1.types import cloud_speech as cs
        self.cs = cs
        self.mode = "ok"
        self.release = threading.Event()  # "slow" holds each call until the server stops
        self.stalled = self.answered = 0
        self.configs: list = []
        self.audio_bytes: list[int] = []  # the audio of each finished call
        self.progress = threading.Condition()
        self.streamed = 0  # the audio the latest stream has received so far
        self.interim, self.final = "מה שעות", "מה שעות הפתיחה?"
        self.refusal: tuple | None = None  # (grpc.StatusCode, message, ErrorInfo reason, metadata)
        handler = grpc.method_handlers_generic_handler(self.SERVICE, {
            "StreamingRecognize": grpc.stream_stream_rpc_method_handler(
                self.streaming, request_deserializer=cs.StreamingRecognizeRequest.deserialize,
                response_serializer=cs.StreamingRecognizeResponse.serialize),
            "Recognize": grpc.unary_unary_rpc_method_handler(
                self.recognize, request_deserializer=cs.RecognizeRequest.deserialize,
                response_serializer=cs.RecognizeResponse.serialize)})
        self.server, self.port = serve_grpc(handler, tls)

    def client(self):
        from google.cloud.speech_v1 import SpeechClient
        from google.cloud.speech_v1.services.speech.transports import SpeechGrpcTransport
        channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        return SpeechClient(transport=SpeechGrpcTransport(channel=channel))

    def refuse(self, code: grpc.StatusCode, message: str, reason: str = "",
               metadata: dict | None = None) -> None:
        """Abort every call as Google does: the status, its message, and a google.rpc.ErrorInfo in
        the status details (grpc-status-details-bin), which google-api-core reads as `reason`."""
        self.refusal = (code, message, reason, metadata or {})

    def _abort_refused(self, context):
        from google.protobuf import any_pb2
        from google.rpc import error_details_pb2, status_pb2
        from grpc_status import rpc_status
        code, message, reason, metadata = self.refusal
        details = []
        if reason:
            info = any_pb2.Any()
            info.Pack(error_details_pb2.ErrorInfo(reason=reason, domain="googleapis.com",
                                                  metadata=metadata))
            details.append(info)
        context.abort_with_status(rpc_status.to_status(status_pb2.Status(
            code=code.value[0], message=message, details=details)))

    def _fault(self, context):
        if self.refusal:
            self._abort_refused(context)
        if self.mode == "slow":
            self.stalled += 1
            self.release.wait(60)
            self.answered += 1
        elif self.mode == "unavailable":
            context.abort(grpc.StatusCode.UNAVAILABLE, "injected outage")
        elif self.mode == "exhausted":
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "injected quota")

    def _alt(self, text):
        return [self.cs.SpeechRecognitionAlternative(transcript=text, confidence=0.9)]

    def wait_streamed(self, size: int, timeout: float = 30.0) -> bool:
        """Whether the latest stream has received `size` bytes of audio within `timeout` s."""
        with self.progress:
            return self.progress.wait_for(lambda: self.streamed >= size, timeout)

    def _result(self, text: str, final: bool):
        return self.cs.StreamingRecognizeResponse(results=[self.cs.StreamingRecognitionResult(
            alternatives=self._alt(text), is_final=final)])

    def streaming(self, requests, context):
        received = interims = 0
        with self.progress:
            self.streamed = 0
        for item in requests:
            if item.streaming_config.config.language_code:
                self.configs.append(item.streaming_config)
            received += len(item.audio_content)
            with self.progress:
                self.streamed = received
                self.progress.notify_all()
            while received > (interims + 1) * self.INTERIM_BYTES:
                interims += 1
                yield self._result(self.interim, final=False)
        self.audio_bytes.append(received)
        self._fault(context)
        time.sleep(self.FINAL_SEC)
        yield self._result(self.final, final=True)

    def recognize(self, req, context):
        self.configs.append(req.config)
        self.audio_bytes.append(len(req.audio.content))
        self._fault(context)
        return self.cs.RecognizeResponse(results=[self.cs.SpeechRecognitionResult(
            alternatives=self._alt(self.final))])

    def stop(self):
        self.release.set()
        self.server.stop(0)


def json_of(raw: bytes) -> dict:
    return json.loads(raw)
