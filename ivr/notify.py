"""Telling the owner: each call's two-line summary, and an SMS and e-mail per message left."""

from __future__ import annotations

import hashlib
import logging
import smtplib
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from urllib.parse import unquote, urlsplit

from apscheduler.schedulers.base import BaseScheduler

from . import twiml
from .config import Settings, smtp_starttls
from .delivery import Delivery, short_error
from .engines.base import LLM
from .eventlog import EventLog
from .notify_queue import LEASE_SEC, MAX_ATTEMPTS, NotifyQueue
from .notify_text import Notice, email_body, sms_body, subject
from .store import Store

log = logging.getLogger("ivr")
WORKERS = 4  # summaries and attempts at once per process
SWEEP_SEC = 0.5  # how often each process claims the retries that are due
SWEEP_JOB = "notify-sweep"
SWEEP_ERROR_EVERY_SEC = 30.0
SMTP_TIMEOUT_SEC = 10.0


class Notifier:
    """Writes each call's summary and sends the owner's notifications on its own small pool:
    `lead_left` and `call_ended` return at once and never raise."""

    def __init__(self, settings: Settings, store: Store, events: EventLog, delivery: Delivery,
                 llm: LLM, sweep_sec: float = SWEEP_SEC, lease_sec: float = LEASE_SEC):
        self.s, self.store, self.events, self.delivery, self.llm = (
            settings, store, events, delivery, llm)
        self.queue = NotifyQueue(store, lease_sec)
        self.sweep_sec = sweep_sec
        self.pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="notify")
        self.lock = threading.Lock()
        self.busy = 0  # attempts handed to the pool and not finished
        self.closed = False
        self.sweep_error_at = 0.0

    # ---- what the line calls ----------------------------------------------------------------
    def lead_left(self, call_sid: str, lead: dict) -> None:
        """A caller left a message: summarise the call and notify each configured channel."""
        self._submit(call_sid, self._lead_left, call_sid, dict(lead or {}))

    def call_ended(self, call_sid: str) -> None:
        """The call is over: its final summary; with NOTIFY_EVERY_CALL, a notification unless
        the call already has one."""
        self._submit(call_sid, self._call_ended, call_sid)

    def start(self, scheduler: BaseScheduler) -> None:
        """Sweep the due retries every `sweep_sec` (starting the scheduler if it is not)."""
        scheduler.add_job(self.sweep, "interval", seconds=self.sweep_sec, id=SWEEP_JOB,
                          replace_existing=True, max_instances=1, coalesce=True,
                          misfire_grace_time=None)
        if not scheduler.running:
            scheduler.start()

    def close(self) -> None:
        """Stop here; an attempt claimed and not finished goes to another process (or the next
        start) once its lease expires."""
        self.closed = True
        self.pool.shutdown(wait=False, cancel_futures=True)

    # ---- summaries and queueing ---------------------------------------------------------------
    def _submit(self, call_sid: str, work, *args) -> None:
        def run():
            try:
                work(*args)
            except Exception as exc:  # noqa: BLE001 - the call never hears of it
                self.events.emit("NOTIFY_ERR", call_sid, logging.WARNING, err=describe(exc))
        try:
            self.pool.submit(run)
        except RuntimeError as exc:  # the pool is shut down: this process is stopping
            log.warning("NOTIFY_ERR call=%s err=%s", call_sid, exc)

    def _lead_left(self, call_sid: str, lead: dict) -> None:
        summary = self.summarize(call_sid, lead)
        key = "lead-" + hashlib.sha256(
            "|".join(str(lead.get(k, "")) for k in ("name", "phone", "reason")).encode()
        ).hexdigest()[:12]
        self.notify(call_sid, key, lead, summary)

    def _call_ended(self, call_sid: str) -> None:
        """A call that left a message is lead_left's to notify (its summary may still be on
        its way when the caller hangs up right after), one already notified is done."""
        lead = self.store.last_lead(call_sid)
        summary = self.summarize(call_sid, lead)
        if self.s.notify_every_call and lead is None and not self.queue.of_call(call_sid):
            self.notify(call_sid, "call", lead, summary)

    def summarize(self, call_sid: str, lead: dict | None) -> str:
        """The call's two lines by the LLM engine (the built-in ones if it fails), stored."""
        history = self.store.history(call_sid)
        try:
            summary = self.llm.summarize(history, lead)
        except Exception:  # noqa: BLE001 - an engine's own summary failed: the plain one
            summary = LLM.summarize(self.llm, history, lead)
        self.store.update_call(call_sid, summary=summary)
        return summary

    def notify(self, call_sid: str, key: str, lead: dict | None, summary: str) -> None:
        """Queue the call's notice once per configured channel (`key` names it: the same notice
        queued again, here or by another process, is not) and make each first attempt."""
        call = self.store.get_call(call_sid) or {}
        lead = lead or {}
        notice = Notice(caller=call.get("from_number") or "", name=lead.get("name") or "",
                        phone=lead.get("phone") or "", reason=lead.get("reason") or "",
                        at=call.get("started_at") or time.time(), summary=summary,
                        link=twiml.abs_url(self.s.public_base_url, f"/inspector/calls/{call_sid}"))
        tz = self.s.timezone
        for channel, target in self.channels():
            title = subject(notice) if channel == "email" else ""
            body = email_body(notice, tz) if channel == "email" else sms_body(notice, tz)
            row = self.queue.add(f"{call_sid}:{key}:{channel}", call_sid, channel, target,
                                 title, body)
            if row:
                self._start(row)

    def channels(self) -> list[tuple[str, str]]:
        """(channel, target) of each configured channel."""
        return [(channel, target) for channel, target in (
            ("sms", self.s.notify_sms_to), ("email", self.s.notify_email_to)) if target]

    # ---- attempts -----------------------------------------------------------------------------
    def sweep(self) -> None:
        """Claim the retries that are due (as many as this process has room for) and run them."""
        if self.closed:
            return
        now = time.time()
        try:
            with self.lock:
                room = WORKERS - self.busy
            if room > 0 and self.queue.waiting(now):
                for row in self.queue.claim(now, room):
                    self._start(row)
        except Exception as exc:  # noqa: BLE001 - the next sweep tries again
            if now - self.sweep_error_at > SWEEP_ERROR_EVERY_SEC:
                self.sweep_error_at = now
                self.events.emit("NOTIFY_SWEEP_ERR", None, logging.WARNING, err=describe(exc))

    def _start(self, row: dict) -> None:
        with self.lock:
            self.busy += 1
        try:
            self.pool.submit(self._attempt, row)
        except RuntimeError:  # stopping: the lease runs out, another process sends it
            with self.lock:
                self.busy -= 1

    def _attempt(self, row: dict) -> None:
        """One attempt of a claimed row, its outcome recorded and logged (if even that fails,
        the lease runs out and the sweep tries again)."""
        try:
            self._send_and_record(row)
        except Exception as exc:  # noqa: BLE001 - the database failed us: logged, not raised
            self.events.emit("NOTIFY_ERR", row["call_sid"], logging.WARNING, err=describe(exc))
        finally:
            with self.lock:
                self.busy -= 1

    def _send_and_record(self, row: dict) -> None:
        if row["attempts"] > MAX_ATTEMPTS:  # the last attempt's process died mid-way
            self._failed(row, row["last_error"] or "the process sending it stopped")
            return
        try:
            self.send(row)
        except Exception as exc:  # noqa: BLE001 - retried, then given up, never raised
            self._failed(row, describe(exc))
            return
        if self.queue.finish(row, status="sent", sent_at=time.time()):
            self.events.emit("NOTIFY_SENT", row["call_sid"], channel=row["channel"],
                             attempt=row["attempts"])

    def _failed(self, row: dict, error: str) -> None:
        error, attempt = self.events.redact(error), min(row["attempts"], MAX_ATTEMPTS)
        if attempt >= MAX_ATTEMPTS:
            if self.queue.finish(row, status="failed", last_error=error):
                self.events.emit("NOTIFY_FAILED", row["call_sid"], logging.ERROR,
                                 channel=row["channel"], attempts=attempt, err=error)
            return
        wait = self.s.notify_retry_sec * 2 ** (attempt - 1)
        if self.queue.finish(row, next_at=time.time() + wait, last_error=error):
            self.events.emit("NOTIFY_RETRY", row["call_sid"], logging.WARNING,
                             channel=row["channel"], attempt=attempt, err=error,
                             next_in=round(wait, 3))

    def send(self, row: dict) -> None:
        """Send one notification (raises on failure)."""
        if row["channel"] == "sms":
            self.delivery.client().messages.create(to=row["target"], from_=self.s.notify_sms_from,
                                                   body=row["body"])
        else:
            send_email(self.s.smtp_url, self.s.notify_email_from, row["target"], row["subject"],
                       row["body"])


def send_email(url: str, sender: str, to: str, title: str, body: str,
               timeout: float = SMTP_TIMEOUT_SEC) -> None:
    """Send a UTF-8 e-mail through SMTP_URL: smtp:// (STARTTLS with ?starttls=true; port 25)
    or smtps:// (TLS from the start; port 465), logging in when the URL has a user."""
    parts = urlsplit(url)
    secure = parts.scheme == "smtps"
    user, password = unquote(parts.username or ""), unquote(parts.password or "")
    message = EmailMessage()
    message["Subject"], message["To"] = title, to
    message["From"] = sender or (user if "@" in user else f"ivr@{parts.hostname}")
    message["Date"], message["Message-ID"] = formatdate(localtime=True), make_msgid()
    message.set_content(body, charset="utf-8")
    connect = smtplib.SMTP_SSL if secure else smtplib.SMTP
    with connect(parts.hostname, parts.port or (465 if secure else 25), timeout=timeout) as smtp:
        if not secure and smtp_starttls(url):
            smtp.starttls(context=ssl.create_default_context())
        if user:
            smtp.login(user, password)
        smtp.send_message(message)


def describe(exc: Exception) -> str:
    """One line naming a failure: the SMTP or Twilio code and message where there is one."""
    if isinstance(exc, smtplib.SMTPResponseException):
        text = f"{exc.smtp_code} {_decoded(exc.smtp_error)}"
    elif isinstance(exc, smtplib.SMTPRecipientsRefused):
        text = "; ".join(f"{who}: {code} {_decoded(msg)}"
                         for who, (code, msg) in exc.recipients.items())
    elif hasattr(exc, "status") and hasattr(exc, "code") and hasattr(exc, "msg"):
        text = f"HTTP {exc.status} code {exc.code}: {exc.msg}"  # TwilioRestException
    else:
        return short_error(exc)
    return f"{exc.__class__.__name__}: {' '.join(text.split())}"[:300]


def _decoded(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
