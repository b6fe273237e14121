"""The daily digest of new questions the line could not answer: one a day, from one process.

The day's timer is a row of the watchdog's checks table (ivr/due_checks.py, kind "digest", id
"inbox-digest"), due at INBOX_DIGEST_HOUR in TIMEZONE, its detail saying since when questions
are new. Every process sweeps it from one APScheduler job and claims it under a lease, so one
process runs it (or another once the lease runs out, if the claimer died); running it queues
the digest as outbox rows whose ids name the day (`NotifyQueue.add`: the same day queued twice,
by any process, is one), then arms the next day's timer from that moment on. A day with nothing
new sends nothing; a line without notifications (NOTIFY_SMS_TO, NOTIFY_EMAIL_TO) arms nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import zoneinfo
from collections.abc import Callable

from apscheduler.schedulers.base import BaseScheduler
from sqlalchemy import select

from .. import twiml
from ..config import Settings
from ..due_checks import LEASE_SEC, Check, DueChecks
from ..eventlog import EventLog
from ..facts.gaps import Inbox
from ..jobs import every
from ..schema import checks
from .notifier import Notifier
from .send import describe
from .texts import Asked, digest_email, digest_sms, digest_subject

KIND = "digest"
TIMER = "inbox-digest"
SWEEP_SEC = 30.0  # how late the digest may go: seconds, for a message sent once a day
SWEEP_JOB = "inbox-digest-sweep"
EXAMPLES = 3  # other words shown per question
FIRST_DAY_SEC = 86400.0  # the first digest covers the day before it was armed


class Digest:
    """Arms the day's digest timer and runs it when due. "Now" is `clock` (tests inject it)."""

    def __init__(self, settings: Settings, inbox: Inbox, notifier: Notifier, events: EventLog,
                 clock: Callable[[], float] = time.time, sweep_sec: float = SWEEP_SEC,
                 lease_sec: float = LEASE_SEC):
        self.s, self.inbox, self.notifier, self.events = settings, inbox, notifier, events
        self.clock, self.sweep_sec = clock, sweep_sec
        self.timers = DueChecks(inbox.store, lease_sec, (KIND,))

    def next_at(self, after: float) -> float:
        """The first INBOX_DIGEST_HOUR:00 in TIMEZONE after `after` (a wall-clock hour: it
        stays the same hour across daylight saving)."""
        zone = zoneinfo.ZoneInfo(self.s.timezone)
        day = dt.datetime.fromtimestamp(after, zone).date()
        for days in range(3):
            at = dt.datetime.combine(day + dt.timedelta(days=days),
                                     dt.time(self.s.inbox_digest_hour), zone)
            if at.timestamp() > after:
                return at.timestamp()
        raise AssertionError("unreachable: an hour comes within three days")

    def armed(self) -> dict | None:
        """The timer as armed now (its due time and detail), or None."""
        with self.inbox.store.engine.connect() as conn:
            row = conn.execute(select(checks.c.due_at, checks.c.detail)
                               .where(checks.c.id == TIMER, checks.c.kind == KIND)).first()
        if row is None:
            return None
        return {"due_at": row[0], **json.loads(row[1] or "{}")}

    def recover(self) -> None:
        """At a start: arm the timer if there is none, or if INBOX_DIGEST_HOUR changed (what is
        new since stays); retire it when no notification is set."""
        if not self.notifier.channels():
            self.timers.drop(TIMER)
            return
        now, armed = self.clock(), self.armed()
        if armed is None or armed.get("hour") != self.s.inbox_digest_hour:
            since = armed.get("since", now) if armed else now - FIRST_DAY_SEC
            self._arm(self.next_at(now), since)

    def _arm(self, due: float, since: float) -> None:
        self.timers.arm(TIMER, "", KIND, 0, due, wait=True, since=since,
                        hour=self.s.inbox_digest_hour)

    def start(self, scheduler: BaseScheduler) -> None:
        """Sweep for the due digest every `sweep_sec` (starting the scheduler if it is not)."""
        every(scheduler, self.sweep_sec, self.sweep, SWEEP_JOB)

    def sweep(self) -> int:
        """Claim the digest if it is due and run it; how many were claimed (0 or 1)."""
        now = self.clock()
        try:
            claimed = self.timers.claim(now, 1) if self.timers.waiting(now) else []
        except Exception as exc:  # noqa: BLE001 - the next sweep tries again
            self.events.emit("DIGEST_ERR", None, logging.WARNING, err=describe(exc))
            return 0
        for timer in claimed:
            self.run(timer, now)
        return len(claimed)

    def run(self, timer: Check, now: float) -> None:
        """Queue the digest of the questions asked since the last one (none: nothing), then arm
        the next day's from `now`. A failure is logged; the lease runs out and it runs again."""
        try:
            since = float(timer.detail.get("since", now - FIRST_DAY_SEC))
            asked = [Asked(g.question, calls, tuple(g.examples[:EXAMPLES]))
                     for g, calls in self.inbox.asked_between(since, now)]
            if asked:
                self.queue(asked, timer.due_at)
            self._arm(self.next_at(now), now)
        except Exception as exc:  # noqa: BLE001 - retried when its lease runs out
            self.events.emit("DIGEST_ERR", None, logging.WARNING, attempt=timer.attempts,
                             err=describe(exc))

    def queue(self, asked: list[Asked], due_at: float) -> None:
        """The digest as an outbox row per channel, named by its day (once, by any process)."""
        day = dt.datetime.fromtimestamp(due_at, zoneinfo.ZoneInfo(self.s.timezone)).date()
        link = twiml.abs_url(self.s.public_base_url, "/inspector/inbox")
        for channel, target in self.notifier.channels():
            title, body = (digest_subject(asked), digest_email(asked, link)) \
                if channel == "email" else ("", digest_sms(asked, link))
            if self.notifier.queue.add(f"{TIMER}:{day.isoformat()}:{channel}", "", channel,
                                       target, title, body):
                self.notifier.kick(channel)
                self.events.emit("DIGEST_QUEUED", None, channel=channel, questions=len(asked),
                                 day=day.isoformat())
