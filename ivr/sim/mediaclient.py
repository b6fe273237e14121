"""Media Streams as Twilio speaks it: <Connect><Stream> (two-way) and <Start><Stream> (fork)."""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
import xml.etree.ElementTree as ET
from collections import deque

import websocket

from .. import audio
from ..twiml import SUBPROTOCOL, dial_url
from .call import Call, Ended, Replace, signature_headers

TRACKS = ("inbound_track", "outbound_track", "both_tracks")  # <Stream track>'s values
MAX_FORKS = 4  # unidirectional streams one call may run at once


class MediaSession:
    """One Media Streams WebSocket from the carrier to the app."""

    def __init__(self, run: Call, stream: ET.Element, two_way: bool):
        self.run, self.two_way = run, two_way
        self.url = stream.get("url", "")
        self.name = stream.get("name", "")
        self.status_url = stream.get("statusCallback", "")
        self.status_method = stream.get("statusCallbackMethod", "POST")
        self.custom = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
        self.sid = "MZ" + secrets.token_hex(16)
        self.ws: websocket.WebSocket | None = None
        self.send_lock = threading.Lock()
        self.playback: deque = deque()
        self.sequence = 0
        self.started_at = 0.0
        self.first_tick: float | None = None
        self.heard: dict | None = None
        self.quiet_ticks = 0
        self.server_closed = threading.Event()
        self.info = {"sid": self.sid, "url": self.url, "params": {k: v for k, v in
                     self.custom.items() if k != "token"}, "sent": 0, "received": 0,
                     "marks": [], "clears": 0, "opened": None, "closed_by": None,
                     "name": self.name, "fork": not two_way}
        run.result.streams.append(self.info)

    @property
    def running(self) -> bool:
        """Open and closed by neither side."""
        closed = self.info["closed_by"] or self.server_closed.is_set()
        return self.ws is not None and not closed

    def status(self, event: str, error: str = "") -> None:
        if not self.status_url:
            return
        params = self.run.params(StreamSid=self.sid, StreamEvent=event,
                                 Timestamp=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        if error:
            params["StreamError"] = error
        self.run.web.request(self.status_method, self.status_url, params, what="stream-status")

    def fail(self, message: str) -> None:
        """The handshake failed: Twilio's 31920, the status callback's stream-error."""
        self.run.error(31920, f"{self.url}: {message}", self.url)
        self.info["closed_by"] = "handshake-error"
        self.status("stream-error", f"31920 Stream - WebSocket - Handshake Error: {message}")

    def open(self) -> bool:
        if self.run.faults.get("ws_refuse"):
            self.fail("handshake refused (injected fault)")
            return False
        headers = {} if self.run.faults.get("ws_unsigned") else signature_headers(
            self.run.account, self.url, {})  # Twilio may not sign the upgrade: the fault
        options = {"header": [f"{k}: {v}" for k, v in headers.items()], "timeout": 10}
        if self.run.account.offer_subprotocol:
            options["subprotocols"] = [SUBPROTOCOL]
        self.run.result.requests.append({"t": round(self.run.clock.now(), 3), "what": "websocket",
                                         "direction": "out", "method": "GET", "url": self.url})
        try:
            self.ws = websocket.create_connection(dial_url(self.url), **options)
        except Exception as exc:  # noqa: BLE001 - every handshake failure is Twilio's 31920
            self.run.result.requests[-1]["status"] = getattr(exc, "status_code", None)
            self.fail(f"{exc.__class__.__name__}: {exc}")
            return False
        self.run.result.requests[-1]["status"] = 101
        self.ws.settimeout(None)
        self.started_at = self.run.clock.now()
        self.info["opened"] = round(self.started_at, 3)
        self.run.log("carrier", f"WebSocket open {self.url} ({self.custom.get('turn', '-')})")
        self.send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        self.send({"event": "start", "start": {
            "accountSid": self.run.account.account_sid, "streamSid": self.sid,
            "callSid": self.run.call_sid, "tracks": ["inbound"], "customParameters": self.custom,
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}})
        self.status("stream-started")
        threading.Thread(target=self.receive, daemon=True, name=f"ws-{self.sid[-6:]}").start()
        return True

    def send(self, message: dict) -> None:
        self.sequence += 1
        message = {**message, "sequenceNumber": str(self.sequence), "streamSid": self.sid}
        if message["event"] == "connected":
            message.pop("streamSid")
        try:
            with self.send_lock:
                self.ws.send(json.dumps(message))
        except Exception:  # noqa: BLE001 - the server closed; the tick loop notices
            self.server_closed.set()

    def send_media(self, frame: bytes) -> None:
        if self.server_closed.is_set() or self.run.faults.get("ws_no_media"):
            return
        self.info["sent"] += 1
        if self.first_tick is None:
            self.first_tick = self.run.tick_at
        stamp = round((self.run.tick_at - self.first_tick) * 1000)  # media time, as Twilio's
        self.send({"event": "media", "media": {"track": "inbound", "chunk": str(self.info["sent"]),
                                               "timestamp": str(stamp),
                                               "payload": base64.b64encode(frame).decode()}})

    def receive(self) -> None:
        while True:
            try:
                raw = self.ws.recv()
            except Exception:  # noqa: BLE001 - closed by either side
                break
            if not raw:
                break
            self.on_message(raw)
        self.server_closed.set()

    def on_message(self, raw: str | bytes) -> None:
        try:
            message = json.loads(raw)
            event = message["event"]
        except (ValueError, KeyError, TypeError):
            self.run.error(31924, f"invalid message from the app: {str(raw)[:80]!r}", self.url)
            return
        if not self.two_way:
            return
        if event == "media":
            payload = base64.b64decode(message["media"]["payload"])
            self.info["received"] += 1
            self.playback.append(audio.ulaw_to_pcm16(payload))
        elif event == "mark":
            self.playback.append(("mark", message.get("mark", {}).get("name", "")))
        elif event == "clear":
            self.info["clears"] += 1
            self.info.setdefault("clears_at", []).append(round(self.run.clock.now(), 3))
            marks = [item for item in list(self.playback) if isinstance(item, tuple)]
            self.playback.clear()
            self.run.line.speaking = False
            self.run.log("carrier", "clear: streamed audio flushed")
            for _, name in marks:
                self.echo_mark(name)

    def echo_mark(self, name: str) -> None:
        self.info["marks"].append(name)
        self.send({"event": "mark", "mark": {"name": name}})

    def play_tick(self) -> None:
        """One 20 ms of the app's streamed audio reaches the caller; marks are echoed in order."""
        while self.playback and isinstance(self.playback[0], tuple):
            self.echo_mark(self.playback.popleft()[1])
        if not self.playback:
            self.quiet_ticks += 1
            if self.run.line.speaking and self.quiet_ticks >= self.run.line.pause_ticks:
                self.run.line.speaking = False
            return
        self.quiet_ticks = 0
        pcm = self.playback.popleft()
        if not self.run.line.speaking:
            self.run.line.speaking = True
            self.run.line.replies += 1
            self.heard = {"t": round(self.run.tick_at, 3), "kind": "stream",
                          "stream": self.sid, "duration": 0.0}
            self.run.result.heard.append(self.heard)
            self.run.log("line", "speaks on the stream")
        self.heard["duration"] = round(self.heard["duration"] + audio.duration_sec(pcm), 3)
        self.heard["end"] = round(self.run.tick_at + audio.duration_sec(pcm), 3)
        self.run.tape.put("line", self.run.tick_at, pcm)  # its own 20 ms, as the caller's

    def close(self, by: str = "carrier") -> None:
        if self.ws is None or self.info["closed_by"]:
            return
        self.info["closed_by"] = by
        if not self.server_closed.is_set():
            self.send({"event": "stop", "stop": {"accountSid": self.run.account.account_sid,
                                                 "callSid": self.run.call_sid}})
        try:
            self.ws.close()
        except Exception:  # noqa: BLE001 - already gone
            pass
        self.status("stream-stopped")


def connect_stream(run: Call, connect: ET.Element, stream: ET.Element) -> None:
    """<Connect><Stream>: stream until the app closes (then the action), an update or hang-up."""
    session = MediaSession(run, stream, two_way=True)
    action, method = connect.get("action"), connect.get("method", "POST")
    if run.faults.get("stream_hangs"):  # Twilio's media side never dials: no socket, no status
        run.log("carrier", "the stream never opens (injected fault)")
        run.tick_for(None)  # silence until an update or a hang-up
    stop_after = float(run.faults.get("stream_stop_after") or 0)
    if session.open():
        def on_tick(frame: bytes, _text: str | None, key: str | None) -> bool:
            if key:
                session.send({"event": "dtmf", "dtmf": {"track": "inbound_track", "digit": key}})
            else:
                session.send_media(frame)
            session.play_tick()
            if stop_after and run.clock.now() - session.started_at >= stop_after:
                run.log("carrier", "Twilio stops the stream (injected fault)")
                session.close("twilio")  # `stop`, then the <Connect action> as on a real stop
                return True
            return session.server_closed.is_set()

        run.line.listening = True
        try:
            run.tick_for(None, on_tick)
        except (Replace, Ended):
            session.close("update" if not run.ended.is_set() else "hangup")
            if action and not run.ended.is_set() and run.faults.get("stale_action"):
                request_stale_action(run, action, method, session.sid)
            raise
        finally:
            run.line.listening = run.line.speaking = False
        if not session.info["closed_by"]:
            run.log("carrier", "the app closed the WebSocket")
            session.info["closed_by"] = "app"
            session.status("stream-stopped")
    if action:
        raise Replace(run.web.twiml(action, method, {"StreamSid": session.sid}), action)


def start_stream(run: Call, stream: ET.Element) -> None:
    """<Start><Stream>: fork the caller's audio to the app while the TwiML goes on, through
    later documents too, until <Stop><Stream name>, the app closing it or the call's end.
    Refused as Twilio refuses it: a bad `track`, a `name` already running, a fifth fork."""
    track = stream.get("track", "inbound_track")
    name = stream.get("name", "")
    running = [fork for fork in run.forks if fork.running]
    refusal = (f"track=\"{track}\" is not one of {', '.join(TRACKS)}" if track not in TRACKS
               else f'a stream named "{name}" is already running'
               if name and any(fork.name == name for fork in running)
               else f"a call has at most {MAX_FORKS} <Start><Stream> forks"
               if len(running) >= MAX_FORKS else "")
    if refusal:
        run.log("carrier", f"warning: <Start><Stream> refused: {refusal}")
        return
    if track != "inbound_track":
        run.log("carrier", f"warning: track=\"{track}\": the emulator forks the inbound track "
                           "only (the line's own audio is not sent)")
    session = MediaSession(run, stream, two_way=False)
    if session.open():
        run.forks.append(session)


def stop_stream(run: Call, stream: ET.Element) -> None:
    """<Stop><Stream name>: the fork of that name ends (`stop`, the socket closed, its
    stream-stopped callback); a name no running fork has is a warning, nothing stops."""
    name = stream.get("name", "")
    fork = next((f for f in run.forks if name and f.name == name and f.running), None)
    if fork is None:
        run.log("carrier", f'warning: <Stop><Stream name="{name}">: no running stream has '
                           "that name")
        return
    run.log("carrier", f'<Stop><Stream name="{name}">: the fork ends')
    fork.close("stop")
    run.forks.remove(fork)


def request_stale_action(run: Call, action: str, method: str, stream_sid: str) -> None:
    """The fault seen on real Twilio for an interrupted <Dial>: after a REST update replaced
    the TwiML, Twilio still requests the interrupted verb's action; its answer is not run."""
    run.log("carrier", "requests the interrupted <Connect action> (injected fault)")
    params = run.params(StreamSid=stream_sid)
    threading.Thread(target=run.web.request, args=(method, action, params),
                     kwargs={"what": "stale-action"}, daemon=True, name="stale-action").start()
