"""The owner's CalDAV calendar: each booking written to it, its own events read as busy times."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass

from ..eventlog import EventLog
from .appointments import BOOKED, Appointment, Appointments
from .feed import calendar, event, event_uid, is_ours
from .slots import Interval

BUSY_FRESH_SEC = 60.0  # the owner's events read for a range are used this long, then read again
SYNC_BATCH = 50  # appointments sync_pending pushes at most per run


@dataclass
class Known:
    """The owner's busy times last read for a range, and when (time.monotonic())."""

    start: dt.datetime
    end: dt.datetime
    busy: list[Interval]
    read_at: float


class CalendarSync:
    """One CalDAV calendar (CALENDAR_URL, its user and password) and the line's appointments:
    `push` writes or deletes one booking's event, `sync_pending` retries those the calendar
    missed (call it from a timer), `busy` reads the owner's own events as busy times, falling
    back to the last ones read while the calendar is down."""

    def __init__(self, appointments: Appointments, url: str, user: str = "",
                 password: str = "", timeout: float = 5.0, events: EventLog | None = None):
        self.appointments, self.url, self.user = appointments, url, user
        self.password, self.timeout, self.events = password, timeout, events
        self.zone = appointments.zone
        self.lock = threading.Lock()
        self.known: list[Known] = []
        self.fresh_sec = BUSY_FRESH_SEC

    @classmethod
    def from_settings(cls, settings, appointments: Appointments,
                      events: EventLog | None = None) -> CalendarSync | None:
        """The calendar the settings name; None without CALENDAR_URL."""
        if not settings.calendar_url:
            return None
        return cls(appointments, settings.calendar_url, settings.calendar_user,
                   settings.calendar_password, settings.calendar_timeout_sec, events)

    def _say(self, kind: str, level: int = logging.INFO, **detail) -> None:
        if self.events is not None:
            self.events.emit(kind, None, level, **detail)
        else:
            logging.getLogger("ivr").log(level, "%s %s", kind, " ".join(
                f"{k}={v}" for k, v in detail.items()))

    def _why(self, exc: Exception) -> str:
        """An error as one line, with the password cut out (an EventLog redacts again)."""
        text = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
        return text.replace(self.password, "***") if self.password else text

    def _calendar(self):
        import caldav  # loaded only when a calendar is configured

        client = caldav.DAVClient(url=self.url, username=self.user or None,
                                  password=self.password or None, timeout=self.timeout)
        return client.calendar(url=self.url)

    def push(self, appointment: Appointment) -> bool:
        """Make the calendar show `appointment` as it is now: its event written (booked) or
        deleted (cancelled); then marked synced. False, with the reason kept on the row and a
        CALENDAR_SYNC_ERR line, when the calendar is down: sync_pending tries again."""
        uid = appointment.external_uid or event_uid(appointment.id)
        try:
            self._write(appointment, uid)
        except Exception as exc:  # noqa: BLE001 - any failure leaves the booking local
            why = self._why(exc)
            self.appointments.mark_sync_failed(appointment.id, why)
            self._say("CALENDAR_SYNC_ERR", logging.WARNING, appointment=appointment.id,
                      err=why)
            return False
        self.appointments.mark_synced(appointment, uid)
        self._say("CALENDAR_SYNCED", appointment=appointment.id, status=appointment.status)
        return True

    def _write(self, appointment: Appointment, uid: str) -> None:
        from caldav.lib.error import NotFoundError

        cal = self._calendar()
        if appointment.status == BOOKED:
            cal.add_event(ical=calendar([event(appointment)]).to_ical().decode())
            return
        try:
            cal.event_by_uid(uid).delete()
        except NotFoundError:  # never written, or deleted already: the calendar is right
            pass

    def sync_pending(self, limit: int = SYNC_BATCH) -> int:
        """Push every appointment the calendar does not show as it is (booked while it was
        down, cancelled, moved); stops at the first failure (the calendar is down: the rest
        waits for the next run). How many were synced."""
        done = 0
        for appointment in self.appointments.unsynced(limit):
            if not self.push(appointment):
                break
            done += 1
        return done

    def busy(self, start: dt.datetime, end: dt.datetime) -> list[Interval]:
        """The owner's own events in [start, end) as busy intervals (the line's bookings are
        left out: they are held in the database). Read again after BUSY_FRESH_SEC; while the
        calendar is down, what was read last for those times (never nothing because of a
        failure when something was known)."""
        now = time.monotonic()
        with self.lock:
            fresh = [k for k in self.known if k.start <= start and k.end >= end
                     and now - k.read_at < self.fresh_sec]
        if fresh:
            return _overlapping(fresh[-1].busy, start, end)
        try:
            busy = self._read_busy(start, end)
        except Exception as exc:  # noqa: BLE001 - the last known busy times answer instead
            self._say("CALENDAR_READ_ERR", logging.WARNING, err=self._why(exc))
            with self.lock:
                return _overlapping([b for k in self.known for b in k.busy], start, end)
        with self.lock:
            self.known = [k for k in self.known if not (start <= k.start and k.end <= end)]
            self.known.append(Known(start, end, busy, now))
        return busy

    def forget(self) -> None:
        """Drop the busy times read so far (the next `busy` reads the calendar)."""
        with self.lock:
            self.known = []

    def _read_busy(self, start: dt.datetime, end: dt.datetime) -> list[Interval]:
        found = self._calendar().search(start=start, end=end, event=True, expand=True)
        busy = []
        for item in found:
            for component in item.icalendar_instance.walk("VEVENT"):
                if is_ours(component.get("uid", "")) \
                        or str(component.get("transp", "")).upper() == "TRANSPARENT" \
                        or str(component.get("status", "")).upper() == "CANCELLED":
                    continue
                span = self._span(component)
                if span and span[0] < end and span[1] > start:
                    busy.append(span)
        return sorted(busy)

    def _span(self, component) -> Interval | None:
        """An event's [start, end) as aware datetimes (an all-day event: its local days)."""
        begins = component.get("dtstart")
        if begins is None:
            return None
        begins = begins.dt
        ends = component.get("dtend")
        if ends is not None:
            ends = ends.dt
        elif component.get("duration") is not None:
            ends = begins + component.get("duration").dt
        else:
            ends = begins + (dt.timedelta(days=1) if not isinstance(begins, dt.datetime)
                             else dt.timedelta(0))
        return self._aware(begins), self._aware(ends)

    def _aware(self, value: dt.date | dt.datetime) -> dt.datetime:
        if not isinstance(value, dt.datetime):  # an all-day event: from the local midnight
            return dt.datetime.combine(value, dt.time(0), tzinfo=self.zone)
        return value if value.tzinfo else value.replace(tzinfo=self.zone)


def _overlapping(busy: list[Interval], start: dt.datetime, end: dt.datetime) -> list[Interval]:
    return sorted({b for b in busy if b[0] < end and b[1] > start})

