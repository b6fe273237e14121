"""The line's server: media WebSockets on the event loop, Flask's routes on thread lanes.

No socket holds a thread: an idle or half-open connection costs the loop a few kilobytes, so
no number of them can starve the webhooks; and each kind of request has its own lane of
threads, so turns and continuations waiting on a slow engine cannot starve a call's first
request, status callbacks or /healthz (see "Who runs on which thread" in ARCHITECTURE.md).
"""

from __future__ import annotations

import asyncio
import gc
import io
import logging
import sys
from typing import Any

from flask import Flask
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn_worker import UvicornWorker

from . import threads, tracing
from .lanes import Lanes
from .media.session import MediaServer
from .media.wire import MediaProtocol

LANES = ("calls", "turns", "continuations", "static", "other")  # ivr/threads.py sizes them
LANE_OF_ROUTE = {  # the rest: "other" (the inspector, unknown paths)
    "/webhook/incoming_call": "calls", "/webhook/call_status": "calls",
    "/webhook/stream_status": "calls", "/healthz": "calls", "/livez": "calls",
    "/metrics": "calls",
    "/webhook/handle_gather": "turns", "/webhook/handle_recording": "turns",
    "/webhook/dial_result": "turns", "/webhook/stream_ended": "turns",
    "/webhook/reply_continue": "continuations",
}
STATIC_PREFIX = "/static/"
HEAD_DEADLINE_SEC = 10.0  # a connection must send a whole request head this soon
BODY_DEADLINE_SEC = 10.0  # a request body must arrive this soon (no slow-drip holds a thread)
MAX_BODY_BYTES = 256 * 1024


class DeadlineHttp(HttpToolsProtocol):
    """uvicorn's HTTP protocol that closes a connection which has not sent a whole request head
    within HEAD_DEADLINE_SEC, so half-sent requests cannot pile up until file handles run out."""

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self.head_timer = self.loop.call_later(HEAD_DEADLINE_SEC, self.head_overdue)

    def head_overdue(self) -> None:
        upgraded = self.transport.get_protocol() is not self  # now a WebSocket: its own deadlines
        if self.cycle is None and not upgraded and not self.transport.is_closing():
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.head_timer.cancel()
        super().connection_lost(exc)


SERVER_OPTIONS: dict[str, Any] = {
    "http": DeadlineHttp, "ws": MediaProtocol, "lifespan": "on", "timeout_keep_alive": 5,
}


class LineApp:
    """ASGI: HTTP is served by the Flask app in a thread, once its whole body has arrived; the
    media WebSockets never come here (uvicorn hands them to SERVER_OPTIONS' `ws` protocol,
    which finds the MediaServer in the lifespan state)."""

    def __init__(self, flask_app: Flask):
        self.flask = flask_app
        self.runtime = flask_app.extensions["ivr"]
        self.media = MediaServer(self.runtime)
        sizes = {lane: threads.size(lane) for lane in LANES}
        sizes["continuations"] += self.runtime.continuations.cap  # the spares beyond the cap
        self.lanes = Lanes(sizes, self.media.probe)
        self.runtime.lanes = self.lanes  # /healthz reports them

    async def __call__(self, scope: dict, receive, send) -> None:
        if scope["type"] == "http":
            await self.http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self.lifespan(scope, receive, send)

    async def lifespan(self, scope: dict, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.media.probe.start(asyncio.get_running_loop())  # /healthz reports the lag
                # the media sockets' protocol (SERVER_OPTIONS' `ws`) finds its server here
                scope.get("state", {})[MediaServer.STATE_KEY] = self.media
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def close(self) -> None:
        """The worker stops (lifespan shutdown; uvicorn then ends the process by the signal it
        got, so neither gunicorn's worker_exit nor atexit runs): the trace spans it still holds
        are sent first."""
        self.lanes.close()
        self.media.starts.shutdown(wait=False, cancel_futures=True)
        self.runtime.close()
        tracing.shutdown()

    async def http(self, scope: dict, receive, send) -> None:
        try:
            body = await asyncio.wait_for(read_body(receive), BODY_DEADLINE_SEC)
        except TimeoutError:
            return await send_plain(send, 408, "request body too slow")
        except BodyTooLarge:
            return await send_plain(send, 413, "request body too large")
        if body is None:
            return  # the client went away
        environ = wsgi_environ(scope, body)
        lane = self.lanes[lane_of(scope)]
        status, headers, chunks = await asyncio.wrap_future(
            lane.submit(run_wsgi, self.flask, environ))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": chunks})


def lane_of(scope: dict) -> str:
    """The lane an HTTP request runs on, by its path."""
    if scope["method"] in ("GET", "HEAD") and scope["path"].startswith(STATIC_PREFIX):
        return "static"
    return LANE_OF_ROUTE.get(scope["path"], "other")


def settle_heap() -> None:
    """After start-up, move every object alive (~75,000: Flask, SQLAlchemy, twilio, the
    engines) out of the cyclic GC's reach: a full collection then scans only what calls
    allocate, not the whole program, so it no longer stalls the loop for 100+ ms."""
    gc.collect()
    gc.freeze()


class BodyTooLarge(Exception):
    """The request body is over MAX_BODY_BYTES."""


async def read_body(receive) -> bytes | None:
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body += message.get("body", b"")
        if len(body) > MAX_BODY_BYTES:
            raise BodyTooLarge()
        if not message.get("more_body"):
            return bytes(body)


async def send_plain(send, status: int, text: str) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain"), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": (text + "\n").encode()})


def wsgi_environ(scope: dict, body: bytes) -> dict:
    """The WSGI environ of an ASGI HTTP request whose body has been read."""
    server = scope.get("server") or ("localhost", 80)
    client = scope.get("client") or ("", 0)
    environ = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": scope.get("root_path", "").encode().decode("latin-1"),
        "PATH_INFO": scope["path"].encode().decode("latin-1"),
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_NAME": str(server[0]), "SERVER_PORT": str(server[1] or 80),
        "REMOTE_ADDR": client[0], "REMOTE_PORT": str(client[1]),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0), "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr,
        "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False,
    }
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin-1").upper().replace("-", "_")
        value = raw_value.decode("latin-1")
        if name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            environ[name] = value if name == "CONTENT_TYPE" else environ[name]
            continue
        key = "HTTP_" + name
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    return environ


def run_wsgi(app: Flask, environ: dict) -> tuple[int, list, bytes]:
    """Call the WSGI app; its status, headers and whole body (webhook answers are small)."""
    response: dict = {}

    def start_response(status: str, headers: list, exc_info=None) -> None:
        response["status"] = int(status.split(" ", 1)[0])
        response["headers"] = [(k.lower().encode("latin-1"), v.encode("latin-1"))
                               for k, v in headers]
    try:
        result = app(environ, start_response)
        try:
            body = b"".join(result)
        finally:
            getattr(result, "close", lambda: None)()
    except Exception:  # noqa: BLE001 - Flask answers errors itself; this is a last resort
        logging.getLogger("ivr").exception("request failed")
        return 500, [(b"content-type", b"text/plain")], b"internal error\n"
    return response["status"], response["headers"], body


class Worker(UvicornWorker):
    """gunicorn worker class of the deploy command (`-k ivr.asgi.Worker`)."""

    CONFIG_KWARGS = {"loop": "auto", **SERVER_OPTIONS}

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # one INFO line per connection ("WebSocket … 403") would undo the once-a-minute count
        # of rejected sockets; the line's own events say what happened to each call
        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)

    def load_wsgi(self) -> None:
        """Import the app (gunicorn calls this in the worker, before serving), then settle."""
        super().load_wsgi()
        settle_heap()
