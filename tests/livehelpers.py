"""Helpers for tests that run the real server in a subprocess: free ports, waiting, signing."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from ivr.sim.clock import SERVE_POLL_SEC

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, proc: subprocess.Popen, seconds: float = 60.0) -> requests.Response:
    """Poll a URL until it answers; fail with the server's output if it dies or never answers.

    A server that is starting may accept the connection and answer late (a loaded machine), so
    a read timeout is one more try, not a failure; only the overall deadline fails the test.
    """
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError("server exited:\n" + proc.stdout.read())
        try:
            return requests.get(url, timeout=10)
        except requests.RequestException:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer in {seconds}s")


def wait_until(condition, seconds: float = 30.0, every: float = 0.02):
    """Poll `condition()` until it is truthy and return its value; fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {seconds}s: {condition}")
        time.sleep(every)


def start_script_env(tmp_path: Path, port: int, **extra: str) -> dict:
    """Environment of a clean start: the machine's, minus any ivr settings, plus ours."""
    private = ("TWILIO_", "OPENAI_", "GOOGLE_", "GCP_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(private)}
    env.update(PORT=str(port), BIND_HOST="127.0.0.1", VAR_DIR=str(tmp_path / "var"),
               DATABASE_URL=f"sqlite:///{tmp_path}/ivr.sqlite3", TTS_DIR=str(tmp_path / "tts"),
               PYTHONUNBUFFERED="1", PATH=str(Path(sys.executable).parent) + ":" + env["PATH"])
    env.update(extra)
    return env


class LiveServer:
    """A WSGI app on a threaded loopback server (real WebSockets); the port is known first."""

    def __init__(self):
        from werkzeug.serving import make_server
        self.app = None
        self.server = make_server("127.0.0.1", 0, self, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        import threading
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True,
                                       kwargs={"poll_interval": SERVE_POLL_SEC})

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)

    def serve(self, app) -> LiveServer:
        self.app = app
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()


class LiveLine:
    """The line as production serves it (uvicorn, media sockets on the loop, Flask in threads),
    on a loopback port known before the app is built."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = None
        self.thread = None

    def serve(self, flask_app) -> LiveLine:
        import threading

        import uvicorn

        from ivr.asgi import SERVER_OPTIONS, LineApp
        self.asgi = LineApp(flask_app)
        config = uvicorn.Config(self.asgi, log_level="warning", timeout_graceful_shutdown=2,
                                **SERVER_OPTIONS)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       daemon=True, name="live-line")
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise AssertionError("the live line did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
            self.thread.join(15)
        self.sock.close()
