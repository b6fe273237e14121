"""A loopback OpenAI Realtime API (WebSocket) for the real `openai` client: sessions, out-of-band
and conversation responses spoken as paced audio deltas, cancel, and OpenAI's error events.

`OpenAI(base_url=…, websocket_base_url=server.url + "/v1")` reaches it through
`client.realtime.connect(model=…)`. What it refuses, as the service does: a missing key (401 at
the upgrade), a model the pinned SDK does not list or one past its shutdown date there (an
`error` event, then the socket closes), a client event the SDK's param types reject or with a
parameter they do not name, an output format other than the three documented ones, a voice
not offered, `reasoning` for a model that does not reason, an unknown event type (the SDK's
own word on each: tests/realtime_contract.py). Every event it sends is first validated against
the SDK's `RealtimeServerEvent`.

The audio is a tone (or espeak-ng speech) whose length follows the text, sent as `delta_sec`
deltas after `first_delta_sec`, `speed` times faster than real time (0: at once). Test knobs:
`misbehave = "answer"` (the voice answers the text instead of reading it), `hold_after`
(a response stops after that many deltas until `release` is set), `drop_after` (the socket is
cut after that many deltas), `stall` (responses are created but never speak).
"""

from __future__ import annotations

import base64
import datetime
import itertools
import json
import threading
import time
from urllib.parse import parse_qs, urlsplit

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import serve

from ivr import audio

from .realtime_contract import FORMATS, RealtimeContract, Refused, output_problem

ANSWER = "שלום! שמח לעזור, מה תרצה לדעת?"  # what a voice that answers instead of reading says
CHARS_PER_AUDIO_SEC = 14  # Hebrew speech: how long the audio of a text lasts
HOLD, CUT = object(), object()


class RealtimeServer:
    """The stand-in on a loopback port; `log` holds every event in and out, in order."""

    def __init__(self, today: datetime.date | None = None, speed: float = 0.0,
                 first_delta_sec: float = 0.0, delta_sec: float = 0.2, voice: str = "tone"):
        self.contract = RealtimeContract()
        self.today = today or datetime.date.today()
        self.speed, self.first_delta_sec, self.delta_sec = speed, first_delta_sec, delta_sec
        self.voice = voice  # "tone" or "espeak" (real Hebrew speech, for listening)
        self.misbehave = ""  # "answer": the voice answers the text instead of reading it
        self.hold_after: int | None = None
        self.release = threading.Event()
        self.drop_after: int | None = None
        self.stall = False
        self.log: list[dict] = []
        self.changed = threading.Condition()
        self.connections = 0
        self.open: set = set()  # the connections not closed yet
        self.ids = itertools.count(1)
        self.server = serve(self.session, "127.0.0.1", 0, process_request=self.authorize)
        self.port = self.server.socket.getsockname()[1]
        self.url = f"ws://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.release.set()
        self.close_all()
        self.server.shutdown()

    def close_all(self, code: int = 1001, reason: str = "going away") -> None:
        """Close every open connection, as the service does when a session expires."""
        with self.changed:
            sockets = list(self.open)
        for ws in sockets:
            ws.close(code, reason)

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self.ids):06d}"

    def note(self, **entry) -> None:
        with self.changed:
            self.log.append(entry)
            self.changed.notify_all()

    def kinds(self, direction: str = "in") -> list[str]:
        with self.changed:
            return [e["type"] for e in self.log if e["dir"] == direction]

    def wait_for(self, predicate, timeout: float = 60.0) -> bool:
        """Whether `predicate(log)` became true within `timeout` s (told of each event and
        each connection's end)."""
        with self.changed:
            return self.changed.wait_for(lambda: predicate(self.log), timeout)

    # ---- the upgrade ---------------------------------------------------------------------------
    def authorize(self, connection, request):
        """401 without a bearer key, 404 off /v1/realtime: refused before the upgrade."""
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            return connection.respond(401, "Missing bearer authentication in header\n")
        if urlsplit(request.path).path != "/v1/realtime":
            return connection.respond(404, "Not found\n")
        return None

    def session(self, ws) -> None:
        query = parse_qs(urlsplit(ws.request.path).query)
        model = (query.get("model") or [""])[0]
        with self.changed:
            self.connections += 1
            self.open.add(ws)
        try:
            session = RealtimeSession(self, ws, model)
            problem = self.contract.model_problem(model, self.today)
            if problem:
                session.error(Refused(problem, code="model_not_found"))
                ws.close(1008, "model_not_found")
                return
            session.run()
        finally:
            with self.changed:
                self.open.discard(ws)
                self.changed.notify_all()


class RealtimeSession:
    """One connection: its session configuration, responses in progress, the event loop."""

    def __init__(self, server: RealtimeServer, ws, model: str):
        self.server, self.ws, self.model = server, ws, model
        self.config = {"type": "realtime", "object": "realtime.session",
                       "id": server.new_id("sess"), "model": model,
                       "output_modalities": ["audio"], "instructions": "You are a helpful "
                       "assistant.", "tools": [], "tool_choice": "auto",
                       "max_output_tokens": "inf", "tracing": None, "prompt": None,
                       "expires_at": int(time.time()) + 3600,
                       "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000},
                                           "turn_detection": {"type": "server_vad"}},
                                 "output": {"format": {"type": "audio/pcm", "rate": 24000},
                                            "voice": "alloy", "speed": 1.0}}}
        self.conversation: list[dict] = []
        self.active: dict[str, Speaking] = {}  # response id → its remaining events
        self.spoke = False  # the voice is fixed once audio went out

    def send(self, event: dict) -> None:
        event = {"event_id": self.server.new_id("event"), **event}
        self.server.contract.server_events.validate_python(event)  # the SDK must be able to read it
        self.ws.send(json.dumps(event))
        resource = event.get("response") or {}
        self.server.note(dir="out", type=event["type"],
                         response=event.get("response_id") or resource.get("id"),
                         status=resource.get("status"))

    def error(self, refused: Refused, event_id: str | None = None) -> None:
        self.send({"type": "error", "error": {"type": refused.kind, "code": refused.code,
                                              "message": str(refused), "param": refused.param,
                                              "event_id": event_id}})

    def run(self) -> None:
        self.send({"type": "session.created", "session": self.config})
        try:
            while True:
                try:
                    self.receive(self.ws.recv(timeout=self.until_due()))
                except TimeoutError:  # a delta is due before any client event came
                    pass
                self.speak_due()
        except ConnectionClosed:
            return

    def until_due(self) -> float | None:
        """How long to wait for a client event before the next delta is due (None: no limit)."""
        dues = [s.due for s in self.active.values() if not s.held()]
        if any(s.held() for s in self.active.values()):
            dues.append(time.monotonic() + 0.05)  # poll the release
        if not dues:
            return None
        return max(0.0, min(dues) - time.monotonic())

    def receive(self, raw) -> None:
        try:
            event = json.loads(raw)
        except ValueError:
            return self.error(Refused("We could not parse the JSON body of your request.",
                                      code="invalid_json"))
        kind = event.get("type") if isinstance(event, dict) else None
        self.server.note(dir="in", type=kind, event=event)
        try:
            self.server.contract.check(kind, event)
            handler = {"session.update": self.session_update,
                       "conversation.item.create": self.item_create,
                       "response.create": self.response_create,
                       "response.cancel": self.response_cancel}.get(kind)
            if handler is None:
                raise Refused(f"Invalid value: '{kind}'. This stand-in does not implement it.",
                              param="type")
            handler(event)
        except Refused as refused:
            self.error(refused, event.get("event_id"))

    # ---- the client events ---------------------------------------------------------------------
    def session_update(self, event: dict) -> None:
        update = event["session"]
        if update.get("type") != "realtime":
            raise Refused("This is a realtime session: session.type must be 'realtime'.",
                          param="session.type")
        output = (update.get("audio") or {}).get("output") or {}
        output_problem(output, "session.audio.output")
        if "voice" in output and self.spoke and output["voice"] != self.voice_now():
            raise Refused("Cannot update a conversation's voice if assistant audio is present.",
                          code="cannot_update_voice", param="session.audio.output.voice")
        if "reasoning" in update and not self.model.startswith("gpt-realtime-2"):
            raise Refused(f"The model `{self.model}` does not support 'reasoning'.",
                          code="unsupported_parameter", param="session.reasoning")
        for key, value in update.items():
            if key == "audio":
                for side, settings in value.items():
                    self.config["audio"][side].update(settings)
            elif key != "model":  # the model is the connection's (its URL)
                self.config[key] = value
        self.send({"type": "session.updated", "session": self.config})

    def voice_now(self) -> str:
        return self.config["audio"]["output"]["voice"]

    def item_create(self, event: dict) -> None:
        item = {"id": self.server.new_id("item"), "status": "completed", **event["item"]}
        self.conversation.append(item)
        self.send({"type": "conversation.item.added", "item": item,
                   "previous_item_id": None})
        self.send({"type": "conversation.item.done", "item": item, "previous_item_id": None})

    def response_create(self, event: dict) -> None:
        params = event.get("response") or {}
        output = (params.get("audio") or {}).get("output") or {}
        output_problem(output, "response.audio.output")
        if (params.get("output_modalities") or self.config["output_modalities"]) != ["audio"]:
            raise Refused("This stand-in speaks: output_modalities must be ['audio'].",
                          param="response.output_modalities")
        oob = params.get("conversation") == "none"
        if not oob and any(s.in_conversation for s in self.active.values()):
            raise Refused("Conversation already has an active response in progress.",
                          code="conversation_already_has_active_response")
        items = list(params["input"]) if "input" in params else self.conversation
        text = " ".join(part.get("text", "") for item in items if item.get("role") == "user"
                        for part in item.get("content", []) if part.get("type") == "input_text")
        speaking = Speaking(self, params, text.strip(), in_conversation=not oob)
        self.active[speaking.id] = speaking
        self.send({"type": "response.created", "response": speaking.resource("in_progress")})

    def response_cancel(self, event: dict) -> None:
        wanted = event.get("response_id")
        if wanted is None:
            wanted = next((i for i, s in self.active.items() if s.in_conversation), None)
        speaking = self.active.pop(wanted, None) if wanted else None
        if speaking is None:
            raise Refused("Cancellation failed: no active response found.",
                          code="response_cancel_not_active")
        speaking.finish("cancelled")

    def speak_due(self) -> None:
        """Send every event of every response that is due now."""
        for speaking in list(self.active.values()):
            while not speaking.held() and speaking.due <= time.monotonic():
                if not speaking.step():
                    self.active.pop(speaking.id, None)
                    break


class Speaking:
    """One response: the audio and transcript of its text, sent step by step when due."""

    def __init__(self, session: RealtimeSession, params: dict, text: str, in_conversation: bool):
        server = session.server
        self.session, self.params, self.in_conversation = session, params, in_conversation
        self.id, self.item_id = server.new_id("resp"), server.new_id("item")
        self.said = ANSWER if server.misbehave == "answer" else text
        output = session.config["audio"]["output"]
        chosen = (params.get("audio") or {}).get("output") or {}
        self.format = chosen.get("format") or output["format"]
        self.voice = chosen.get("voice") or output["voice"]
        self.transcript = ""
        self.deltas = self.total = 0
        self.due = time.monotonic() + server.first_delta_sec
        self.steps = self.events()

    def held(self) -> bool:
        server = self.session.server
        return server.hold_after is not None and self.deltas >= server.hold_after \
            and not server.release.is_set() and self.deltas < self.total

    def resource(self, status: str, reason: str | None = None) -> dict:
        item = {"id": self.item_id, "type": "message", "object": "realtime.item",
                "role": "assistant", "status": "completed" if status == "completed"
                else "incomplete", "content": [{"type": "output_audio",
                                                "transcript": self.transcript}]}
        return {"id": self.id, "object": "realtime.response", "status": status,
                "status_details": {"type": status, "reason": reason} if reason else None,
                "output": [item] if status != "in_progress" else [],
                "conversation_id": "conv_1" if self.in_conversation else None,
                "output_modalities": ["audio"],
                "audio": {"output": {"format": self.format, "voice": self.voice}},
                "metadata": self.params.get("metadata"), "usage": None}

    def audio(self) -> bytes:
        """The audio of what is said, in the response's format."""
        if self.session.server.voice == "espeak":
            pcm = audio.espeak_pcm16(self.said)
        else:
            seconds = max(0.3, len(self.said) / CHARS_PER_AUDIO_SEC)
            pcm = audio.beep_pcm16(round(seconds * 1000), 300 + len(self.said) % 200, 3000)
        kind = self.format["type"]
        if kind == "audio/pcm":
            return audio.resample(pcm, audio.RATE, 24000)
        return audio.pcm16_to_ulaw(pcm) if kind == "audio/pcmu" else audio.audioop.lin2alaw(pcm, 2)

    def events(self):
        """(the event, or HOLD/CUT) in order; `self.due` moves on as the audio is made."""
        server, ids = self.session.server, {"response_id": self.id, "item_id": self.item_id,
                                            "output_index": 0}
        part = {**ids, "content_index": 0}
        sound = self.audio()
        rate = FORMATS[self.format["type"]] * (2 if self.format["type"] == "audio/pcm" else 1)
        step = max(1, round(rate * server.delta_sec))
        pieces = [sound[i:i + step] for i in range(0, len(sound), step)]
        self.total = len(pieces)
        yield {"type": "response.output_item.added", **ids, "item": self.resource(
            "completed")["output"][0] | {"status": "in_progress", "content": []}}
        yield {"type": "response.content_part.added", **part,
               "part": {"type": "audio", "transcript": ""}}
        words = self.said.split()
        for n, piece in enumerate(pieces):
            if server.drop_after is not None and n >= server.drop_after:
                yield CUT
            if n < len(words):
                delta = words[n] + (" " if n + 1 < len(words) else "")
                self.transcript += delta
                yield {"type": "response.output_audio_transcript.delta", **part, "delta": delta}
            yield {"type": "response.output_audio.delta", **part,
                   "delta": base64.b64encode(piece).decode()}
            self.deltas += 1
            if server.speed:
                self.due += server.delta_sec / server.speed
            if self.held():
                yield HOLD
        rest = " ".join(words[len(pieces):])
        if rest:
            self.transcript = (self.transcript + " " + rest).strip()
            yield {"type": "response.output_audio_transcript.delta", **part, "delta": rest}
        yield None  # the audio is over: finish() sends the closing events

    def step(self) -> bool:
        """Send the next event; False once the response is done."""
        if self.session.server.stall:
            self.due = time.monotonic() + 3600
            return True
        event = next(self.steps)
        if event is CUT:
            self.session.ws.close(1011, "injected: connection lost")
            raise ConnectionClosed(None, None)
        if event is HOLD:
            return True
        if event is None:
            self.finish("completed")
            return False
        if event["type"] == "response.output_audio.delta":
            self.session.spoke = True
        self.session.send(event)
        return True

    def finish(self, status: str) -> None:
        """The closing events: done audio, transcript, part, item, then the response."""
        part = {"response_id": self.id, "item_id": self.item_id, "output_index": 0,
                "content_index": 0}
        self.session.send({"type": "response.output_audio.done", **part})
        self.session.send({"type": "response.output_audio_transcript.done", **part,
                           "transcript": self.transcript})
        self.session.send({"type": "response.content_part.done", **part,
                           "part": {"type": "audio", "transcript": self.transcript}})
        resource = self.resource(status, "client_cancelled" if status == "cancelled" else None)
        self.session.send({"type": "response.output_item.done", "response_id": self.id,
                           "output_index": 0, "item": resource["output"][0]})
        self.session.send({"type": "response.done", "response": resource})
