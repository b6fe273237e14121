"""What every part of a call shares: the tick, Ended and Replace, line state, account, the Call."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import requests
from twilio.request_validator import (
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
)

from .. import audio
from .clock import CallClock, Mic, Tape
from .result import CallResult

TICK = audio.FRAME_SEC
OnTick = Callable[[bytes, str | None, str | None], bool]  # (frame, text, key) → stop listening


class Replace(Exception):
    """Run this TwiML document instead of the rest of the current one."""

    def __init__(self, doc: str, url: str):
        super().__init__(url)
        self.doc, self.url = doc, url


class Ended(Exception):
    """The call is over."""


@dataclass
class LineState:
    """What the caller can tell about the line: is it listening, is it talking, replies so far."""

    listening: bool = False
    speaking: bool = False
    replies: int = 0
    pause_ticks: int = 10  # streamed silence this long (20 ms ticks) ends a reply for the caller


@dataclass(frozen=True)
class Account:
    """The carrier as one call knows it: who it is, where its REST API is, the app's webhooks."""

    account_sid: str
    auth_token: str
    url: str  # the carrier's REST API
    server_url: str  # the app
    status_callback: str
    offer_subprotocol: bool
    alerts: Any = None  # alerts.AlertBook: what the Monitor Alerts resource lists
    gather_hebrew: str = "iw-IL"  # the Hebrew tag the emulator's Gather table lists
    shared_key: tuple[str, str, str] | None = None  # (key SID, secret, algorithm) signing webhooks


def signature_headers(account: Account, url: str, params: dict) -> dict[str, str]:
    """X-Twilio-Signature of a request as Twilio makes it: with the auth token, or with the
    account's Webhooks SharedKey, then naming it in X-Twilio-Webhooks-Signature-Settings."""
    if account.shared_key is None:
        return {SIGNATURE_HEADER: RequestValidator(account.auth_token).compute_signature(
            url, params)}
    key_sid, secret, algorithm = account.shared_key
    return {SIGNATURE_HEADER: RequestValidator(secret).compute_signature(url, params, algorithm),
            SIGNATURE_SETTINGS_HEADER: f"key={key_sid},algorithm={algorithm}"}


class Web(Protocol):
    """The call's outgoing HTTP (webclient.WebClient) as its verbs and streams use it."""

    def request(self, method: str, url: str, params: dict | None = None,
                signed: bool = True, what: str = "webhook") -> requests.Response | None: ...

    def twiml(self, url: str, method: str = "POST", extra: dict | None = None) -> str: ...

    def audio(self, url: str) -> bytes | None: ...


class Call(Protocol):
    """A running call (interpreter.CallRun) as its verbs, streams, web client and caller see it."""

    account: Account
    call_sid: str
    faults: dict
    clock: CallClock
    tape: Tape
    mic: Mic
    line: LineState
    result: CallResult
    ended: threading.Event
    web: Web
    doc_url: str
    tick_at: float
    forks: list[Any]
    recordings: dict[str, bytes]
    dropped: set[str]

    def log(self, who: str, text: str) -> None: ...

    def error(self, code: int, message: str, url: str = "") -> None: ...

    def params(self, **extra: str) -> dict[str, str]: ...

    def hangup(self, by: str) -> None: ...

    def tick_for(self, seconds: float | None, on_tick: OnTick | None = None) -> None: ...

    def play_to_caller(self, pcm: bytes, reply: bool = True, until: OnTick | None = None,
                       **info: Any) -> bool: ...

    def far_end(self, number: str) -> tuple[str, float]: ...
