"""/ws/twilio-media: the Media Streams protocol ⇄ a call's turns; rx/tx counters and markers."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import re
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from .. import audio, signatures, threads, twiml
from ..calls import Calls
from ..runtime import Runtime
from .loop import Deadline, LagProbe, MediaSocket, percentile
from .turns import StreamTurns

MAX_MESSAGE_BYTES = 16 * 1024  # Twilio's messages are < 2 KB; the server refuses bigger (1009)
MAX_MEDIA_SOCKETS = 1000  # open sockets per process; past that the handshake is refused
START_DEADLINE_SEC = 5.0  # a socket must send a valid `start` this soon
IDLE_GRACE_SEC = 5.0  # a started socket silent for NO_MEDIA_TIMEOUT_SEC + this is closed
MEDIA_LOG_FIRST = 50  # WS_MEDIA / WS_TX once a second of audio has gone by (media flows),
MEDIA_LOG_EVERY = 3000  # then once a minute of audio; WS_DONE has the totals
BAD_LOG_EVERY = 100
MEDIA_STORE_EVERY_SEC = 1.0
SID_SHAPES = {"callSid": re.compile(r"CA[0-9a-fA-F]{32}"),  # fullmatch
              "streamSid": re.compile(r"MZ[0-9a-fA-F]{32}"),
              "accountSid": re.compile(r"AC[0-9a-fA-F]{32}")}


class StopStream(Exception):
    """End this WebSocket (bad token, or the stream is over)."""

    def __init__(self, code: int = 1000, reason: str = ""):
        super().__init__(reason)
        self.code, self.reason = code, reason


class MediaHeartbeat:
    """Tells the watchdog (through the store) that a call's stream started and media flows.
    A frame only notes its time in memory; every quarter of the no-media timeout (once a
    second at most) the calls that had media since are written in one statement, so the
    watchdog never mistakes a live stream for a silent one."""

    def __init__(self, calls: Calls, no_media_timeout_sec: float):
        self.calls = calls
        self.every = min(MEDIA_STORE_EVERY_SEC, no_media_timeout_sec / 4)
        self.pending: dict[str, float] = {}  # calls with media since the last write
        self.timer: asyncio.TimerHandle | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.timer is None:
            self.timer = loop.call_later(self.every, self.write, loop)

    def started(self, call_sid: str, turn: int) -> bool:
        return self.calls.stream_started(call_sid, turn)

    def media(self, call_sid: str) -> None:
        self.pending[call_sid] = time.time()

    def write(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.pending:
            pending, self.pending = self.pending, {}
            self.calls.touch_media_many(pending)
        self.timer = loop.call_later(self.every, self.write, loop)


def scope_headers(scope: dict) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def upgrade_signature_problem(rt: Runtime, scope: dict) -> str | None:
    """Why the upgrade's X-Twilio-Signature (computed by Twilio over the wss:// URL, with the
    auth token or a Webhooks SharedKey) is refused; None when it is good, or absent: Twilio
    may not sign the upgrade, so an unsigned one is let in and its `start` must then carry a
    good stream token (see `unsigned`)."""
    headers = scope_headers(scope)
    signature = headers.get(signatures.SIGNATURE_HEADER.lower(), "")
    if not rt.settings.validate_twilio_signature or not signature:
        return None
    url = twiml.stream_url(rt.settings.public_base_url)
    query = scope.get("query_string", b"").decode("latin-1")
    url += f"?{query}" if query else ""
    return signatures.problem(rt.settings, url, {}, signature,
                              headers.get(signatures.SIGNATURE_SETTINGS_HEADER.lower(), ""))


def unsigned(rt: Runtime, scope: dict) -> bool:
    """An upgrade without X-Twilio-Signature on a line that checks signatures."""
    return bool(rt.settings.validate_twilio_signature) and not scope_headers(scope).get(
        signatures.SIGNATURE_HEADER.lower())


def peer(scope: dict) -> str:
    return (scope.get("client") or ("?",))[0]


def chosen_subprotocol(offered: Sequence[str]) -> str | None:
    """Media Streams' subprotocol, echoed only when the peer offers it."""
    return twiml.SUBPROTOCOL if twiml.SUBPROTOCOL in offered else None


class MediaServer:
    """Accepts media WebSockets on the event loop (their wire: ivr.media.wire): refuses a
    bad handshake before `101`, caps the open sockets, opens each socket's session with its
    deadline. LineApp publishes it in the ASGI lifespan state under STATE_KEY."""

    STATE_KEY = "ivr.media"

    def __init__(self, rt: Runtime):
        self.rt = rt
        self.open = 0
        self.probe = LagProbe()
        self.heartbeat = MediaHeartbeat(rt.calls, rt.settings.no_media_timeout_sec)
        self.starts = threads.executor("stream-start")
        self.unsigned_seen = False  # WS_UNSIGNED is logged once per process

    def handshake_problem(self, scope: dict) -> str | None:
        """Why this upgrade is refused (with HTTP 403, before `101`), or None."""
        if scope["path"] != twiml.STREAM_PATH:
            return "no WebSocket at this path"
        if self.open >= MAX_MEDIA_SOCKETS:
            return f"{MAX_MEDIA_SOCKETS} media sockets open already"
        problem = upgrade_signature_problem(self.rt, scope)
        return f"WebSocket upgrade: {problem}" if problem else None

    def is_unsigned(self, scope: dict) -> bool:
        """An accepted upgrade without a signature (its session then needs a good `start`
        before anything else); the first one in this process is logged (WS_UNSIGNED)."""
        if not unsigned(self.rt, scope):
            return False
        if not self.unsigned_seen:
            self.unsigned_seen = True
            self.rt.events.emit("WS_UNSIGNED", None, logging.WARNING, source=peer(scope),
                                note="upgrade without X-Twilio-Signature: accepted, the "
                                     "stream token of its start is checked")
        return True

    def open_session(self, socket: MediaSocket, source: str,
                     unsigned: bool = False) -> MediaStreamSession:
        """An accepted socket's session, with its deadline (on the running loop)."""
        loop = asyncio.get_running_loop()
        self.probe.start(loop)
        self.heartbeat.start(loop)
        session = MediaStreamSession(self.rt, socket, self.probe, self.heartbeat, self.starts,
                                     source, unsigned)
        session.deadline = Deadline(loop, session.due, session.expire)
        self.open += 1
        session.opened()
        return session

    def close_session(self, session: MediaStreamSession) -> None:
        """The socket is done (call once)."""
        self.open -= 1
        session.deadline.cancel()
        session.finish()


class MediaStreamSession:
    """One WebSocket of a call: decodes frames, finds utterances, hands them to the turns.
    Its handlers run on the event loop: they never wait for the database or another thread."""

    def __init__(self, rt: Runtime, socket: MediaSocket, probe: LagProbe,
                 heartbeat: MediaHeartbeat, starts: ThreadPoolExecutor, source: str = "",
                 unsigned: bool = False):
        self.rt, self.socket, self.probe, self.source = rt, socket, probe, source
        self.unsigned = unsigned  # no signature on the upgrade: only a good `start` lets it in
        self.heartbeat, self.starts = heartbeat, starts
        self.stream_sid = self.call_sid = ""
        self.turn = 0
        self.rx = self.tx = self.bad = 0
        self.bad_kinds: set[str] = set()
        self.unknown_mark_logged = False
        self.lag_before = probe.snapshot()
        self.connected_at = self.last_rx = time.monotonic()
        self.started = False
        self.start_wall = 0.0  # time.time() of the `start` message
        self.closed = threading.Event()
        self.turns: StreamTurns | None = None
        self.deadline: Deadline | None = None

    # ---- the receive loop ---------------------------------------------------------------------
    def opened(self) -> None:
        self.rt.events.emit("WS_CONNECTED", None, sid="", protocol=self.socket.subprotocol)

    def receive(self, raw: str | bytes) -> None:
        """One whole message from the peer, on the event loop."""
        try:
            self.handle(raw)
        except StopStream as stop:
            self.close(stop.code, stop.reason)
        except Exception:  # noqa: BLE001 - one bad message never ends the call
            logging.getLogger("ivr").exception("media message failed")
            self.skip("handler error")

    def due(self) -> tuple[float, str]:
        """When this socket is closed for silence, and why (read by its Deadline)."""
        if not self.started:
            return self.connected_at + START_DEADLINE_SEC, "no start in time"
        idle = self.rt.settings.no_media_timeout_sec + IDLE_GRACE_SEC
        return self.last_rx + idle, f"no message for {idle:g} s"

    def expire(self, why: str) -> None:
        if not self.started:
            self.rt.rejections.add("WS_REJECTED", self.source, stage="start", reason=why)
        else:
            self.rt.events.emit("WS_IDLE_CLOSED", self.call_sid, logging.WARNING,
                                sid=self.stream_sid, reason=why)
        self.close(1008, why)

    def handle(self, raw: str | bytes) -> None:
        self.last_rx = time.monotonic()
        if isinstance(raw, (bytes, bytearray)):
            return self.skip("binary message")
        try:
            message = json.loads(raw)
            event = message["event"]
        except (ValueError, KeyError, TypeError):
            return self.skip("not a JSON Media Streams message")
        if self.unsigned and not self.started and event not in ("connected", "start"):
            self.rt.rejections.add("WS_REJECTED", self.source, stage="start",
                                   reason="unsigned upgrade: a message before a valid start")
            raise StopStream(1008, "unsigned upgrade: no valid start")
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
        if not self.socket.send_text(json.dumps(message)):
            self.closed.set()
            return False
        return True

    # ---- Twilio's events ----------------------------------------------------------------------
    def on_connected(self, _message: dict) -> None:
        pass

    def on_start(self, message: dict) -> None:
        if self.started:
            return self.skip("second start")
        start = message["start"]
        custom = start.get("customParameters") or {}
        call_sid = start.get("callSid") or custom.get("call_sid") or ""
        turn = int(custom.get("turn") or 0)
        problem = start_problem(start, call_sid, turn)
        if problem is None and self.rt.settings.validate_twilio_signature and not (
                twiml.check_stream_token(self.rt.settings.signing_key, call_sid, turn,
                                         str(custom.get("token") or ""))):
            problem = "bad stream token"
        if problem:
            self.rt.rejections.add("WS_REJECTED", self.source, stage="start", reason=problem)
            raise StopStream(1008, problem)
        self.stream_sid, self.call_sid, self.turn = start["streamSid"], call_sid, turn
        self.started = True
        fork = custom.get("fork") == "1"  # <Start><Stream>: it hears the caller over Plays
        self.turns = StreamTurns(self.rt, self, call_sid, turn, fork)
        self.start_wall = time.time()
        if fork:  # no turn of its own: the call's stream is the <Connect> after the Plays
            self.rt.events.emit("WS_START", call_sid, sid=self.stream_sid, turn=turn, fork=1)
            return
        self.starts.submit(self.record_start)  # frames keep flowing meanwhile

    def record_start(self) -> None:
        """Off the event loop, on threads of its own (never queued behind a turn): the token is
        good only while its call is live and on that turn; then the stream's start goes to the
        store and the watchdog. Usually one statement; the call is read only when it fails."""
        if not self.rt.calls.start_live_stream(self.call_sid, self.turn):
            call = self.rt.calls.ensure(self.call_sid)
            if call["ended"] and (call["ended_at"] or 0) >= self.start_wall:
                return self.close(1000, "call ended")  # hung up after its start: no rejection
            if call["ended"] or (call["turn"] or self.turn) != self.turn:
                self.rt.events.emit("WS_REJECTED", self.call_sid, logging.WARNING, stage="start",
                                    reason="stream token of a call that ended or moved on",
                                    turn=self.turn, call_turn=call["turn"], ended=call["ended"])
                return self.close(1008, "call ended or moved on")
            self.heartbeat.started(self.call_sid, self.turn)  # a row just made, or a restart
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
        if self.rx == MEDIA_LOG_FIRST or self.rx % MEDIA_LOG_EVERY == 0:
            self.rt.events.emit("WS_MEDIA", self.call_sid, sid=self.stream_sid, rx=self.rx)
        self.heartbeat.media(self.call_sid)
        if self.rt.settings.ws_mode == "ECHO":
            return self.send_media_frames([payload])
        pcm = audio.ulaw_to_pcm16(payload)
        self.turns.feed(pcm)

    def on_mark(self, message: dict) -> None:
        name = str(message["mark"]["name"])[:64]
        if self.turns and self.turns.mark_played(name):
            return
        if not self.unknown_mark_logged:
            self.unknown_mark_logged = True
            self.rt.events.emit("MARK_UNKNOWN", self.call_sid or None, logging.WARNING,
                                sid=self.stream_sid, name=name)

    def on_dtmf(self, message: dict) -> None:
        digit = str(message["dtmf"]["digit"])
        if not re.fullmatch(r"[0-9*#A-Da-d]", digit):
            return self.skip("bad dtmf digit")
        self.rt.events.emit("DTMF", self.call_sid or None, sid=self.stream_sid, digit=digit)
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
            if self.tx == MEDIA_LOG_FIRST or self.tx % MEDIA_LOG_EVERY == 0:
                self.rt.events.emit("WS_TX", self.call_sid, sid=self.stream_sid, tx=self.tx)
        return sent

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the socket from our side (action delivery: Twilio then requests the action)."""
        self.closed.set()
        self.socket.close(code, reason)

    def finish(self) -> None:
        self.closed.set()
        if self.turns is not None:
            self.turns.close()
        lag = self.probe.since(self.lag_before)
        self.rt.events.emit("WS_DONE", self.call_sid or None, sid=self.stream_sid,
                            rx=self.rx, tx=self.tx, bad=self.bad,
                            lag_p99_ms=percentile(lag, 99),
                            lag_max_ms=max(lag, default=0), lag_hist=lag)


def start_problem(start: dict, call_sid: str, turn: int) -> str | None:
    """Why a `start` message is not Twilio's (SIDs of Twilio's shape, a sane turn), or None."""
    for key, value in (("callSid", call_sid), ("streamSid", start.get("streamSid")),
                       ("accountSid", start.get("accountSid"))):
        if key == "accountSid" and value is None:
            continue
        if not isinstance(value, str) or not SID_SHAPES[key].fullmatch(value):
            return f"{key} missing or not of Twilio's shape"
    if not 0 < turn < 10000:
        return "turn parameter out of range"
    return None
