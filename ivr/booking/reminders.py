"""The reminder SMS REMINDER_HOURS before each appointment: a due timer row per appointment,
run once across workers and instances, surviving a kill.

The timer is a row of the watchdog's checks table (ivr/due_checks.py, kind "reminder", id
"reminder:<appointment>"): armed when the appointment is booked, re-armed when it moves (the
row replaced), retired when it is cancelled. Every process sweeps the due rows from one
APScheduler job and claims each under a lease, so one process runs it, or another once the
lease runs out if the claimer died. Running it queues the SMS as an outbox row whose id names
the appointment and its time (ivr/booking/notices.py), so a run repeated after a kill adds
nothing; the Notifier sends that row once. A reminder whose appointment is cancelled, moved
or already begun is not sent.
"""

from __future__ import annotations

import datetime as dt
import logging

from apscheduler.schedulers.base import BaseScheduler

from ..config import Settings
from ..due_checks import LEASE_SEC, Check, DueChecks
from ..eventlog import EventLog
from ..jobs import every
from ..notify.send import describe
from .appointments import BOOKED, Appointment
from .desk import Desk
from .notices import BookingNotices

KIND = "reminder"
SWEEP_SEC = 5.0  # how late a reminder may go: seconds, for a message sent hours ahead
SWEEP_JOB = "reminders-sweep"
SWEEP_BATCH = 50
MAX_ATTEMPTS = 3  # a reminder whose run failed this often (an exception, a dead claimer) is dropped


def timer_id(appointment_id: str) -> str:
    return f"{KIND}:{appointment_id}"


class Reminders:
    """Arms each appointment's reminder (a Desk listener) and runs the due ones. "Now" is the
    desk's clock (tests inject theirs)."""

    def __init__(self, settings: Settings, desk: Desk, notices: BookingNotices,
                 events: EventLog, lease_sec: float = LEASE_SEC, sweep_sec: float = SWEEP_SEC):
        self.s, self.desk, self.notices, self.events = settings, desk, notices, events
        self.timers = DueChecks(desk.appointments.store, lease_sec, (KIND,))
        self.sweep_sec = sweep_sec

    @property
    def ahead(self) -> dt.timedelta:
        return dt.timedelta(hours=self.s.reminder_hours)

    def now(self) -> float:
        return self.desk.clock().timestamp()

    def changed(self, kind: str, appointment: Appointment, call_sid: str = "") -> None:
        """Booked or moved: (re-)arm its reminder, unless its time is nearer than
        REMINDER_HOURS (the confirmation just went) or reminders are off; cancelled: retire
        it. Never raises into the conversation."""
        try:
            due = (appointment.start - self.ahead).timestamp()
            if kind == "cancelled" or not self.s.reminder_hours or due <= self.now():
                self.timers.drop(timer_id(appointment.id))
                return
            self.timers.arm(timer_id(appointment.id), appointment.call_sid[:64], KIND, 0, due,
                            wait=True, start=appointment.start.timestamp())
        except Exception as exc:  # noqa: BLE001 - the booking stands; the log says why
            self.events.emit("REMINDER_ERR", appointment.call_sid or None, logging.WARNING,
                             appointment=appointment.id, err=describe(exc))

    def recover(self) -> int:
        """At a start: a coming appointment whose reminder is still ahead but has no timer (its
        process died between the booking and the arming) gets one. How many were armed."""
        if not self.s.reminder_hours:
            return 0
        now = self.now()
        armed = set(self.timers.ids())
        lost = [a for a in self.desk.appointments.since(self.desk.clock())
                if a.status == BOOKED and timer_id(a.id) not in armed
                and (a.start - self.ahead).timestamp() > now]
        for appointment in lost:
            self.changed("booked", appointment)
        if lost:
            self.events.emit("REMINDER_RECOVERED", None, logging.WARNING, armed=len(lost))
        return len(lost)

    def start(self, scheduler: BaseScheduler) -> None:
        """Sweep the due reminders every `sweep_sec` (starting the scheduler if it is not)."""
        every(scheduler, self.sweep_sec, self.sweep, SWEEP_JOB)

    def sweep(self) -> int:
        """Claim the due reminders and run each; how many were claimed."""
        now = self.now()
        try:
            claimed = self.timers.claim(now, SWEEP_BATCH) if self.timers.waiting(now) else []
        except Exception as exc:  # noqa: BLE001 - the next sweep tries again
            self.events.emit("REMINDER_ERR", None, logging.WARNING, err=describe(exc))
            return 0
        for timer in claimed:
            self.run(timer, now)
        return len(claimed)

    def run(self, timer: Check, now: float) -> None:
        """Queue the reminder if its appointment is still booked at the time it was armed for
        and has not begun; then retire this arming (a newer one, from a move, stays)."""
        try:
            if timer.attempts > MAX_ATTEMPTS:
                self.events.emit("REMINDER_DROPPED", timer.call_sid or None, logging.ERROR,
                                 timer=timer.id, attempts=timer.attempts - 1)
            else:
                appointment = self.desk.appointments.get(timer.id.split(":", 1)[1])
                if appointment is not None and appointment.status == BOOKED \
                        and appointment.start.timestamp() == timer.detail.get("start") \
                        and now < appointment.start.timestamp():
                    if self.notices.remind(appointment):
                        self.events.emit("REMINDER_QUEUED", appointment.call_sid or None,
                                         appointment=appointment.id,
                                         late_sec=round(now - timer.due_at, 1))
            self.timers.done(timer)
        except Exception as exc:  # noqa: BLE001 - its lease runs out and it runs again
            self.events.emit("REMINDER_ERR", timer.call_sid or None, logging.WARNING,
                             timer=timer.id, attempt=timer.attempts, err=describe(exc))

    def pending(self) -> list[str]:
        """The armed reminders' ids."""
        return self.timers.ids()
