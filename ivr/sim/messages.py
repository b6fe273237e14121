"""Twilio's Messages resource as the emulator keeps it: validation, Twilio's codes, the JSON."""

from __future__ import annotations

import math
import re
import secrets
import threading
import time
from datetime import UTC, datetime
from email.utils import format_datetime

E164 = re.compile(r"\+\d{8,15}")
MAX_BODY = 1600
GSM7 = ("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
        "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
GSM7_EXTENDED = "^{}\\[~]|€\f"


def invalid(form: dict) -> tuple[int, str] | None:
    """(Twilio error code, message) for a Messages POST Twilio would refuse, else None."""
    to, sender, body = form.get("To", ""), form.get("From", ""), form.get("Body", "")
    if not E164.fullmatch(to):
        return 21211, f"The 'To' number {to} is not a valid phone number."
    if not E164.fullmatch(sender):
        return 21212, (f"The 'From' number {sender} is not a valid phone number, shortcode, "
                       "or alphanumeric sender ID.")
    if not body:
        return 21602, "Message body is required."
    if len(body) > MAX_BODY:
        return 21617, f"The concatenated message body exceeds the {MAX_BODY} character limit."
    return None


def segments(body: str) -> int:
    """SMS segments: GSM-7 160 (153 when split), else UCS-2 70 (67), as Twilio counts them."""
    if all(c in GSM7 or c in GSM7_EXTENDED for c in body):
        units, single, part = sum(2 if c in GSM7_EXTENDED else 1 for c in body), 160, 153
    else:
        units, single, part = len(body.encode("utf-16-le")) // 2, 70, 67
    return 1 if units <= single else math.ceil(units / part)


def rfc2822(at: float) -> str:
    return format_datetime(datetime.fromtimestamp(at, UTC))


def resource(account: str, message: dict) -> dict:
    """The Message resource's JSON as Twilio answers a create."""
    uri = f"/2010-04-01/Accounts/{account}/Messages/{message['sid']}"
    date = rfc2822(message["at"])
    return {"sid": message["sid"], "account_sid": account, "to": message["to"],
            "from": message["from"], "body": message["body"], "status": "queued",
            "direction": "outbound-api", "num_segments": str(segments(message["body"])),
            "num_media": "0", "date_created": date, "date_updated": date, "date_sent": None,
            "price": None, "price_unit": "USD", "error_code": None, "error_message": None,
            "messaging_service_sid": None, "api_version": "2010-04-01", "uri": uri + ".json",
            "subresource_uris": {"media": uri + "/Media.json",
                                 "feedback": uri + "/Feedback.json"}}


class Outbox:
    """The messages the carrier accepted, every attempt to send one, and injected failures."""

    def __init__(self):
        self.lock = threading.Lock()
        self.messages: list[dict] = []
        self.attempts: list[dict] = []
        self.failures: list[tuple[int, int]] = []  # (HTTP status, Twilio code), next first

    def fail(self, count: int, status: int = 500, code: int = 20500) -> None:
        with self.lock:
            self.failures.extend([(status, code)] * count)

    def next_failure(self) -> tuple[int, int] | None:
        with self.lock:
            return self.failures.pop(0) if self.failures else None

    def attempt(self, form: dict, status: int, code: int | None = None,
                sid: str | None = None) -> None:
        with self.lock:
            self.attempts.append({"at": time.time(), "to": form.get("To"),
                                  "from": form.get("From"), "body": form.get("Body"),
                                  "status": status, "code": code, "sid": sid})

    def accept(self, form: dict) -> dict:
        """Keep a valid message; return it (sid, to, from, body, at)."""
        message = {"sid": "SM" + secrets.token_hex(16), "to": form["To"],
                   "from": form["From"], "body": form["Body"], "at": time.time()}
        with self.lock:
            self.messages.append(message)
        self.attempt(form, 201, sid=message["sid"])
        return message
