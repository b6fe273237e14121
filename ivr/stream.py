"""/ws/twilio-media: the Media Streams protocol ⇄ a call's turns; rx/tx counters and markers."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
import time
from collections import deque

from flask import request
from flask_sock import Sock
from twilio.request_validator import RequestValidator

from . import audio, twiml
from .runtime import Runtime, current_runtime
from .turns import BargeIn, Greet, TurnDetector, TurnParams, Utterance

sock = Sock()
SUBPROTOCOL = "audio.twilio.com"
MAX_MESSAGE_BYTES = 64 * 1024  # Twilio's media messages are < 1 KB; bigger ones are skipped
MEDIA_LOG_EVERY = 50
BAD_LOG_EVERY = 100
MEDIA_STORE_EVERY_SEC = 1.0


class TimedInbox(list):
    """simple-websocket's input buffer, noting when the socket reader received each message."""

    def __init__(self):
        super().__init__()
        self.arrivals: deque[float] = deque()
        self.last_arrival = 0.0

    def append(self, message) -> None:
        self.arrivals.append(time.monotonic())
        super().append(message)

    def pop(self, index: int = -1):
        message = super().pop(index)
        self.last_arrival = self.arrivals.popleft() if index == 0 else time.monotonic()
        return message


class TimedReaderThread(threading.Thread):
    """simple-websocket's socket reader, given a TimedInbox before it reads its first byte."""

    def __init__(self, *args, target=None, **kwargs):
        ws = getattr(target, "__self__", None)
        if ws is not None and isinstance(ws.input_buffer, list) and not ws.input_buffer:
            ws.input_buffer = TimedInbox()
        super().__init__(*args, target=target, **kwargs)


class LagStats:
    """Frame-handling lag (received by the socket → handled), as a 1 ms histogram."""

    BINS = 1000

    def __init__(self):
        self.bins = [0] * (self.BINS + 1)
        self.max_ms = 0.0

    def add(self, arrived: float) -> None:
        lag = (time.monotonic() - arrived) * 1000
        self.max_ms = max(self.max_ms, lag)
        self.bins[min(self.BINS, int(lag))] += 1

    def sparse(self) -> dict[int, int]:
        """The non-empty bins, {ms: frames}, small enough for the WS_DONE event."""
        return {ms: count for ms, count in enumerate(self.bins) if count}

    def percentile(self, pct: float) -> int:
        total = sum(self.bins)
        seen = 0
        for ms, count in enumerate(self.bins):
            seen += count
            if total and seen >= total * pct / 100:
                return ms
        return 0


class StopStream(Exception):
    """End this WebSocket (bad token, or the stream is over)."""


class StreamRegistry:
    """Writes what the watchdog reads about each call's stream (start, media) to the store."""

    def __init__(self, rt: Runtime):
        self.rt = rt
        self.media_stored_at: dict[str, float] = {}

    def mark_start(self, session: MediaStreamSession) -> None:
        self.rt.store.claim_stream_start(session.call_sid, session.turn)

    def touch_media(self, call_sid: str) -> None:
        """Note media arriving; written to the store at most every quarter of the no-media
        timeout (and once a second at most), so the watchdog never mistakes a live stream."""
        now = time.time()
        every = min(MEDIA_STORE_EVERY_SEC, self.rt.settings.no_media_timeout_sec / 4)
        if now - self.media_stored_at.get(call_sid, 0) >= every:
            self.media_stored_at[call_sid] = now
            self.rt.store.update_call(call_sid, later=True, last_media_at=now)

    def remove(self, session: MediaStreamSession) -> None:
        self.media_stored_at.pop(session.call_sid, None)


def upgrade_signature_ok(rt: Runtime) -> bool:
    """X-Twilio-Signature of the upgrade request, computed by Twilio over the wss:// URL."""
    if not rt.settings.validate_twilio_signature:
        return True
    url = twiml.stream_url(rt.settings.public_base_url)
    query = request.query_string.decode("latin-1")
    url += f"?{query}" if query else ""
    signature = request.headers.get("X-Twilio-Signature", "")
    return RequestValidator(rt.settings.twilio_auth_token).validate(url, {}, signature)


SERVER_OPTIONS = {"subprotocols": [SUBPROTOCOL], "max_message_size": 8 * 1024 * 1024,
                  "ping_interval": None, "thread_class": TimedReaderThread}


@sock.route("/ws/twilio-media")
def media_stream(ws) -> None:
    rt = current_runtime()
    MediaStreamSession(rt, ws, upgrade_signature_ok(rt)).run()


class MediaStreamSession:
    """One WebSocket of a call: decodes frames, finds utterances, hands them to the turns."""

    def __init__(self, rt: Runtime, ws, upgrade_ok: bool):
        self.rt, self.ws, self.upgrade_ok = rt, ws, upgrade_ok
        self.stream_sid = self.call_sid = ""
        self.turn = 0
        self.rx = self.tx = self.bad = 0
        self.bad_kinds: set[str] = set()
        self.lag = LagStats()
        inbox = getattr(ws, "input_buffer", None)
        self.inbox = inbox if isinstance(inbox, TimedInbox) else None
        self.started = False
        self.closed = threading.Event()
        self.send_lock = threading.Lock()
        self.detector_lock = threading.Lock()
        self.detector: TurnDetector | None = None
        self.turns = None

    # ---- the receive loop ---------------------------------------------------------------------
    def run(self) -> None:
        self.rt.events.emit("WS_CONNECTED", protocol=getattr(self.ws, "subprotocol", None))
        try:
            while not self.closed.is_set():
                raw = self.ws.receive(timeout=1.0)
                if raw is not None:
                    self.handle(raw)
        except StopStream:
            pass
        except Exception as exc:  # noqa: BLE001 - ConnectionClosed and anything unexpected
            if exc.__class__.__name__ != "ConnectionClosed":
                logging.getLogger("ivr").exception("media stream failed")
        finally:
            self.finish()

    def handle(self, raw: str | bytes) -> None:
        if isinstance(raw, (bytes, bytearray)):
            return self.skip("binary message")
        if len(raw) > MAX_MESSAGE_BYTES:
            return self.skip(f"oversize message of {len(raw)} bytes", "oversize")
        try:
            message = json.loads(raw)
            event = message["event"]
        except (ValueError, KeyError, TypeError):
            return self.skip("not a JSON Media Streams message")
        handler = getattr(self, f"on_{event}", None) if isinstance(event, str) else None
        if handler is None:
            return self.skip(f"unknown event {str(event)[:40]!r}", "unknown event")
        try:
            handler(message)
        except StopStream:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            self.skip(f"malformed {event}: {exc.__class__.__name__}")

    def skip(self, reason: str, kind: str = "") -> None:
        """Log and drop a bad message (each kind once, then every 100th); never end the call."""
        self.bad += 1
        kind = kind or reason
        if kind not in self.bad_kinds or self.bad % BAD_LOG_EVERY == 0:
            self.bad_kinds.add(kind)
            self.rt.events.emit("WS_BAD", self.call_sid or None, logging.WARNING,
                                sid=self.stream_sid, reason=reason, count=self.bad)

    def send(self, message: dict) -> bool:
        message.setdefault("streamSid", self.stream_sid)
        try:
            with self.send_lock:
                self.ws.send(json.dumps(message))
            return True
        except Exception:  # noqa: BLE001 - the socket is gone; the receive loop ends
            self.closed.set()
            return False

    # ---- Twilio's events ----------------------------------------------------------------------
    def on_connected(self, _message: dict) -> None:
        pass

    def on_start(self, message: dict) -> None:
        start = message["start"]
        custom = start.get("customParameters") or {}
        call_sid = start.get("callSid") or custom.get("call_sid") or ""
        turn = int(custom.get("turn") or 0)
        if self.rt.settings.validate_twilio_signature and not (
                self.upgrade_ok and twiml.check_stream_token(self.rt.settings.signing_key,
                                                             call_sid, turn, custom.get("token"))):
            self.rt.events.emit("WS_REJECTED", call_sid or None, logging.WARNING,
                                reason="bad signature or token", upgrade_signed=self.upgrade_ok)
            self.ws.close(1008, "bad Twilio signature or stream token")
            raise StopStream()
        self.stream_sid, self.call_sid, self.turn = start.get("streamSid", ""), call_sid, turn
        self.started = True
        from .turnloop import StreamTurns
        self.turns = StreamTurns(self)
        greeting = bool(self.rt.settings.ai_greeting_he) and turn == 1
        self.detector = TurnDetector(TurnParams.from_settings(self.rt.settings, greeting))
        self.rt.turn_pool.submit(self.record_start)  # frames keep flowing meanwhile

    def record_start(self) -> None:
        """The stream's start in the store, the registry and the watchdog (off the media loop)."""
        self.rt.store.ensure_call(self.call_sid)
        self.rt.registry.mark_start(self)
        self.rt.watchdog.watch_media(self.call_sid, self.turn)
        self.rt.events.emit("WS_START", self.call_sid, sid=self.stream_sid, turn=self.turn,
                            mode=self.rt.settings.ws_mode, reply=self.rt.settings.reply_mode)

    def on_media(self, message: dict) -> None:
        if not self.started:
            return self.skip("media before start")
        try:
            payload = base64.b64decode(message["media"]["payload"], validate=True)
        except (binascii.Error, ValueError):
            return self.skip("bad base64 payload")
        self.rx += 1
        if self.rx % MEDIA_LOG_EVERY == 0:
            self.rt.events.emit_later("WS_MEDIA", self.call_sid, sid=self.stream_sid, rx=self.rx)
        self.rt.registry.touch_media(self.call_sid)
        if self.rt.settings.ws_mode == "ECHO":
            return self.send_media_frames([payload])
        pcm = audio.ulaw_to_pcm16(payload)
        with self.detector_lock:
            events = self.detector.feed(pcm, audio.rms(pcm))
        for event in events:
            if isinstance(event, Utterance):
                self.turns.dispatch(event)
            elif isinstance(event, BargeIn):
                self.turns.barge_in(event)
            elif isinstance(event, Greet):
                self.turns.greet()
        if self.inbox is not None:
            self.lag.add(self.inbox.last_arrival)

    def on_mark(self, message: dict) -> None:
        self.turns and self.turns.mark_played(message["mark"]["name"])

    def on_dtmf(self, message: dict) -> None:
        digit = str(message["dtmf"]["digit"])
        self.rt.events.emit("DTMF", self.call_sid or None, digit=digit)
        if self.turns:
            self.turns.dispatch_text(digit)

    def on_stop(self, _message: dict) -> None:
        raise StopStream()

    # ---- outbound -----------------------------------------------------------------------------
    def send_media_frames(self, frames: list[bytes], stop: threading.Event | None = None) -> int:
        sent = 0
        for frame in frames:
            if (stop and stop.is_set()) or self.closed.is_set():
                break
            if not self.send({"event": "media",
                              "media": {"payload": base64.b64encode(frame).decode()}}):
                break
            sent += 1
            self.tx += 1
            if self.tx % MEDIA_LOG_EVERY == 0:
                self.rt.events.emit_later("WS_TX", self.call_sid, sid=self.stream_sid, tx=self.tx)
        return sent

    def close(self) -> None:
        """Close the socket from our side (action delivery): Twilio then requests the action."""
        self.closed.set()
        try:
            self.ws.close()
        except Exception:  # noqa: BLE001 - already closed
            pass

    def finish(self) -> None:
        self.closed.set()
        if self.started:
            self.rt.registry.remove(self)
        self.rt.events.emit("WS_DONE", self.call_sid or None, sid=self.stream_sid, rx=self.rx,
                            tx=self.tx, bad=self.bad, lag_p99_ms=self.lag.percentile(99),
                            lag_max_ms=round(self.lag.max_ms, 1), lag_hist=self.lag.sparse())
