"""A bare WebSocket client on asyncio streams for the load generator: sends without awaiting."""

from __future__ import annotations

import asyncio
import os
from base64 import b64encode
from urllib.parse import urlsplit

from .asynchttp import TIMEOUT_SEC, read_head

TEXT, CLOSE, PING, PONG = 0x1, 0x8, 0x9, 0xA


class HandshakeError(Exception):
    """The server did not switch protocols."""


def masked(data: bytes) -> bytes:
    """A client's payload, masked with a fresh key (RFC 6455 §5.3), the key first."""
    key, n = os.urandom(4), len(data)
    stream = (key * (n // 4 + 1))[:n]
    return key + (int.from_bytes(data, "little") ^ int.from_bytes(stream, "little")).to_bytes(
        n, "little")


def frame(opcode: int, data: bytes) -> bytes:
    n = len(data)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    return head + masked(data)


class WebSocket:
    """One client socket: `send_text` writes at once; `receive_all` answers pings and closes."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer
        self.closed = False
        self.received = 0

    @classmethod
    async def connect(cls, url: str, headers: dict) -> WebSocket:
        parts = urlsplit(url)
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(parts.hostname, parts.port or 80), TIMEOUT_SEC)
        lines = [f"GET {parts.path or '/'} HTTP/1.1", f"Host: {parts.netloc}",
                 "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13",
                 f"Sec-WebSocket-Key: {b64encode(os.urandom(16)).decode()}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        status_line, _ = await asyncio.wait_for(read_head(reader), TIMEOUT_SEC)
        if status_line.split()[1:2] != ["101"]:
            writer.close()
            raise HandshakeError(status_line)
        return cls(reader, writer)

    def send_text(self, text: str) -> None:
        if not self.closed:
            self.writer.write(frame(TEXT, text.encode()))

    async def receive_all(self) -> None:
        """Read the server's frames until it closes (a close is answered, the socket shut)."""
        try:
            while True:
                head = await self.reader.readexactly(2)
                n = head[1] & 0x7F
                if n >= 126:
                    n = int.from_bytes(await self.reader.readexactly(2 if n == 126 else 8), "big")
                data = await self.reader.readexactly(n)
                opcode = head[0] & 0x0F
                if opcode == CLOSE:
                    if not self.closed:
                        self.writer.write(frame(CLOSE, data[:2]))
                    break
                if opcode == PING:
                    self.writer.write(frame(PONG, data))
                self.received += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.closed = True
            self.writer.close()

    def close(self) -> None:
        """Our close frame (1000); `receive_all` ends when the server answers it."""
        if not self.closed:
            self.writer.write(frame(CLOSE, (1000).to_bytes(2, "big")))
            self.closed = True
