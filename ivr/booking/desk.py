"""The booking desk the conversation calls: the flow's rules, the appointments, the calendar."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from ..eventlog import EventLog
from ..flow import FlowFile
from ..store import Store
from .appointments import Appointment, Appointments, Outcome
from .caldav_sync import CalendarSync
from .services import BookingRules, LiveBooking, Service
from .slots import Interval, free_slots, why_not

Clock = Callable[[], dt.datetime]
Listener = Callable[[str, Appointment, str], None]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Desk:
    """Free times, bookings, cancellations and moves as a caller asks for them: each answer
    from the flow's rules as they are now, the appointments in the database and the owner's
    calendar's busy times (the last known ones while it is down), so no time offered or
    confirmed is wrong; each change written to the calendar at once, or later by
    `sync_pending`. `clock` is "now" (tests inject theirs)."""

    def __init__(self, rules: LiveBooking, appointments: Appointments,
                 calendar: CalendarSync | None = None, clock: Clock = utc_now):
        self.live, self.appointments, self.calendar, self.clock = (rules, appointments,
                                                                   calendar, clock)
        self.listeners: list[Listener] = []  # told of each change

    def on_change(self, listener: Listener) -> None:
        """`listener(kind, appointment, call_sid)` after each booking ("booked"), move
        ("moved") and cancellation ("cancelled") made in the call `call_sid` ("": not in a
        call): the caller's SMS, the owner's notice, the reminder."""
        self.listeners.append(listener)

    def _tell(self, kind: str, appointment: Appointment | None, call_sid: str = "") -> None:
        for listener in self.listeners if appointment is not None else ():
            listener(kind, appointment, call_sid)

    @classmethod
    def from_settings(cls, settings, store: Store, flow: FlowFile,
                      events: EventLog | None = None, clock: Clock = utc_now) -> Desk:
        appointments = Appointments(store, settings.timezone)
        return cls(LiveBooking(flow, settings.timezone), appointments,
                   CalendarSync.from_settings(settings, appointments, events), clock)

    @property
    def rules(self) -> BookingRules | None:
        """The flow's booking rules now; None: the line takes no bookings."""
        return self.live.now()

    def service(self, said: str) -> Service | None:
        rules = self.rules
        return rules.service(said) if rules else None

    def busy(self, start: dt.datetime, end: dt.datetime) -> list[Interval]:
        """The owner's calendar's busy times in [start, end) (none without a calendar)."""
        return self.calendar.busy(start, end) if self.calendar else []

    def _horizon(self, rules: BookingRules) -> tuple[dt.datetime, dt.datetime]:
        now = self.clock()
        return now, now + dt.timedelta(days=rules.max_days_ahead + 2)

    def free(self, service: Service, first: dt.date, last: dt.date) -> list[dt.datetime]:
        """Every free start of `service` from the local date `first` to `last`."""
        rules = self.rules
        if rules is None:
            return []
        start, end = self._horizon(rules)
        return free_slots(rules, service, first, last, start,
                          self.appointments.held(start, end), self.busy(start, end))

    def check(self, service: Service, start: dt.datetime, but: str = "") -> str:
        """Why `service` cannot be booked at `start` now ("" when it can: the caller is asked
        to confirm it), as slots.why_not says; `but`: an appointment being moved (its own
        place does not count)."""
        rules = self.rules
        if rules is None:
            return "off"
        now, end = self._horizon(rules)
        return why_not(rules, service, start, now, self.appointments.held(now, end, but=but),
                       self.busy(now, end))

    def offer(self, service: Service, after: dt.datetime, n: int = 3) -> list[dt.datetime]:
        """The next `n` free starts from `after` on: what to offer the caller."""
        rules = self.rules
        if rules is None:
            return []
        start, end = self._horizon(rules)
        return list(self.appointments.offers(rules, service, after, start, self.busy(start, end),
                                             n=n))

    def book(self, service: Service, start: dt.datetime, caller: str, name: str = "",
             call_sid: str = "") -> Outcome:
        """Book once the caller confirmed; refused ("taken", "busy", "closed"…, "off": no
        bookings in the flow) with the next free starts to offer."""
        rules = self.rules
        if rules is None:
            return Outcome(None, "off")
        now, end = self._horizon(rules)
        outcome = self.appointments.book(rules, service, start, now, caller, name, call_sid,
                                         self.busy(now, end))
        outcome = self._pushed(outcome)
        self._tell("booked", outcome.appointment, call_sid)
        return outcome

    def move(self, appointment: Appointment, start: dt.datetime,
             service: Service | None = None, call_sid: str = "") -> Outcome:
        """Move the caller's appointment (their old time kept if the new one is refused);
        `call_sid`: the call it is moved in."""
        rules = self.rules
        if rules is None:
            return Outcome(None, "off")
        service = service or rules.service(appointment.service)
        if service is None:
            return Outcome(None, "gone")
        now, end = self._horizon(rules)
        outcome = self.appointments.move(appointment.id, rules, service, start, now,
                                         self.busy(now, end))
        outcome = self._pushed(outcome)
        self._tell("moved", outcome.appointment, call_sid)
        return outcome

    def cancel(self, appointment: Appointment, call_sid: str = "") -> Appointment | None:
        """Cancel it (None: it was not booked any more); the calendar's event deleted.
        `call_sid`: the call it is cancelled in."""
        cancelled = self.appointments.cancel(appointment.id)
        if cancelled and self.calendar:
            self.calendar.push(cancelled)
        self._tell("cancelled", cancelled, call_sid)
        return cancelled

    def of_caller(self, caller: str) -> list[Appointment]:
        """The caller's coming appointments, soonest first."""
        return self.appointments.of_caller(caller, self.clock())

    def sync_pending(self) -> int:
        """Write to the calendar what it missed (the scheduler's timer calls this)."""
        return self.calendar.sync_pending() if self.calendar else 0

    def _pushed(self, outcome: Outcome) -> Outcome:
        if outcome.appointment is not None and self.calendar is not None \
                and self.calendar.push(outcome.appointment):
            return Outcome(self.appointments.get(outcome.appointment.id))
        return outcome
