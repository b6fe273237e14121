"""A line that takes bookings, for the tests of what follows one: the shipped flow (a barber's
haircut) with a business name, the emulator's carrier for SMS, and a clock the test sets (the
desk's "now", which the reminders use too)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from ivr.app import create_app
from ivr.engines.scripted import DEFAULT_FLOW
from ivr.notify.notifier import SWEEP_JOB

from ..conftest import make_settings
from .rules import at

NOW = at("2026-03-29", "09:00")  # a Sunday morning
CALLER = "+972501234567"
LINE = "+97233333333"  # the number the caller dialled, and the SMS's sender
OWNER = "+972509999999"
SID = "CA" + "b" * 32
FEED_TOKEN = "feed-token-0123456789"
INSPECTOR_TOKEN = "inspector-token-0123"


class Clock:
    """A "now" the test moves by hand."""

    def __init__(self, now: dt.datetime = NOW):
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def booking_settings(folder: Path, carrier_url: str, **changes):
    """Settings of a line with the barber's booking flow, sending SMS to `carrier_url`."""
    folder.mkdir(parents=True, exist_ok=True)
    flow = DEFAULT_FLOW.read_text(encoding="utf-8").replace(
        'business_name: ""', 'business_name: "מספרת דני"')
    (folder / "flow.yaml").write_text(flow, encoding="utf-8")
    return make_settings(folder, **{
        "flow_file": str(folder / "flow.yaml"), "notify_sms_from": LINE,
        "twilio_api_base_url": carrier_url, "calendar_feed_token": FEED_TOKEN,
        "inspector_token": INSPECTOR_TOKEN, "notify_retry_sec": 0.05, **changes})


def booking_line(settings, clock: Clock, sweep_sec: float = 0.05):
    """The app on `settings`, its desk on `clock`, its notifier and reminders swept every
    `sweep_sec`; the runtime, with `client` its test client."""
    app = create_app(settings)
    rt = app.extensions["ivr"]
    rt.desk.clock = clock  # before any sweep can run on the real clock
    rt.notifier.sweep_sec = rt.reminders.sweep_sec = sweep_sec
    rt.notifier.start(rt.scheduler)
    rt.reminders.start(rt.scheduler)
    rt.client = app.test_client()
    assert rt.scheduler.get_job(SWEEP_JOB) is not None
    return rt


def book(rt, day: str = "2026-03-31", clock: str = "10:00", caller: str = CALLER,
         call_sid: str = SID):
    """A haircut booked as the conversation books it (the call's row first)."""
    rt.store.ensure_call(call_sid, from_number=caller, to_number=LINE)
    outcome = rt.desk.book(rt.desk.service("תספורת"), at(day, clock), caller, name="דני",
                           call_sid=call_sid)
    assert outcome.appointment is not None, outcome
    return outcome.appointment
