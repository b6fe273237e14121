"""Bare HTTP/1.1 on asyncio streams for the load generator: a one-shot client and a tiny server."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl, urlencode, urlsplit

Handler = Callable[[str, str, dict, bytes], Awaitable[tuple[int, str, bytes]]]
TIMEOUT_SEC = 15  # Twilio's own webhook timeout


async def read_head(reader: asyncio.StreamReader) -> tuple[str, dict]:
    """The first line and the (lower-cased) headers of a request or a response."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    headers = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        if name:
            headers[name.strip().lower()] = value.strip()
    return head[0], headers


async def read_body(reader: asyncio.StreamReader, headers: dict) -> bytes:
    if "content-length" in headers:
        return await reader.readexactly(int(headers["content-length"]))
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = bytearray()
        while size := int((await reader.readline()).split(b";")[0], 16):
            body += await reader.readexactly(size)
            await reader.readline()
        await reader.readline()
        return bytes(body)
    return await reader.read()


async def request(method: str, url: str, form: dict | None = None,
                  headers: dict | None = None) -> tuple[int, dict, bytes]:
    """One request on its own connection: (status, headers, body)."""
    return await asyncio.wait_for(_request(method, url, form, headers), TIMEOUT_SEC)


async def _request(method: str, url: str, form: dict | None,
                   headers: dict | None) -> tuple[int, dict, bytes]:
    parts = urlsplit(url)
    body = urlencode(form).encode() if form is not None else b""
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close",
             f"Content-Length: {len(body)}", "User-Agent: TwilioProxy/1.1 (ivr loadgen)"]
    if form is not None:
        lines.append("Content-Type: application/x-www-form-urlencoded")
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port or 80)
    try:
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        status_line, response_headers = await read_head(reader)
        data = await read_body(reader, response_headers)
        return int(status_line.split()[1]), response_headers, data
    finally:
        writer.close()


async def serve(handler: Handler, host: str, port: int) -> asyncio.Server:
    """A keep-alive HTTP/1.1 server: `handler(method, path, headers, body)` → (status, type,
    body)."""
    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request_line, headers = await read_head(reader)
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                method, path, _ = request_line.split(" ", 2)
                status, ctype, data = await handler(method, path, headers, body)
                writer.write(f"HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\n"
                             f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.CancelledError, ConnectionError,
                ValueError):
            pass  # the client went away, or the run is over
        finally:
            writer.close()
    return await asyncio.start_server(connection, host, port)


def form_of(body: bytes) -> dict:
    return dict(parse_qsl(body.decode()))
