"""Both ends of a WebSocket wire test: a raw-socket client that sends any frame, malformed ones
included, and reads what comes back; a plain `websockets` asyncio server as the reference."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import threading
from dataclasses import dataclass, field

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
ANSWER_WAIT_SEC = 15.0  # the servers' close timeouts are set far above this in the tests


def frame(opcode: int, payload: bytes = b"", fin: bool = True, rsv: int = 0,
          masked: bool = True) -> bytes:
    """One client frame, exactly as given (a test may break any rule)."""
    size = len(payload)
    first = (0x80 if fin else 0) | rsv << 4 | opcode
    mask_bit = 0x80 if masked else 0
    if size < 126:
        head = bytes((first, mask_bit | size))
    elif size < 65536:
        head = bytes((first, mask_bit | 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((first, mask_bit | 127)) + size.to_bytes(8, "big")
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def close_frame(code: int | None, reason: bytes = b"") -> bytes:
    payload = b"" if code is None else code.to_bytes(2, "big") + reason
    return frame(CLOSE, payload)


@dataclass
class Outcome:
    """What the client saw: the server's close code (None: no code; "none": no close frame),
    the pongs and texts, and whether the TCP connection ended cleanly (a FIN after the close
    handshake, before the server's close timeout)."""

    code: int | str | None = "none"
    pongs: list[bytes] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    clean: bool = False


class RawClient:
    """A blocking client socket after a good upgrade."""

    def __init__(self, url: str, path: str, headers: dict[str, str] | None = None):
        host, port = url.split("//", 1)[1].split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=ANSWER_WAIT_SEC)
        lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Upgrade: websocket",
                 "Connection: Upgrade", "Sec-WebSocket-Version: 13",
                 f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._recv()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        assert head.split(b" ")[1] == b"101", head

    def _recv(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        return data

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self.buffer += self._recv()
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError:
            pass  # the server closed while we sent: what it said is read next

    def outcome(self, sent_close: bool = False) -> Outcome:
        """Read until the server's close frame (answered as RFC 6455 says), then until EOF."""
        seen = Outcome()
        try:
            while True:
                first, second = self._read(2)
                size = second & 0x7F
                if size >= 126:
                    size = int.from_bytes(self._read(2 if size == 126 else 8), "big")
                payload = self._read(size)
                if first & 0x0F == PONG:
                    seen.pongs.append(payload)
                elif first & 0x0F == TEXT:
                    seen.texts.append(payload.decode())
                elif first & 0x0F == CLOSE:
                    seen.code = int.from_bytes(payload[:2], "big") if payload else None
                    if not sent_close:
                        self.send(close_frame(seen.code))
                    break
            self.buffer += self._recv()  # nothing may follow the close frame but the FIN
            seen.clean = False
        except EOFError:
            seen.clean = seen.code != "none" and not self.buffer
        except OSError:
            seen.clean = False  # reset, or no FIN within ANSWER_WAIT_SEC: lingered
        finally:
            self.sock.close()
        return seen


class ReferenceServer:
    """A plain `websockets` asyncio server on its own loop: it keeps each message, and closes
    (1000) after a message containing "stop", as the line's session does."""

    def __init__(self, **limits):
        self.limits = limits
        self.delivered: list[str | bytes] = []
        self.connections: set = set()
        self.handled = 0  # connections whose handler has returned
        self.url = ""
        self.ready = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stop: asyncio.Future | None = None
        self.thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)

    async def _handler(self, ws) -> None:
        self.connections.add(ws)
        try:
            async for message in ws:
                self.delivered.append(message)
                if "stop" in str(message):
                    await ws.close(1000)
        except ConnectionClosed:
            pass  # what the client saw is the test's subject
        finally:
            self.connections.discard(ws)
            self.handled += 1

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.stop = self.loop.create_future()
        async with serve(self._handler, "127.0.0.1", 0, compression=None, ping_interval=None,
                         **self.limits) as server:
            port = server.sockets[0].getsockname()[1]
            self.url = f"http://127.0.0.1:{port}"
            self.ready.set()
            await self.stop

    def start(self) -> ReferenceServer:
        self.thread.start()
        assert self.ready.wait(30)
        return self

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.stop.set_result, None)
        self.thread.join(15)

