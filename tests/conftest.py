"""Shared fixtures: settings on a temporary SQLite file and TTS dir, the app, signed requests."""

from __future__ import annotations

import threading
import time

import pytest
from twilio.request_validator import RequestValidator

from ivr.app import create_app
from ivr.config import Settings

AUTH_TOKEN = "test-auth-token-0123456789abcdef"
ACCOUNT_SID = "AC" + "1" * 32
BASE = "https://line.example.com"
CALL_SID = "CA" + "a" * 32


DATABASE = {"url": None}  # set by the `database` fixture: the test's PostgreSQL database


def database_url(tmp_path, name: str = "ivr") -> str:
    """The test's database: PostgreSQL when the test runs on both engines, else a SQLite file."""
    return DATABASE["url"] or f"sqlite:///{tmp_path}/{name}.sqlite3"


@pytest.fixture(scope="session")
def pg_cluster():
    """One throwaway PostgreSQL cluster for the whole run (started when a test first needs it)."""
    from .pgcluster import PgCluster
    cluster = PgCluster().start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request):
    """Run the test on SQLite and again on a new PostgreSQL database (`database_url()` and
    `make_settings` point at it): `pytestmark = pytest.mark.usefixtures("database")`."""
    if request.param == "postgresql":
        DATABASE["url"] = request.getfixturevalue("pg_cluster").new_database()
    yield request.param
    DATABASE["url"] = None


def make_settings(tmp_path, **changes) -> Settings:
    """Settings for one test: its own database and TTS directory."""
    env = {"PUBLIC_BASE_URL": BASE, "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
           "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "DATABASE_URL": database_url(tmp_path),
           "TTS_DIR": str(tmp_path / "tts"), "VAR_DIR": str(tmp_path / "var")}
    (tmp_path / "tts").mkdir(exist_ok=True)
    return Settings.from_env(env).replace(**changes)


def backdate(store, call_sid: str, days: float) -> None:
    """Make a call's rows (or, for call_sid "", the line-wide events) `days` old."""
    from sqlalchemy import update

    from ivr.store import calls, events, turns
    then = time.time() - days * 86400
    with store.writing() as conn:
        conn.execute(update(calls).where(calls.c.call_sid == call_sid)
                     .values(started_at=then, updated_at=then))
        conn.execute(update(turns).where(turns.c.call_sid == call_sid).values(created_at=then))
        conn.execute(update(events).where(events.c.call_sid == call_sid).values(ts=then))


def sign(url: str, params: dict, token: str = AUTH_TOKEN) -> str:
    """X-Twilio-Signature as Twilio computes it."""
    return RequestValidator(token).compute_signature(url, params)


STALL_SEC = 60  # a stalled engine call gives up after this; no passing test waits for it
ENGINE_METHODS = {"asr": "transcribe", "llm": "reply", "tts": "synthesize"}


class Stall:
    """Engine calls that hang until the test ends: a stage that never answers on its own.

    A test proves a stage timeout by the turn coming back while the stalled call is still
    inside the engine (`answered == 0`), not by timing the turn against a wall clock.
    """

    def __init__(self):
        self.gate, self.lock = threading.Event(), threading.Lock()
        self.entered = self.answered = 0

    def __call__(self, engine, stage: str):
        """Stall `engine` (the "asr", "llm" or "tts" stage); returns the engine."""
        method = ENGINE_METHODS[stage]
        inner = getattr(engine, method)

        def stalled(*args, **kwargs):
            with self.lock:
                self.entered += 1
            self.gate.wait(STALL_SEC)
            with self.lock:
                self.answered += 1
            return inner(*args, **kwargs)
        setattr(engine, method, stalled)
        return engine

    def release(self) -> None:
        self.gate.set()


@pytest.fixture
def stall():
    stalls = Stall()
    yield stalls
    stalls.release()


@pytest.fixture
def settings(tmp_path):
    return make_settings(tmp_path)


@pytest.fixture
def app(settings):
    application = create_app(settings)
    yield application
    application.extensions["ivr"].close()


@pytest.fixture
def runtime(app):
    return app.extensions["ivr"]


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def twilio_post(client):
    """POST a form signed like Twilio; `CallSid` defaults to the test call."""
    def post(path: str, signed: bool = True, **params):
        params.setdefault("CallSid", CALL_SID)
        params.setdefault("AccountSid", ACCOUNT_SID)
        headers = {"X-Twilio-Signature": sign(BASE + path, params)} if signed else {}
        return client.post(path, data=params, headers=headers)
    return post


@pytest.fixture
def phone_line(tmp_path):
    """The real app on a live loopback server and a carrier wired to it: `phone_line(**changes)`."""
    from types import SimpleNamespace

    from ivr.sim import Carrier

    from .livehelpers import LiveLine
    built = []

    def build(speed: float = 10.0, local: bool = False, **changes):
        live = LiveLine()
        if local:
            settings = Settings.from_env({"PUBLIC_BASE_URL": live.url,
                                          "VAR_DIR": str(tmp_path / "var"),
                                          "DATABASE_URL": database_url(tmp_path, "line"),
                                          "TTS_DIR": str(tmp_path / "tts")})
        else:
            settings = make_settings(tmp_path).replace(public_base_url=live.url)
        carrier = Carrier(live.url, account_sid=settings.twilio_account_sid,
                          auth_token=settings.twilio_auth_token, speed=speed).start()
        settings = settings.replace(**{"twilio_api_base_url": carrier.url, **changes})
        app = create_app(settings)
        live.serve(app)
        line = SimpleNamespace(app=app, runtime=app.extensions["ivr"], carrier=carrier, live=live,
                               url=live.url, store=app.extensions["ivr"].store)
        built.append((line, live))
        return line
    yield build
    for line, live in built:
        line.carrier.stop()
        live.stop()
        line.runtime.close()


@pytest.fixture
def carrier():
    """An emulated carrier no line is wired to: its REST API (calls.update, Messages) alone."""
    from ivr.sim import Carrier
    emulator = Carrier("http://127.0.0.1:9", account_sid=ACCOUNT_SID,
                       auth_token=AUTH_TOKEN).start()
    yield emulator
    emulator.stop()


@pytest.fixture
def smtp():
    """A real SMTP server on loopback (tests/smtpserver.py)."""
    from .smtpserver import SMTPServer
    server = SMTPServer()
    yield server
    server.stop()


def wait_until(condition, seconds: float = 60.0):
    """Poll `condition` until it is true (returned), failing after `seconds` (a bound no loaded
    machine reaches: the wait is on the condition, not on a time)."""
    deadline = time.monotonic() + seconds
    while not (result := condition()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)
    return result


def pytest_collection_modifyitems(items):
    """Markers that follow from a test's fixtures (`make test-fast` leaves both to `make test`):
    on PostgreSQL (the `database` fixture's second run, or `pg_cluster`) it is a `cluster`
    test; ringing the whole line through the emulator (`phone_line`) or starting a calendar
    server (`radicale`) it is a `live` one."""
    for item in items:
        params = getattr(item, "callspec", None)
        if "pg_cluster" in item.fixturenames or (
                params is not None and params.params.get("database") == "postgresql"):
            item.add_marker(pytest.mark.cluster)
        if {"phone_line", "radicale"} & set(item.fixturenames):  # the whole line; a server
            item.add_marker(pytest.mark.live)
