"""/ws/twilio-media's wire: websockets' sans-I/O ServerProtocol under uvicorn's `ws` protocol slot.

uvicorn hands each upgrade to this asyncio Protocol (`ws` in asgi.SERVER_OPTIONS). websockets'
`ServerProtocol` parses the handshake and the frames and validates them (masking, opcodes,
control frames, close codes and reasons, fragment order, message size); this class adds what
the sans-I/O layer leaves to its caller: the MediaServer's checks before `101` (a refusal is
HTTP 403), whole messages (a fragment cap, UTF-8 of text) handed to the session's synchronous
handler right on the loop (no queue or task per frame), writes from any thread in order, flow
control (no reading while the peer does not read; dropped past MAX_BUFFERED_OUT) and the TCP
close (at once when the close handshake is done, aborted when the peer does not answer ours).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import OPEN
from websockets.server import ServerProtocol

from .session import MAX_MESSAGE_BYTES, MediaServer, MediaStreamSession, chosen_subprotocol, peer

log = logging.getLogger("ivr")
WIRE_LOG = logging.getLogger("ivr.media_wire")  # websockets' own lines ("connection open"…)
WIRE_LOG.setLevel(logging.WARNING)  # one per socket would drown the line's events
MAX_FRAGMENTS = 128  # frames of one message; Twilio's messages (< 2 KB) come in one frame
CLOSE_TIMEOUT_SEC = 2.0  # the peer's answer to our close frame is awaited this long, then abort
MAX_BUFFERED_OUT = 4 * 1024 * 1024  # bytes waiting for a peer that reads nothing: dropped past
WRITE_HIGH_WATER = 64 * 1024  # past this no more is read from the peer until it reads
FEED_BYTES = 16 * 1024  # read bytes parsed per loop callback: a flood takes turns with the others


@functools.cache
def proxy_headers(trusted: str | tuple[str, ...]) -> ProxyHeadersMiddleware:
    """uvicorn's own X-Forwarded-For reader, for the trusted proxies of its config."""
    return ProxyHeadersMiddleware(no_app, list(trusted) if isinstance(trusted, tuple) else trusted)


async def no_app(scope: dict, receive: Any, send: Any) -> None:
    """The middleware's inner app: the rewritten scope is all we want."""


def forwarded_client(config: Any, scope: dict) -> tuple[str, int]:
    """The caller's address: the socket's peer, or the address a trusted proxy forwarded,
    read by ProxyHeadersMiddleware as uvicorn would for an ASGI app (it awaits nothing here,
    so one step runs it to the end)."""
    if not config.proxy_headers:
        return scope["client"]
    trusted = config.forwarded_allow_ips
    step = proxy_headers(tuple(trusted) if isinstance(trusted, list) else trusted)(
        scope, None, None)
    try:
        step.send(None)
    except StopIteration:
        return scope["client"]
    step.close()
    raise RuntimeError("ProxyHeadersMiddleware did not finish in one step")


class MediaProtocol(asyncio.Protocol):
    """One media WebSocket, from the upgrade request uvicorn replays to the TCP close.

    uvicorn's contract with a `ws` protocol class, as its own ones keep it: built with
    (config, server_state, app_state), handed the transport and the replayed request head;
    in server_state.connections while open, so that a stopping server calls `shutdown()` and
    waits for the close. The MediaServer comes from app_state (the ASGI lifespan state)."""

    def __init__(self, config: Any, server_state: Any, app_state: dict | None = None):
        self.config, self.server_state = config, server_state
        self.media: MediaServer | None = (app_state or {}).get(MediaServer.STATE_KEY)
        self.loop = asyncio.get_running_loop()
        self.conn = ServerProtocol(max_size=MAX_MESSAGE_BYTES, logger=WIRE_LOG,
                                   select_subprotocol=lambda _conn, offered:
                                   chosen_subprotocol(offered))
        self.transport: asyncio.Transport | None = None
        self.session: MediaStreamSession | None = None
        self.open = False  # the session may write: the handshake is done and no close yet
        self.fragments: list[Frame] = []
        self.paused: set[str] = set()  # why reading is paused: "write" (peer not reading), "feed"
        self.close_timer: asyncio.TimerHandle | None = None

    @property
    def subprotocol(self) -> str | None:
        return self.conn.subprotocol

    # ---- uvicorn's protocol interface ---------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        self.server_state.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        self.server_state.connections.discard(self)
        self.conn.receive_eof()  # idempotent: the protocol is CLOSED
        if self.close_timer is not None:
            self.close_timer.cancel()
        self.fragments = []
        self._release()

    def shutdown(self) -> None:
        """The server is stopping: 1012 (service restart)."""
        if self.session is None:
            self.transport.close()
        else:
            self._close(1012, "server restart")

    def data_received(self, data: bytes) -> None:
        self._feed(data if len(data) <= FEED_BYTES else memoryview(data))

    def eof_received(self) -> None:
        self.conn.receive_eof()
        self._flush()  # returns None: the transport closes

    def pause_writing(self) -> None:
        self._pause_reading("write")

    def resume_writing(self) -> None:
        self._resume_reading("write")

    # ---- reading ------------------------------------------------------------------------------
    def _feed(self, data: bytes | memoryview) -> None:
        """Parse FEED_BYTES of what was read; the rest in a later callback of the loop."""
        if self.transport.is_closing():
            return
        self.conn.receive_data(data[:FEED_BYTES])
        for event in self.conn.events_received():
            if isinstance(event, Request):
                self._handshake(event)
            else:
                self._frame(event)
        self._flush()
        if len(data) > FEED_BYTES and not self.transport.is_closing():
            self._pause_reading("feed")
            self.loop.call_soon(self._feed_rest, data[FEED_BYTES:])

    def _feed_rest(self, data: memoryview) -> None:
        self._resume_reading("feed")
        self._feed(data)

    def _pause_reading(self, why: str) -> None:
        if not self.paused and not self.transport.is_closing():
            self.transport.pause_reading()
        self.paused.add(why)

    def _resume_reading(self, why: str) -> None:
        self.paused.discard(why)
        if not self.paused and not self.transport.is_closing():
            self.transport.resume_reading()

    def _frame(self, frame: Frame) -> None:
        """A data frame (websockets answers pings and closes itself): whole messages to the
        session, at most MAX_FRAGMENTS frames to a message."""
        if not self.open:
            return  # our close or failure came first: the rest is not read
        if frame.opcode is Opcode.CONT:
            if len(self.fragments) >= MAX_FRAGMENTS:
                return self._fail(1009, "too many fragments")
            self.fragments.append(frame)
            if frame.fin:
                frames, self.fragments = self.fragments, []
                self._message(frames[0].opcode, b"".join(f.data for f in frames))
        elif frame.opcode is Opcode.TEXT or frame.opcode is Opcode.BINARY:
            if frame.fin:
                self._message(frame.opcode, frame.data)
            else:
                self.fragments = [frame]

    def _message(self, opcode: Opcode, payload: bytes) -> None:
        if self.session.closed.is_set():
            return  # the session ended the call (a `stop`, a bad token): the rest is not read
        if opcode is Opcode.TEXT:
            try:
                raw: str | bytes = payload.decode()
            except UnicodeDecodeError as exc:
                return self._fail(1007, f"{exc.reason} at position {exc.start}")
        else:
            raw = bytes(payload)
        self.session.receive(raw)

    # ---- the socket interface the session writes to (any thread) -----------------------------
    def send_text(self, text: str) -> bool:
        """Queue a text message; False once the socket is closed."""
        if not self.open:
            return False
        try:
            self.loop.call_soon_threadsafe(self._write, text)
        except RuntimeError:  # the loop is gone: so is the socket
            return False
        return True

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close from our side (after what is already queued); idempotent."""
        try:
            self.loop.call_soon_threadsafe(self._close, code, reason)
        except RuntimeError:
            pass

    def _write(self, text: str) -> None:
        if self.open and self.conn.state is OPEN:
            self.conn.send_text(text.encode())
            self._flush()

    def _close(self, code: int, reason: str) -> None:
        """Send our close frame (once); the session is released, the peer's answer awaited."""
        if self.conn.state is OPEN:
            self.conn.send_close(code, reason.encode()[:123].decode(errors="ignore"))
            self._flush()

    def _fail(self, code: int, reason: str) -> None:
        """Fail the connection (RFC 6455 §7.1.7): our close frame, then the TCP close."""
        self.conn.fail(code, reason)
        self._flush()

    # ---- writing ------------------------------------------------------------------------------
    def _flush(self) -> None:
        """Write what websockets has for the peer; end the session once the socket is closing;
        drop a peer that reads nothing once MAX_BUFFERED_OUT waits for it."""
        writes = self.conn.data_to_send()
        if not writes and self.open:
            return  # the common case: a message read, nothing to answer
        if self.transport.is_closing():
            writes = []  # dropped or gone: nothing more is written
        for data in writes:
            if data:
                self.transport.write(data)
            elif self.transport.can_write_eof():
                self.transport.write_eof()  # the close handshake is over (or failed): FIN now
            else:
                self.transport.close()
        if self.conn.state is not OPEN and self.open:
            self.open = False
            self._release()
        if self.conn.close_expected() and self.close_timer is None:
            self.close_timer = self.loop.call_later(CLOSE_TIMEOUT_SEC, self.transport.abort)
        if self.transport.get_write_buffer_size() > MAX_BUFFERED_OUT:
            log.warning("media socket not reading: dropped")
            self.open = False
            self.transport.abort()

    def _release(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            self.media.close_session(session)

    # ---- the opening handshake ----------------------------------------------------------------
    def _handshake(self, request: Request) -> None:
        """websockets checks the WebSocket handshake (400 when it is not one); then the
        MediaServer's checks (403), then `101` and the session."""
        response = self.conn.accept(request)
        scope: dict = {}
        if response.status_code == 101:
            scope = self._scope(request)
            problem = (self.media.handshake_problem(scope) if self.media is not None
                       else "no media server in the lifespan state")
            if problem:
                if self.media is not None:
                    self.media.rt.rejections.add("WS_REJECTED", peer(scope),
                                                 stage="handshake", reason=problem)
                else:
                    log.error("media socket refused: %s", problem)
                response = self.conn.reject(403, "")
        self.conn.send_response(response)
        if response.status_code == 101:
            self.open = True
            self.session = self.media.open_session(self, peer(scope),
                                                   self.media.is_unsigned(scope))

    def _scope(self, request: Request) -> dict:
        path, _, query = request.path.partition("?")
        client = self.transport.get_extra_info("peername") or ("?", 0)
        scope = {"type": "websocket", "path": path, "query_string": query.encode("latin-1"),
                 "headers": [(k.lower().encode("latin-1"), v.encode("latin-1"))
                             for k, v in request.headers.raw_items()],
                 "client": tuple(client[:2])}
        scope["client"] = forwarded_client(self.config, scope)
        return scope
