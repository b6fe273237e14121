"""Telling the owner: each call's two-line summary, and an SMS and e-mail per message left."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from apscheduler.schedulers.base import BaseScheduler

from .. import threads, twiml
from ..config import Settings
from ..delivery import Delivery
from ..engines.base import LLM
from ..eventlog import EventLog
from ..jobs import every
from ..schema import DOCTOR_FROM
from ..store import Store
from .outbox import LEASE_SEC, MAX_ATTEMPTS, NotifyQueue
from .send import describe, permanent, send_email
from .texts import Notice, email_body, sms_body, subject

log = logging.getLogger("ivr")
CHANNELS = ("sms", "email")
SWEEP_SEC = 0.5  # how often each process claims the attempts that are due
SWEEP_JOB = "notify-sweep"
SWEEP_ERROR_EVERY_SEC = 30.0


class Notifier:
    """Writes each call's summary and sends the owner's notifications: `lead_left` and
    `call_ended` return at once and never raise. A notice's rows are written first (one thread,
    nothing slow before them), the summary after (its own pool), and each channel's attempts on
    that channel's own workers, so a slow SMTP server delays neither the SMS nor the rows."""

    def __init__(self, settings: Settings, store: Store, events: EventLog, delivery: Delivery,
                 llm: LLM, sweep_sec: float = SWEEP_SEC, lease_sec: float = LEASE_SEC):
        self.s, self.store, self.events, self.delivery, self.llm = (
            settings, store, events, delivery, llm)
        self.queue = NotifyQueue(store, lease_sec)
        self.sweep_sec = sweep_sec
        self.rows = threads.executor("notify-rows")
        self.summaries = threads.executor("notify-summary")
        self.pools = {channel: threads.executor(f"notify-{channel}")
                      for channel in CHANNELS}
        self.lock = threading.Lock()
        self.busy = dict.fromkeys(CHANNELS, 0)  # attempts claimed and not finished
        self.closed = False
        self.sweep_error_at = 0.0

    # ---- what the line calls ----------------------------------------------------------------
    def lead_left(self, call_sid: str, lead: dict) -> None:
        """A caller left a message: queue its notice on each configured channel, then
        summarise the call."""
        self._submit(self.rows, call_sid, self._lead_left, call_sid, dict(lead or {}))

    def call_ended(self, call_sid: str) -> None:
        """The call is over: a message it left that has no notice yet gets one (its process
        may have died before writing it), and so does a message the caller began and hung up
        on (kept as a lead marked incomplete); with NOTIFY_EVERY_CALL, a call without one gets
        a notice; then the final summary."""
        self._submit(self.rows, call_sid, self._call_ended, call_sid)

    def start(self, scheduler: BaseScheduler) -> None:
        """Sweep the due attempts every `sweep_sec` (starting the scheduler if it is not)."""
        every(scheduler, self.sweep_sec, self.sweep, SWEEP_JOB)

    def close(self) -> None:
        """Stop here; a row not sent goes to another process (or the next start): when due if
        unclaimed, once its lease expires if an attempt had claimed it."""
        self.closed = True
        for pool in (self.rows, self.summaries, *self.pools.values()):
            pool.shutdown(wait=False, cancel_futures=True)

    # ---- rows first, then the summary ---------------------------------------------------------
    def _submit(self, pool: ThreadPoolExecutor, call_sid: str, work, *args) -> None:
        def run():
            try:
                work(*args)
            except Exception as exc:  # noqa: BLE001 - the call never hears of it
                self.events.emit("NOTIFY_ERR", call_sid, logging.WARNING, err=describe(exc))
        try:
            pool.submit(run)
        except RuntimeError as exc:  # the pool is shut down: this process is stopping
            log.warning("NOTIFY_ERR call=%s err=%s", call_sid, exc)

    def _lead_left(self, call_sid: str, lead: dict) -> None:
        held = self.notify(call_sid, lead_key(lead), lead)
        self._submit(self.summaries, call_sid, self._summarize_and_release, call_sid, lead, held)

    def _call_ended(self, call_sid: str) -> None:
        lead = self.store.last_lead(call_sid) or self.keep_partial_lead(call_sid)
        held = []
        if lead is not None:  # nothing is added when lead_left wrote its rows
            held = self.notify(call_sid, lead_key(lead), lead)
        elif self.s.notify_every_call and not self.queue.of_call(call_sid) \
                and (self.store.get_call(call_sid) or {}).get("from_number") != DOCTOR_FROM:
            held = self.notify(call_sid, "call", None)
        self._submit(self.summaries, call_sid, self._summarize_and_release, call_sid, lead, held)

    def keep_partial_lead(self, call_sid: str) -> dict | None:
        """The parts of a message the caller gave before hanging up (the conversation says
        which), kept as a lead marked incomplete; None when they gave none."""
        partial = self.llm.partial_lead(self.store.history(call_sid))
        if not partial:
            return None
        lead = {**partial, "incomplete": True}
        call = self.store.get_call(call_sid) or {}
        self.store.add_lead(call_sid, caller=call.get("from_number") or "", **lead)
        self.events.emit("LEAD", call_sid, **lead)
        return lead

    def _summarize_and_release(self, call_sid: str, lead: dict | None, held: list) -> None:
        """The call's summary, then the held rows' final texts (due at once)."""
        summary = self.summarize(call_sid, lead)
        for row_id, channel, notice in held:
            notice = notice.with_summary(summary)
            title, body = self.texts(channel, notice)
            if self.queue.revise(row_id, title, body):
                self.kick(channel)

    def summarize(self, call_sid: str, lead: dict | None) -> str:
        """The call's two lines by the LLM engine (the built-in ones if it fails), stored."""
        history = self.store.history(call_sid)
        try:
            summary = self.llm.summarize(history, lead)
        except Exception:  # noqa: BLE001 - an engine's own summary failed: the plain one
            summary = LLM.summarize(self.llm, history, lead)
        self.store.update_call(call_sid, summary=summary)
        return summary

    def notify(self, call_sid: str, key: str, lead: dict | None) -> list:
        """Queue the call's notice once per configured channel (`key` names it: the same notice
        queued again, here or by another process, is not), with the summary built from the
        conversation (no engine). A text that needs no summary is due at once; one that shows
        it is held for the engine's summary, and sent with the built one if that never comes
        (this process died). The held rows: (id, channel, notice)."""
        call = self.store.get_call(call_sid) or {}
        lead = lead or {}
        notice = Notice(caller=call.get("from_number") or "", name=lead.get("name") or "",
                        phone=lead.get("phone") or "", reason=lead.get("reason") or "",
                        incomplete=bool(lead.get("incomplete")),
                        at=call.get("started_at") or time.time(),
                        summary=LLM.summarize(self.llm, self.store.history(call_sid), lead or None),
                        link=twiml.abs_url(self.s.public_base_url, f"/inspector/calls/{call_sid}"))
        held = []
        for channel, target in self.channels():
            title, body = self.texts(channel, notice)
            waits = channel == "email" or not notice.left_message  # shows the summary
            row_id = f"{call_sid}:{key}:{channel}"
            if self.queue.add(row_id, call_sid, channel, target, title, body,
                              hold_sec=self.summary_wait_sec if waits else 0.0):
                if waits:
                    held.append((row_id, channel, notice))
                else:
                    self.kick(channel)
        return held

    @property
    def summary_wait_sec(self) -> float:
        """How long a row waits for the engine's summary: the engine client's timeout (the
        longest stage's), twice, and a margin."""
        s = self.s
        return 2 * max(s.asr_timeout_sec, s.llm_timeout_sec, s.tts_timeout_sec) + 2.0

    def texts(self, channel: str, notice: Notice) -> tuple[str, str]:
        """(subject, body) of the notice on `channel` (an SMS has no subject)."""
        if channel == "email":
            return subject(notice), email_body(notice, self.s.timezone)
        return "", sms_body(notice, self.s.timezone)

    def channels(self) -> list[tuple[str, str]]:
        """(channel, target) of each configured channel."""
        return [(channel, target) for channel, target in (
            ("sms", self.s.notify_sms_to), ("email", self.s.notify_email_to)) if target]

    # ---- attempts -----------------------------------------------------------------------------
    def sweep(self) -> None:
        """Claim the attempts that are due on each channel (as many as it has room for)."""
        if self.closed:
            return
        now = time.time()
        try:
            for channel in CHANNELS:
                self.kick(channel, now)
        except Exception as exc:  # noqa: BLE001 - the next sweep tries again
            if now - self.sweep_error_at > SWEEP_ERROR_EVERY_SEC:
                self.sweep_error_at = now
                self.events.emit("NOTIFY_SWEEP_ERR", None, logging.WARNING, err=describe(exc))

    def kick(self, channel: str, now: float | None = None) -> None:
        """Claim what is due on `channel`, up to its free workers, and start each attempt."""
        now = time.time() if now is None else now
        with self.lock:  # reserve the room first: two kicks never claim more than it
            room = threads.size(f"notify-{channel}") - self.busy[channel]
            self.busy[channel] += max(room, 0)
        rows = []
        try:
            if room > 0 and not self.closed and self.queue.waiting(now, channel):
                rows = self.queue.claim(now, room, channel)
        finally:
            with self.lock:
                self.busy[channel] -= max(room, 0) - len(rows)
        for row in rows:
            self._start(row)

    def _start(self, row: dict) -> None:
        try:
            self.pools[row["channel"]].submit(self._attempt, row)
        except RuntimeError:  # stopping: the lease runs out, another process sends it
            self._done(row["channel"])

    def _done(self, channel: str) -> None:
        with self.lock:
            self.busy[channel] -= 1

    def _attempt(self, row: dict) -> None:
        """One attempt of a claimed row, its outcome recorded and logged (if even that fails,
        the lease runs out and the sweep tries again)."""
        try:
            self._send_and_record(row)
        except Exception as exc:  # noqa: BLE001 - the database failed us: logged, not raised
            self.events.emit("NOTIFY_ERR", row["call_sid"], logging.WARNING, err=describe(exc))
        finally:
            self._done(row["channel"])

    def _send_and_record(self, row: dict) -> None:
        if row["attempts"] > MAX_ATTEMPTS:  # the last attempt's process died mid-way
            self._failed(row, row["last_error"] or "the process sending it stopped", True)
            return
        try:
            self.send(row, self.queue.deadline(row))
        except Exception as exc:  # noqa: BLE001 - retried, then given up, never raised
            self._failed(row, describe(exc), permanent(exc))
            return
        if self.queue.finish(row, status="sent", sent_at=time.time()):
            self.events.emit("NOTIFY_SENT", row["call_sid"], channel=row["channel"],
                             attempt=row["attempts"])

    def _failed(self, row: dict, error: str, final: bool) -> None:
        """A permanent failure (or the last attempt's) is `failed` at once; else a retry."""
        error, attempt = self.events.redact(error), min(row["attempts"], MAX_ATTEMPTS)
        if final or attempt >= MAX_ATTEMPTS:
            if self.queue.finish(row, status="failed", last_error=error):
                self.events.emit("NOTIFY_FAILED", row["call_sid"], logging.ERROR,
                                 channel=row["channel"], attempts=attempt, err=error)
            return
        wait = self.s.notify_retry_sec * 2 ** (attempt - 1)
        if self.queue.finish(row, next_at=time.time() + wait, last_error=error):
            self.events.emit("NOTIFY_RETRY", row["call_sid"], logging.WARNING,
                             channel=row["channel"], attempt=attempt, err=error,
                             next_in=round(wait, 3))

    def send(self, row: dict, deadline: float) -> None:
        """Send one notification, over by `deadline` (raises on failure)."""
        if row["channel"] == "sms":  # the REST client's own timeouts end it well before
            self.delivery.client().messages.create(to=row["target"], from_=self.s.notify_sms_from,
                                                   body=row["body"])
        else:
            send_email(self.s.smtp_url, self.s.notify_email_from, row["target"], row["subject"],
                       row["body"], deadline)


def lead_key(lead: dict) -> str:
    """A message's notice name: the same message left (or found at the call's end) is one."""
    text = "|".join(str(lead.get(k) or "") for k in ("name", "phone", "reason"))
    return "lead-" + hashlib.sha256(text.encode()).hexdigest()[:12]
