"""A tiny Twilio app for the emulator's own tests: TwiML per route and a recording WebSocket."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

import pytest
from flask import Flask, Response, request
from flask_sock import Sock
from twilio.request_validator import RequestValidator

from ivr import audio
from ivr.sim import Carrier

from .livehelpers import LiveServer, wait_until

TOKEN = "fixture-token-0123456789abcdef00"
ACCOUNT = "AC" + "f" * 32
SPEED = 10  # the emulator's calls run ten times faster than real time


def doc(*verbs: str) -> str:
    """A TwiML document of these verbs."""
    return "<?xml version='1.0' encoding='UTF-8'?><Response>" + "".join(verbs) + "</Response>"


@pytest.fixture(name="line")
def fixture_line_served():
    """A FixtureLine on a loopback port (a test module uses it by importing it)."""
    fixture = FixtureLine()
    yield fixture
    fixture.stop()


@pytest.fixture(name="carrier")
def carrier_of_fixture_line(line):
    """The emulator calling the fixture line, with its status callback."""
    with Carrier(line.url, account_sid=ACCOUNT, auth_token=TOKEN, status_callback="/call_status",
                 speed=SPEED) as running:
        yield running


class FixtureLine:
    """Answers each path with the TwiML set in `docs` and records every request and WS message."""

    def __init__(self):
        self.app = Flask("fixture-line")
        self.docs: dict[str, str | Callable[[dict], str]] = {}
        self.requests: list[dict] = []
        self.last_headers: dict[str, str] = {}  # of the last webhook
        self.sockets: list[dict] = []
        self.on_socket: Callable[[object, dict], None] = read_until_stop
        self.validator = RequestValidator(TOKEN)
        self.live = LiveServer()
        self.url = self.live.url
        self.wss = self.url.replace("http://", "wss://") + "/ws"
        sock = Sock(self.app)
        self.app.add_url_rule("/media/<name>", "media", self.media)
        self.app.add_url_rule("/<path:path>", "doc", self.doc, methods=["GET", "POST"])
        sock.route("/ws")(self.socket)
        self.live.serve(self.app)

    def doc(self, path: str) -> Response:
        form = request.values.to_dict()
        url = self.url + request.full_path.rstrip("?")
        valid = self.validator.validate(url, request.form.to_dict(),
                                        request.headers.get("X-Twilio-Signature", ""))
        self.requests.append({"path": "/" + path, "form": form, "signed": valid})
        self.last_headers = dict(request.headers)
        body = self.docs.get("/" + path)
        if body is None:
            return Response(status=204 if path.endswith("status") else 404)
        body = body(form) if callable(body) else body
        return Response(body, mimetype="text/xml")

    def media(self, name: str) -> Response:
        tone = audio.beep_pcm16(1000, 440)
        if name.endswith(".mp3"):
            return Response(audio.pcm16_to_mp3(tone), mimetype="audio/mpeg")
        if name.endswith(".txt"):
            return Response("not audio", mimetype="text/plain")
        return Response(audio.wav_bytes(tone), mimetype="audio/x-wav")

    def socket(self, ws) -> None:
        session = {"messages": [], "signed": self.validator.validate(
            self.wss, {}, request.headers.get("X-Twilio-Signature", "")),
            "protocol": request.headers.get("Sec-WebSocket-Protocol"), "done": threading.Event()}
        self.sockets.append(session)
        try:
            self.on_socket(ws, session)
        finally:
            session["done"].set()

    def paths(self) -> list[str]:
        return [r["path"] for r in self.requests]

    def session(self, index: int = 0, seconds: float = 30.0) -> dict:
        """The `index`th WebSocket session once its handler has finished (the call may end
        before the server thread has even started the handler on a loaded machine)."""
        wait_until(lambda: len(self.sockets) > index, seconds)
        assert self.sockets[index]["done"].wait(seconds), "the socket handler never finished"
        return self.sockets[index]

    def stop(self) -> None:
        self.live.stop()


def receive(ws, session: dict) -> dict | None:
    """Next JSON message from the emulator, kept in the session; None when it closed."""
    try:
        raw = ws.receive()
    except Exception:  # noqa: BLE001 - closed
        return None
    if raw is None:
        return None
    message = json.loads(raw)
    session["messages"].append(message)
    return message


def read_until_stop(ws, session: dict) -> None:
    while (message := receive(ws, session)) is not None:
        if message["event"] == "stop":
            return


def events(session: dict) -> list[str]:
    return [m["event"] for m in session["messages"]]
