"""The owner's calendar brought up to date by the line's timer: a booking made while the CalDAV
server was down reaches it once it is back."""

from __future__ import annotations

import datetime as dt

from caldav.lib.error import NotFoundError

from ivr.app import CALENDAR_SYNC_JOB

from ..conftest import wait_until
from .lines import Clock, book, booking_line, booking_settings


def in_calendar(radicale, uid: str) -> bool:
    try:
        radicale.calendar().event_by_uid(uid)
    except NotFoundError:
        return False
    return True


def test_a_booking_made_while_the_calendar_was_down_reaches_it_when_it_is_back(
        tmp_path, carrier, radicale):
    rt = booking_line(booking_settings(tmp_path / "line", carrier.url,
                                       calendar_url=radicale.calendar_url,
                                       calendar_user="owner", calendar_password="secret-1",
                                       calendar_timeout_sec=2.0), Clock())
    try:
        job = rt.scheduler.get_job(CALENDAR_SYNC_JOB)
        assert job.trigger.interval == dt.timedelta(minutes=1) and job.misfire_grace_time
        radicale.stop()
        appointment = book(rt)
        assert not rt.desk.appointments.get(appointment.id).synced
        radicale.start()
        assert not in_calendar(radicale, appointment.id + "@ivr-booking")
        job.modify(next_run_time=dt.datetime.now(dt.UTC))  # the minute is up
        wait_until(lambda: rt.desk.appointments.get(appointment.id).synced)
        assert in_calendar(radicale, appointment.id + "@ivr-booking")
    finally:
        rt.close()
