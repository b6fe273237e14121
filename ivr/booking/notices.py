"""What follows a booking: the caller's SMS (booked, moved, cancelled, the reminder) and the
owner's notice, as rows of the owner's notifications outbox (ivr/notify/), in Hebrew."""

from __future__ import annotations

import logging
import re

import phonenumbers

from .. import twiml
from ..config import Settings
from ..eventlog import EventLog
from ..flow import FlowFile
from ..notify.notifier import Notifier
from ..notify.send import describe
from ..notify.texts import one_line, short
from ..store import Store
from .appointments import Appointment, identifies
from .when import WEEKDAYS

PHONE = re.compile(r"\+\d{8,15}")  # a number an SMS can reach (not "anonymous")
OWNER_HEADS = {"booked": "תור חדש", "moved": "תור הוזז", "cancelled": "תור בוטל"}
NAME_CHARS = 30


def slot_text(appointment: Appointment) -> str:
    """The appointment's day and time as an SMS writes them: "יום שלישי 31.3 בשעה 10:00"
    (digits read at a glance; the voice says them in words)."""
    start = appointment.start
    return (f"יום {WEEKDAYS[(start.weekday() + 1) % 7]} {start.day}.{start.month} "
            f"בשעה {start:%H:%M}")


def caller_sms(kind: str, appointment: Appointment, business: str = "",
               number: str = "") -> str:
    """The caller's SMS ("booked", "moved", "cancelled", "reminder"): the service, the day and
    time, the business, and how to cancel or move it (call back: `number`, the line they
    called, when known)."""
    service = f"ל{appointment.service}" if appointment.service else ""
    at = f" ב{business}" if business else ""
    when = slot_text(appointment)
    first = {"booked": f"נקבע לך תור {service} ב{when}{at}.",
             "moved": f"התור שלך {service}{at} הועבר ל{when}.",
             "cancelled": f"התור שלך {service} ב{when}{at} בוטל.",
             "reminder": f"תזכורת: יש לך תור {service} ב{when}{at}."}[kind]
    then = "לתור חדש" if kind == "cancelled" else "לביטול או לשינוי"
    return " ".join(f"{first} {then} התקשרו אלינו{f' {number}' if number else ''}.".split())


def owner_texts(kind: str, appointment: Appointment, link: str) -> tuple[str, str, str]:
    """The owner's notice (subject, e-mail body, SMS): what, for whom, when, and the link."""
    who = short(one_line(appointment.name), NAME_CHARS) or "מתקשר"
    what = f"{OWNER_HEADS[kind]}: {appointment.service or 'תור'} ב{slot_text(appointment)}"
    title = f"{what} ({who}, {appointment.caller or 'מספר חסוי'})"
    body = "\n".join([f"{what}.", "", f"שם: {one_line(appointment.name) or '—'}",
                      f"טלפון: {appointment.caller or 'חסוי'}",
                      f"שירות: {appointment.service or '—'}", "",
                      f"התורים ביומן: {link}"]) + "\n"
    sms = f"{what}\n{who} {appointment.caller}\n{link}"
    return title, body, sms


class BookingNotices:
    """Queues what a booking change tells: the caller's SMS (from NOTIFY_SMS_FROM) and the
    owner's notice on their channels (NOTIFY_SMS_TO, NOTIFY_EMAIL_TO), as outbox rows the
    Notifier sends, retried under a lease. A row's id names the appointment and its change
    (its `updated_at`), so the same change queued twice, by any process, is sent once.
    `changed` is a Desk listener: it never raises into the conversation."""

    def __init__(self, settings: Settings, store: Store, events: EventLog, notifier: Notifier,
                 flow: FlowFile):
        self.s, self.store, self.events, self.notifier, self.flow = (
            settings, store, events, notifier, flow)

    def changed(self, kind: str, appointment: Appointment, call_sid: str = "") -> None:
        """A booking, move or cancellation (made in `call_sid`): logged, then its SMS and the
        owner's notice queued."""
        self.events.emit(f"APPOINTMENT_{kind.upper()}", call_sid or None,
                         appointment=appointment.id, service=appointment.service,
                         start=appointment.start.isoformat(), caller=appointment.caller)
        try:
            change = f"{appointment.id}:{kind}:{appointment.updated_at:.6f}"
            self.to_caller(change, kind, appointment, call_sid)
            link = twiml.abs_url(self.s.public_base_url, "/inspector/appointments")
            title, body, sms = owner_texts(kind, appointment, link)
            for channel, target in self.notifier.channels():
                self._queue(f"{change}:owner:{channel}", call_sid, channel, target,
                            *((title, body) if channel == "email" else ("", sms)))
        except Exception as exc:  # noqa: BLE001 - the booking stands; the log says why
            self.events.emit("BOOKING_NOTICE_ERR", call_sid or None, logging.WARNING,
                             appointment=appointment.id, err=describe(exc))

    def remind(self, appointment: Appointment) -> bool:
        """Queue the reminder SMS of `appointment` at its time (once: a second call adds
        nothing); whether it was queued now."""
        key = f"{appointment.id}:reminder:{appointment.start.timestamp():.0f}"
        return self.to_caller(key, "reminder", appointment, appointment.call_sid)

    def to_caller(self, key: str, kind: str, appointment: Appointment, call_sid: str) -> bool:
        if not identifies(appointment.caller or ""):
            return False  # a withheld number: nowhere to send it
        if not self.s.notify_sms_from:
            self.events.emit("BOOKING_SMS_OFF", call_sid or None, logging.WARNING,
                             appointment=appointment.id, kind=kind,
                             reason="NOTIFY_SMS_FROM is not set")
            return False
        body = caller_sms(kind, appointment, self.business(), self.line_number(call_sid))
        return self._queue(f"{key}:caller:sms", call_sid, "sms", appointment.caller, "", body)

    def _queue(self, row_id: str, call_sid: str, channel: str, target: str, title: str,
               body: str) -> bool:
        added = self.notifier.queue.add(row_id, call_sid, channel, target, title, body)
        if added:
            self.notifier.kick(channel)
        return added is not None

    def business(self) -> str:
        """The business's name as the flow file gives it (`business_name:`), or ""."""
        return one_line(str(self.flow.current().get("business_name") or ""))

    def line_number(self, call_sid: str) -> str:
        """The number the caller dialled (to call back), when the call is known."""
        call = self.store.get_call(call_sid) if call_sid else None
        number = (call or {}).get("to_number") or ""
        if not PHONE.fullmatch(number):
            return ""
        try:  # as the caller dials it at home: 03-333-3333
            parsed = phonenumbers.parse(number, None)
            return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
        except phonenumbers.NumberParseException:
            return number
