"""One call of the load generator: Twilio's side of the Play ping-pong, on asyncio, from
pre-built frames sent on a 20 ms clock (see bench/loadgen.py)."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from twilio.request_validator import RequestValidator

from ivr import audio
from ivr.twiml import dial_url

from . import asynchttp
from .wsclient import HandshakeError, WebSocket

TICK = audio.FRAME_SEC
MEDIA = ('{{"event":"media","sequenceNumber":"{}","media":{{"track":"inbound","chunk":"{}",'
         '"timestamp":"{}","payload":"{}"}},"streamSid":"{}"}}')


def payloads(ulaw: bytes) -> list[str]:
    """μ-law audio as the base64 payloads of its 20 ms frames, built once before a run."""
    return [base64.b64encode(frame).decode() for frame in audio.frames_of(ulaw)]


@dataclass
class Shared:
    """What every call of a run shares: the line, the frames, the clock's record."""

    url: str
    token: str
    account: str
    utterances: list[list[str]]  # each the payloads of one thing the caller says
    background: list[str]  # the caller's line noise between utterances (below the VAD)
    voice_ends: list[int] = field(default_factory=list)  # frame after each one's last voice
    think: float = 0.6  # after a stream opens, before the caller speaks
    reply_timeout: float = 20.0
    stream_seconds: float = 30.0  # "streaming alone": how long a call streams, no utterances
    late_hist: dict[int, int] = field(default_factory=dict)  # ms late → wakes
    frames: int = 0
    stream_time: float = 0.0
    get_ms: list = field(default_factory=list)  # a <Play>'s GET of its MP3
    handshake_ms: list = field(default_factory=list)  # a stream's upgrade, connect to 101
    tasks: set = field(default_factory=set)
    active: set = field(default_factory=set)  # the streams the clock feeds

    def __post_init__(self):
        self.validator = RequestValidator(self.token)

    def keep(self, coro) -> None:
        """Run `coro` in the background, kept until it is done."""
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.forget)

    def forget(self, task: asyncio.Task) -> None:
        self.tasks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a close the line never answered is no error here

    async def clock(self, stop: asyncio.Event) -> None:
        """Every 20 ms, every open stream sends the frames now due; how late the tick's last
        frame went out is the generator's lateness."""
        t0, tick = time.monotonic(), 0
        while not stop.is_set():
            tick += 1
            due = t0 + tick * TICK
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            now = time.monotonic()
            for stream in list(self.active):
                stream.tick(now)
            ms = max(0, round((time.monotonic() - due) * 1000))
            self.late_hist[ms] = self.late_hist.get(ms, 0) + 1
            tick = max(tick, int((now - t0) / TICK))  # late: the next tick is the next due


class LoadCall:
    """Rings the line, runs its TwiML (Play, Connect/Stream, Start/Stream and Stop/Stream,
    Redirect, Pause, Hangup), obeys `calls.update`, and speaks its utterances one per stream,
    waiting for each reply (over the Plays its forks send the background)."""

    def __init__(self, shared: Shared):
        self.g = shared
        self.sid = "CA" + secrets.token_hex(16)
        self.status = "ringing"
        self.pending: str | None = None  # TwiML from a calls.update, not yet obeyed
        self.pending_at = 0.0
        self.wake = asyncio.Event()
        self.said = 0  # utterances spoken so far
        self.answered = 0
        self.turn_ms: list[float] = []
        self.errors: list[str] = []
        self.streams = 0
        self.forks: dict[str, ForkSession] = {}  # running <Start><Stream>s by name
        self.started = self.ended_at = 0.0
        self.hung_up = False

    # ---- from the REST server ---------------------------------------------------------------
    def update(self, twiml: str) -> None:
        self.pending, self.pending_at = twiml, time.monotonic()
        self.wake.set()

    def hangup_by_line(self) -> None:
        self.hung_up = True
        self.wake.set()

    # ---- HTTP as Twilio makes it --------------------------------------------------------------
    def params(self, **extra: str) -> dict:
        return {"AccountSid": self.g.account, "ApiVersion": "2010-04-01", "CallSid": self.sid,
                "CallStatus": self.status, "Direction": "inbound", "From": "+972501234567",
                "To": "+97231234567", "Caller": "+972501234567", "Called": "+97231234567",
                **extra}

    async def post(self, url: str, **extra: str) -> tuple[int, bytes]:
        form = self.params(**extra)
        signature = self.g.validator.compute_signature(url, form)
        try:
            status, _, body = await asynchttp.request("POST", url, form,
                                                      {"X-Twilio-Signature": signature})
        except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
            self.errors.append(f"POST {url.split('?')[0]}: {exc.__class__.__name__}")
            return 0, b""
        if status >= 400:
            self.errors.append(f"POST {url.split('?')[0]} answered {status}")
        return status, body

    def post_later(self, url: str, **extra: str) -> None:
        """A status callback: Twilio sends it without holding up the call."""
        if url:
            self.g.keep(self.post(url, **extra))

    async def twiml(self, url: str, **extra: str) -> str | None:
        status, body = await self.post(url, **extra)
        return body.decode() if status == 200 else None

    # ---- the call -----------------------------------------------------------------------------
    async def run(self) -> None:
        self.started = time.monotonic()
        doc = await self.twiml(self.g.url + "/webhook/incoming_call")
        self.status = "in-progress"
        while doc and not self.hung_up:
            doc = await self.execute(doc)
        for fork in list(self.forks.values()):
            fork.stop()
        self.ended_at = time.monotonic()
        self.status = "completed"
        await self.post(self.g.url + "/webhook/call_status",
                        CallDuration=str(int(self.ended_at - self.started)))

    def take_pending(self) -> str | None:
        doc, self.pending = self.pending, None
        self.wake.clear()
        return doc

    async def execute(self, doc: str) -> str | None:
        """Run one TwiML document; the next one to run, or None when the call is over."""
        try:
            root = ET.fromstring(doc)
        except ET.ParseError:
            self.errors.append("TwiML does not parse")
            return None
        for verb in root:
            if self.pending is not None:
                return self.take_pending()
            if verb.tag == "Play":
                await self.play((verb.text or "").strip())
            elif verb.tag == "Pause":
                await self.wait(float(verb.get("length", 1)))
            elif verb.tag == "Redirect":
                return await self.twiml((verb.text or "").strip())
            elif verb.tag == "Connect" and verb.find("Stream") is not None:
                return await self.stream(verb, verb.find("Stream"))
            elif verb.tag == "Start" and verb.find("Stream") is not None:
                await self.fork(verb.find("Stream"))
            elif verb.tag == "Stop" and verb.find("Stream") is not None:
                fork = self.forks.pop(verb.find("Stream").get("name", ""), None)
                if fork is not None:
                    fork.stop()
            elif verb.tag == "Hangup":
                return None
            else:
                self.errors.append(f"<{verb.tag}> not played by the load generator")
                return None
            if self.hung_up:
                return None
        return self.take_pending()

    async def wait(self, seconds: float) -> None:
        """Call time passes (a Play, a Pause) unless an update or a hang-up comes first."""
        try:
            await asyncio.wait_for(self.wake.wait(), seconds)
        except TimeoutError:
            pass

    async def play(self, url: str) -> None:
        """Fetch the MP3 as Twilio does, then let the caller hear it for its duration."""
        asked = time.monotonic()
        try:
            status, _, body = await asynchttp.request("GET", url)
        except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
            self.errors.append(f"GET {url}: {exc.__class__.__name__}")
            return
        self.g.get_ms.append((time.monotonic() - asked) * 1000)
        if status != 200:
            self.errors.append(f"GET {url} answered {status}")
            return
        await self.wait(audio.mp3_duration_sec(body))

    async def open_socket(self, stream: ET.Element, stream_sid: str) -> WebSocket | None:
        """A signed Media Streams socket, `connected` and `start` sent; None: refused."""
        url = stream.get("url", "")
        custom = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
        signature = self.g.validator.compute_signature(url, {})
        asked = time.monotonic()
        try:
            ws = await WebSocket.connect(dial_url(url), {"X-Twilio-Signature": signature})
            self.g.handshake_ms.append((time.monotonic() - asked) * 1000)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, HandshakeError) as exc:
            self.errors.append(f"stream handshake: {exc.__class__.__name__}")
            self.post_later(stream.get("statusCallback", ""), StreamSid=stream_sid,
                            StreamEvent="stream-error", StreamError=f"31920 {exc}")
            return None
        ws.send_text(json.dumps({"event": "connected", "protocol": "Call",
                                 "version": "1.0.0", "sequenceNumber": "1"}))
        ws.send_text(json.dumps({"event": "start", "sequenceNumber": "2", "start": {
            "accountSid": self.g.account, "streamSid": stream_sid, "callSid": self.sid,
            "tracks": ["inbound"], "customParameters": custom,
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}},
            "streamSid": stream_sid}))
        return ws

    async def fork(self, stream: ET.Element) -> None:
        """<Start><Stream>: a socket fed the background on the clock until <Stop> or the end."""
        stream_sid = "MZ" + secrets.token_hex(16)
        ws = await self.open_socket(stream, stream_sid)
        if ws is not None:
            self.forks[stream.get("name", "")] = ForkSession(self, ws, stream_sid)

    async def stream(self, connect: ET.Element, stream: ET.Element) -> str | None:
        stream_sid = "MZ" + secrets.token_hex(16)
        ws = await self.open_socket(stream, stream_sid)
        if ws is None:
            return None
        self.streams += 1
        status_url = stream.get("statusCallback", "")
        session = StreamSession(self, ws, stream_sid)
        self.post_later(status_url, StreamSid=stream_sid, StreamEvent="stream-started")
        closed_by_line = await session.run()
        self.post_later(status_url, StreamSid=stream_sid, StreamEvent="stream-stopped")
        if self.hung_up:
            return None
        if closed_by_line:  # Twilio goes on with the <Connect action>
            action = connect.get("action")
            return await self.twiml(action, StreamSid=stream_sid) if action else None
        return self.take_pending()


class ForkSession:
    """One <Start><Stream> socket: the caller's background on the shared clock while the Plays
    run, until <Stop><Stream> or the call's end (the caller of a load run never barges in)."""

    def __init__(self, call: LoadCall, ws: WebSocket, stream_sid: str):
        self.g, self.ws, self.sid, self.call_sid = call.g, ws, stream_sid, call.sid
        self.sequence, self.sent, self.t0 = 2, 0, time.monotonic()
        self.reader = asyncio.ensure_future(ws.receive_all())
        self.g.active.add(self)

    def tick(self, now: float) -> None:
        while self.t0 + self.sent * TICK <= now and not self.ws.closed:
            payload = self.g.background[self.sent % len(self.g.background)]
            self.sequence += 1
            self.ws.send_text(MEDIA.format(self.sequence, self.sent + 1, self.sent * 20,
                                           payload, self.sid))
            self.sent += 1
            self.g.frames += 1

    def stop(self) -> None:
        self.g.active.discard(self)
        if not self.ws.closed:
            self.ws.send_text(json.dumps({
                "event": "stop", "sequenceNumber": str(self.sequence + 1), "streamSid": self.sid,
                "stop": {"accountSid": self.g.account, "callSid": self.call_sid}}))
            self.ws.close()
        self.g.keep(asyncio.wait_for(self.reader, asynchttp.TIMEOUT_SEC))


class StreamSession:
    """One Media Streams socket: the caller's frames, fed by the shared clock, until an update,
    the line's close, the end of the caller's script, or no reply in time."""

    def __init__(self, call: LoadCall, ws: WebSocket, stream_sid: str):
        self.call, self.g, self.ws, self.sid = call, call.g, ws, stream_sid
        self.sequence = 2
        self.sent = 0
        self.done = asyncio.Event()
        self.speech, self.starts, self.hang_after = self.plan()
        self.t0 = self.spoken_at = 0.0

    def plan(self) -> tuple[list[str], int, float | None]:
        """What the caller sends on this stream before the background, the frame its utterance
        starts at, and when it hangs up (seconds after the stream opened; None: it waits for
        the line)."""
        call, g = self.call, self.g
        if not g.utterances:  # streaming alone
            return [], 0, max(0.0, g.stream_seconds - (time.monotonic() - call.started))
        if call.said >= len(g.utterances):
            return [], 0, 0.5  # the last reply was heard: the caller hangs up
        think = [g.background[i % len(g.background)] for i in range(round(g.think / TICK))]
        return think + g.utterances[call.said], len(think), None

    def tick(self, now: float) -> None:
        """The frames due by `now` (more than one when the clock ran late: a burst), then is
        the stream over?"""
        call, g, speech = self.call, self.g, self.speech
        while self.t0 + self.sent * TICK <= now and not self.ws.closed:
            n = self.sent
            payload = speech[n] if n < len(speech) else g.background[n % len(g.background)]
            self.sequence += 1
            self.ws.send_text(MEDIA.format(self.sequence, n + 1, n * 20, payload, self.sid))
            self.sent += 1
            g.frames += 1
        if speech and not self.spoken_at and self.sent >= len(speech):
            self.spoken_at = now
        over = call.pending is not None or call.hung_up or self.ws.closed
        if self.hang_after is not None and now - self.t0 >= self.hang_after:
            call.hung_up = over = True
        if self.spoken_at and now - self.spoken_at > g.reply_timeout and not over:
            call.errors.append(f"no reply to utterance {call.said + 1} within "
                               f"{g.reply_timeout:g} s")
            call.hung_up = over = True
        if over:
            g.active.discard(self)
            self.done.set()

    async def run(self) -> bool:
        """Stream until something ends it; True when the line closed the socket."""
        call, g = self.call, self.g
        reader = asyncio.ensure_future(self.ws.receive_all())
        self.t0 = time.monotonic()
        g.active.add(self)
        await self.done.wait()
        g.stream_time += time.monotonic() - self.t0
        if self.speech and self.sent > self.starts and call.pending is not None:
            call.said += 1  # the line answered it
            call.answered += 1
            if call.said - 1 < len(g.voice_ends):  # end of the caller's voice → the update
                voice_end = self.t0 + (self.starts + g.voice_ends[call.said - 1]) * TICK
                call.turn_ms.append((call.pending_at - voice_end) * 1000)
        by_line = self.ws.closed and call.pending is None and not call.hung_up
        if not self.ws.closed:
            self.ws.send_text(json.dumps({
                "event": "stop", "sequenceNumber": str(self.sequence + 1), "streamSid": self.sid,
                "stop": {"accountSid": g.account, "callSid": call.sid}}))
            self.ws.close()
        g.keep(asyncio.wait_for(reader, asynchttp.TIMEOUT_SEC))  # the line answers the close
        return by_line
