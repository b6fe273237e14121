"""The appointments as an iCalendar feed the owner's phone subscribes to, behind a secret token."""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Iterable

from icalendar import Calendar, Event

from .appointments import CANCELLED, Appointment

UID_DOMAIN = "ivr-booking"  # an appointment's UID: "<id>@ivr-booking", in the feed and CalDAV
PRODID = "-//ivr//Hebrew phone line bookings//HE"


def event_uid(appointment_id: str) -> str:
    """The appointment's UID wherever it is published (the same in the feed and in CalDAV)."""
    return f"{appointment_id}@{UID_DOMAIN}"


def is_ours(uid: str) -> bool:
    """The UID names an appointment this line booked (not an event the owner added)."""
    return str(uid).endswith("@" + UID_DOMAIN)


def summary(appointment: Appointment) -> str:
    """The event's title in Hebrew: the service and who booked it."""
    who = appointment.name or appointment.caller or "לקוח"
    return f"{appointment.service or 'תור'} – {who}"


def event(appointment: Appointment) -> Event:
    """The appointment as a VEVENT: stable UID, times with their TZID (TIMEZONE), the caller's
    number in the description; a cancelled one says STATUS:CANCELLED."""
    item = Event()
    item.add("uid", event_uid(appointment.id))
    item.add("dtstamp", dt.datetime.fromtimestamp(appointment.updated_at, dt.UTC))
    item.add("created", dt.datetime.fromtimestamp(appointment.created_at, dt.UTC))
    item.add("last-modified", dt.datetime.fromtimestamp(appointment.updated_at, dt.UTC))
    item.add("sequence", int(appointment.updated_at - appointment.created_at))
    item.add("dtstart", appointment.start)
    item.add("dtend", appointment.end)
    item.add("summary", summary(appointment))
    lines = [f"שירות: {appointment.service}", f"שם: {appointment.name or '-'}",
             f"טלפון: {appointment.caller or '-'}"]
    item.add("description", "\n".join(lines))
    if appointment.caller:
        item.add("contact", appointment.caller)
    item.add("status", "CANCELLED" if appointment.status == CANCELLED else "CONFIRMED")
    return item


def calendar(events: Iterable[Event], name: str = "תורים") -> Calendar:
    """A VCALENDAR of `events`, with the VTIMEZONE of every TZID they use."""
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("x-wr-calname", name)
    for item in events:
        cal.add_component(item)
    cal.add_missing_timezones()
    return cal


def feed(appointments: Iterable[Appointment], name: str = "תורים") -> bytes:
    """The feed's body (text/calendar): every booked appointment as an event; cancelled ones
    are left out, so a subscribed phone drops them on its next refresh."""
    return calendar((event(a) for a in appointments if a.status != CANCELLED), name).to_ical()


def token_ok(given: str | None, expected: str) -> bool:
    """The feed's secret token matches (compared in constant time); no token set: never."""
    return bool(expected) and bool(given) and hmac.compare_digest(
        str(given).encode(), expected.encode())
