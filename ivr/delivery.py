"""Twilio REST wrapper: ping-pong and fallback updates of a live call, and hang-up."""

from __future__ import annotations

import logging
import threading
from urllib.parse import urlsplit

from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from .config import Settings, is_twilio_host
from .eventlog import EventLog

REST_TIMEOUT_SEC = 5


def rest_client(account_sid: str, auth_token: str, api_base_url: str) -> Client:
    """The twilio client on `api_base_url` (Twilio's, or the emulator's); where that is not
    Twilio itself (see Settings.twilio_gateway) the Monitor API is reached through it too."""
    client = Client(account_sid, auth_token, http_client=TwilioHttpClient(timeout=REST_TIMEOUT_SEC))
    client.api.base_url = api_base_url
    if not is_twilio_host(urlsplit(api_base_url).hostname):
        client.monitor.base_url = api_base_url
    return client


class Delivery:
    """Moves a live call to new TwiML with `calls.update` on `TWILIO_API_BASE_URL`."""

    def __init__(self, settings: Settings, events: EventLog):
        self.s, self.events = settings, events
        self._client: Client | None = None
        self.lock = threading.Lock()

    def client(self) -> Client:
        if not (self.s.twilio_account_sid and self.s.twilio_auth_token):
            raise RuntimeError("TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are not set")
        with self.lock:
            if self._client is None:
                self._client = rest_client(self.s.twilio_account_sid, self.s.twilio_auth_token,
                                           self.s.twilio_api_base_url)
            return self._client

    def update(self, call_sid: str, twiml: str, kind: str, ok: str = "TX", **detail) -> bool:
        """Replace the call's TwiML; log `<KIND>_<ok>`/`<KIND>_FAIL`; False on any failure."""
        try:
            self.client().calls(call_sid).update(twiml=twiml)
        except Exception as exc:  # noqa: BLE001 - the caller of update has a fallback
            code = getattr(exc, "code", None)
            self.events.emit(f"{kind}_FAIL", call_sid, logging.WARNING, err=short_error(exc),
                             code=code, **detail)
            return False
        self.events.emit(f"{kind}_{ok}", call_sid, **detail)
        return True

    def ping_pong(self, call_sid: str, twiml: str, url: str) -> bool:
        """`<Play>` the reply then a fresh `<Connect><Stream>`: logs PING_PONG_TX call= url=."""
        return self.update(call_sid, twiml, "PING_PONG", url=url)

    def hangup(self, call_sid: str) -> bool:
        try:
            self.client().calls(call_sid).update(status="completed")
            return True
        except Exception as exc:  # noqa: BLE001
            self.events.emit("HANGUP_FAIL", call_sid, logging.WARNING, err=short_error(exc))
            return False


def short_error(exc: Exception) -> str:
    """An error in one short line: its class and the last line of its text."""
    text = str(exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {text[-1] if text else ''}"[:200]
