"""/ws/twilio-media as uvicorn's WebSocket protocol: RFC 6455 frames straight to the session.

uvicorn hands an upgraded connection to this asyncio Protocol (`ws` in asgi.SERVER_OPTIONS).
It does the handshake (the MediaServer's checks before `101`, a refusal is HTTP 403), unmasks
each frame in C (websockets' speedups) and calls the session's synchronous handler on the
loop: no ASGI queue, task or thread hand-off per frame. Writes from any thread keep their
order (each is a loop callback); a message over MAX_MESSAGE_BYTES closes the socket (1009).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from typing import Any

from .stream import MAX_MESSAGE_BYTES, MediaServer, MediaStreamSession, chosen_subprotocol, peer

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - a platform without the C extension
    from websockets.utils import apply_mask

log = logging.getLogger("ivr")
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CLOSE_TIMEOUT_SEC = 2.0  # after our close frame, the peer's answer is awaited this long
MAX_BUFFERED_OUT = 4 * 1024 * 1024  # a peer that reads nothing is dropped past this
TEXT, BINARY, CLOSE, PING, PONG = 1, 2, 8, 9, 10


def find_media_server(app: Any) -> tuple[MediaServer, Any]:
    """The MediaServer of the ASGI app uvicorn loaded (inside its middlewares), and uvicorn's
    trusted proxies (None when proxy headers are off)."""
    trusted = None
    while not isinstance(getattr(app, "media", None), MediaServer):
        trusted = getattr(app, "trusted_hosts", trusted)
        app = app.app
    return app.media, trusted


def parse_head(head: bytes) -> tuple[str, str, list[tuple[bytes, bytes]]]:
    """Method, target and headers (names lower-case) of the request head uvicorn replays."""
    lines = head.split(b"\r\n")
    method, target = lines[0].decode("latin-1").split(" ")[:2]
    headers = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(b":")
            headers.append((name.strip().lower(), value.strip()))
    return method, target, headers


def key_ok(key: str) -> bool:
    """Sec-WebSocket-Key is the base64 of 16 bytes."""
    try:
        return len(base64.b64decode(key, validate=True)) == 16
    except ValueError:
        return False


def frame(opcode: int, payload: bytes) -> bytes:
    """A server frame (unmasked, FIN)."""
    size = len(payload)
    if size < 126:
        head = bytes((0x80 | opcode, size))
    elif size < 65536:
        head = bytes((0x80 | opcode, 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 127)) + size.to_bytes(8, "big")
    return head + payload


class MediaProtocol(asyncio.Protocol):
    """One media WebSocket, from the upgrade request uvicorn replays to the TCP close."""

    def __init__(self, config: Any, server_state: Any, app_state: Any = None):
        self.config, self.server_state = config, server_state
        self.media, self.trusted = find_media_server(config.loaded_app)
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()
        self.session: MediaStreamSession | None = None
        self.subprotocol: str | None = None
        self.buffer = b""
        self.fragments: list[bytes] | None = None
        self.fragment_opcode = TEXT
        self.closed = False  # no more writes: our close frame is out, or the peer is gone
        self.close_timer: asyncio.TimerHandle | None = None

    # ---- uvicorn's protocol interface ---------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.server_state.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server_state.connections.discard(self)
        if self.close_timer is not None:
            self.close_timer.cancel()
        self._release()

    def shutdown(self) -> None:
        """The server is stopping: 1012 (service restart)."""
        if self.session is None:
            self.transport.close()
        else:
            self._close(1012, "server restart")

    def data_received(self, data: bytes) -> None:
        if self.session is None:
            return None if self.closed else self._handshake(data)
        data = self.buffer + data if self.buffer else data
        pos, end = 0, len(data)
        while end - pos >= 2 and not self.closed:
            first, second = data[pos], data[pos + 1]
            size, head = second & 0x7F, pos + 2
            if size == 126:
                if end - pos < 4:
                    break
                size, head = int.from_bytes(data[pos + 2:pos + 4], "big"), pos + 4
            elif size == 127:
                if end - pos < 10:
                    break
                size, head = int.from_bytes(data[pos + 2:pos + 10], "big"), pos + 10
            if not second & 0x80:
                return self._close(1002, "client frames must be masked")
            if size + self._fragmented() > MAX_MESSAGE_BYTES:
                return self._close(1009, "message too big")
            stop = head + 4 + size
            if stop > end:
                break
            payload = apply_mask(data[head + 4:stop], data[head:head + 4])
            pos = stop
            self._frame(first, payload)
        self.buffer = data[pos:] if pos < end and not self.closed else b""

    # ---- frames -------------------------------------------------------------------------------
    def _fragmented(self) -> int:
        return sum(map(len, self.fragments)) if self.fragments else 0

    def _frame(self, first: int, payload: bytes) -> None:
        fin, opcode = first & 0x80, first & 0x0F
        if first & 0x70:
            return self._close(1002, "no extension was negotiated")
        if opcode >= CLOSE:
            return self._control(opcode, payload, fin)
        if opcode == 0:
            if self.fragments is None:
                return self._close(1002, "continuation of nothing")
            self.fragments.append(payload)
            if fin:
                payload, opcode = b"".join(self.fragments), self.fragment_opcode
                self.fragments = None
                self._message(opcode, payload)
        elif opcode in (TEXT, BINARY) and self.fragments is None:
            if fin:
                return self._message(opcode, payload)
            self.fragments, self.fragment_opcode = [payload], opcode
        else:
            self._close(1002, "unexpected opcode")

    def _control(self, opcode: int, payload: bytes, fin: int) -> None:
        if not fin or len(payload) > 125:
            return self._close(1002, "bad control frame")
        if opcode == PING:
            self.transport.write(frame(PONG, payload))
        elif opcode == CLOSE:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            self._close(1000 if code in (1005, 1006) else code, "")
            self.transport.close()  # the handshake is complete: ours answered theirs
        elif opcode != PONG:
            self._close(1002, "unknown control opcode")

    def _message(self, opcode: int, payload: bytes) -> None:
        if self.session.closed.is_set():
            return  # the session ended the call (a `stop`, a bad token): the rest is not read
        if opcode == TEXT:
            try:
                raw: str | bytes = payload.decode()
            except UnicodeDecodeError:
                return self._close(1007, "invalid UTF-8")
        else:
            raw = payload
        self.session.receive(raw)

    # ---- the socket interface the session writes to (any thread) -----------------------------
    def send_text(self, text: str) -> bool:
        """Queue a text message; False once the socket is closed."""
        if self.closed:
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
        if self.closed:
            return
        if self.transport.get_write_buffer_size() > MAX_BUFFERED_OUT:
            log.warning("media socket not reading: dropped")
            self.closed = True
            self.transport.abort()
            return
        self.transport.write(frame(TEXT, text.encode()))

    def _close(self, code: int, reason: str) -> None:
        """Send our close frame (once), release the session, and give the peer a moment."""
        if self.closed:
            return
        self.closed = True
        self.buffer, self.fragments = b"", None
        self.transport.write(frame(CLOSE, code.to_bytes(2, "big")
                                   + reason.encode()[:123].decode(errors="ignore").encode()))
        self._release()
        self.close_timer = self.loop.call_later(CLOSE_TIMEOUT_SEC, self.transport.close)

    def _release(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            self.media.close_session(session)

    # ---- the opening handshake ----------------------------------------------------------------
    def _handshake(self, head: bytes) -> None:
        method, target, headers = parse_head(head)
        path, _, query = target.partition("?")
        values = {}
        for name, value in headers:
            values[name] = f"{values[name]}, {value.decode('latin-1')}" if name in values \
                else value.decode("latin-1")
        key = values.get(b"sec-websocket-key", "")
        if (method != "GET" or values.get(b"sec-websocket-version") != "13"
                or "websocket" not in values.get(b"upgrade", "").lower() or not key_ok(key)):
            return self._refuse(400, "not a WebSocket handshake")
        scope = {"type": "websocket", "path": path, "query_string": query.encode("latin-1"),
                 "headers": headers, "client": self._client(values),
                 "subprotocols": [p.strip() for p in
                                  values.get(b"sec-websocket-protocol", "").split(",")
                                  if p.strip()]}
        problem = self.media.handshake_problem(scope)
        if problem:
            self.media.rt.rejections.add("WS_REJECTED", peer(scope), stage="handshake",
                                         reason=problem)
            return self._refuse(403, "")
        self.subprotocol = chosen_subprotocol(scope)
        accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
        lines = ["HTTP/1.1 101 Switching Protocols", "Upgrade: websocket",
                 "Connection: Upgrade", f"Sec-WebSocket-Accept: {accept}"]
        if self.subprotocol:
            lines.append(f"Sec-WebSocket-Protocol: {self.subprotocol}")
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.session = self.media.open_session(self, peer(scope), self.media.is_unsigned(scope))

    def _client(self, values: dict) -> tuple[str, int]:
        client = self.transport.get_extra_info("peername") or ("?", 0)
        forwarded = values.get(b"x-forwarded-for")
        if self.trusted is not None and forwarded and client[0] in self.trusted:
            host, port = self.trusted.get_trusted_client_address(forwarded)
            return (host, port) if host else client
        return client[:2]

    def _refuse(self, status: int, text: str) -> None:
        body = text.encode()
        reason = {400: "Bad Request", 403: "Forbidden"}[status]
        self.transport.write(f"HTTP/1.1 {status} {reason}\r\nContent-Length: {len(body)}\r\n"
                             "Content-Type: text/plain\r\nConnection: close\r\n\r\n".encode()
                             + body)
        self.closed = True
        self.transport.close()
