"""Sending one notification: e-mail by SMTP under an overall deadline, and which failures are
permanent (retrying cannot help) or passing."""

from __future__ import annotations

import smtplib
import socket
import ssl
import threading
import time
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from urllib.parse import unquote, urlsplit

from ..config import smtp_starttls
from ..delivery import short_error

SMTP_TIMEOUT_SEC = 10.0  # each socket operation; the whole attempt has its own deadline
# Twilio's codes for a message it will never send as asked: invalid To/From, no body, too long,
# unsubscribed, not a mobile number, region not allowed, From unable to send there.
TWILIO_PERMANENT = {21211, 21212, 21401, 21408, 21602, 21606, 21610, 21614, 21617}
TWILIO_PASSING_STATUS = {408, 429}  # Twilio's 4xx answers that a later attempt may not get


class DeadlinePassed(TimeoutError):
    """The attempt's overall deadline passed; its connection was cut."""


def send_email(url: str, sender: str, to: str, title: str, body: str, deadline: float,
               timeout: float = SMTP_TIMEOUT_SEC) -> None:
    """Send a UTF-8 e-mail through SMTP_URL: smtp:// (STARTTLS with ?starttls=true; port 25)
    or smtps:// (TLS from the start; port 465), logging in when the URL has a user. The whole
    exchange ends by `deadline` (epoch seconds): a server that answers a byte at a time is cut
    off then (DeadlinePassed)."""
    parts = urlsplit(url)
    secure = parts.scheme == "smtps"
    user, password = unquote(parts.username or ""), unquote(parts.password or "")
    message = EmailMessage()  # a header it refuses (ValueError) is raised before connecting
    message["Subject"], message["To"] = title, to
    message["From"] = sender or (user if "@" in user else f"ivr@{parts.hostname}")
    message["Date"], message["Message-ID"] = formatdate(localtime=True), make_msgid()
    message.set_content(body, charset="utf-8")
    remaining = deadline - time.time()
    if remaining <= 0:
        raise DeadlinePassed("the attempt's deadline passed before it began")
    smtp = (smtplib.SMTP_SSL if secure else smtplib.SMTP)(timeout=min(timeout, remaining))
    cut = threading.Event()
    guard = threading.Timer(remaining, _cut_off, (smtp, cut))
    guard.daemon = True
    guard.start()
    try:
        with smtp:
            smtp.connect(parts.hostname, parts.port or (465 if secure else 25))
            if not secure and smtp_starttls(url):
                smtp.starttls(context=ssl.create_default_context())
            if user:
                smtp.login(user, password)
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        if cut.is_set():
            raise DeadlinePassed(f"the attempt's deadline ({remaining:.0f} s) passed") from exc
        raise
    finally:
        guard.cancel()


def _cut_off(smtp: smtplib.SMTP, cut: threading.Event) -> None:
    """Unblock a read or write in progress: shut the socket down (the sender sees it closed)."""
    cut.set()
    sock = getattr(smtp, "sock", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed


def permanent(exc: Exception) -> bool:
    """Whether another attempt cannot succeed: an SMTP 5xx answer (to every recipient), a
    Twilio refusal of the message itself (4xx other than timeout and rate limit, or one of its
    known codes), a header or value the message cannot carry (ValueError)."""
    if isinstance(exc, smtplib.SMTPResponseException):
        return 500 <= exc.smtp_code < 600
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return bool(exc.recipients) and all(
            500 <= code < 600 for code, _msg in exc.recipients.values())
    if _is_twilio_error(exc):
        status = exc.status or 0
        return exc.code in TWILIO_PERMANENT or (
            400 <= status < 500 and status not in TWILIO_PASSING_STATUS)
    return isinstance(exc, ValueError)


def _is_twilio_error(exc: Exception) -> bool:
    return hasattr(exc, "status") and hasattr(exc, "code") and hasattr(exc, "msg")


def describe(exc: Exception) -> str:
    """One line naming a failure: the SMTP or Twilio code and message where there is one."""
    if isinstance(exc, smtplib.SMTPResponseException):
        text = f"{exc.smtp_code} {_decoded(exc.smtp_error)}"
    elif isinstance(exc, smtplib.SMTPRecipientsRefused):
        text = "; ".join(f"{who}: {code} {_decoded(msg)}"
                         for who, (code, msg) in exc.recipients.items())
    elif _is_twilio_error(exc):
        text = f"HTTP {exc.status} code {exc.code}: {exc.msg}"  # TwilioRestException
    else:
        return short_error(exc)
    return f"{exc.__class__.__name__}: {' '.join(text.split())}"[:300]


def _decoded(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
