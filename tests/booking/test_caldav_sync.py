"""The owner's calendar over CalDAV, against a real Radicale: bookings written and deleted, the
owner's own events blocking their times, a calendar that is down caught up with later."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from caldav.lib.error import NotFoundError

from ivr.booking.appointments import Appointments
from ivr.booking.caldav_sync import CalendarSync
from ivr.booking.slots import free_slots
from ivr.config import Settings
from ivr.store import Store

from .rules import at, clocks, rules

NOW = at("2026-03-29", "09:00")
TUESDAY = dt.date(2026, 3, 31)


@pytest.fixture
def appointments(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/line.sqlite3")
    yield Appointments(store, "Asia/Jerusalem")
    store.close()


@pytest.fixture
def sync(radicale, appointments):
    settings = Settings.from_env({"CALENDAR_URL": radicale.calendar_url,
                                  "CALENDAR_USER": "owner",
                                  "CALENDAR_PASSWORD": "app-password-123"})
    return CalendarSync.from_settings(settings, appointments)


def book(appointments, clock: str, caller: str = "+972501234567", busy=()):
    booking = rules()
    return appointments.book(booking, booking.service("תספורת"), at("2026-03-31", clock), NOW,
                             caller, name="דני", busy=busy)


def test_a_booking_appears_in_the_calendar_and_its_cancellation_removes_it(radicale,
                                                                          appointments, sync):
    booked = book(appointments, "10:00").appointment
    assert sync.push(booked)
    synced = appointments.get(booked.id)
    assert synced.synced and synced.external_uid == f"{booked.id}@ivr-booking"
    seen = radicale.calendar().event_by_uid(synced.external_uid).icalendar_component
    assert str(seen["summary"]) == "תספורת – דני"
    assert seen.decoded("dtstart") == at("2026-03-31", "10:00")
    assert seen.decoded("dtend") == at("2026-03-31", "10:30")
    appointments.cancel(booked.id)
    assert sync.sync_pending() == 1
    with pytest.raises(NotFoundError):
        radicale.calendar().event_by_uid(synced.external_uid)
    assert appointments.unsynced() == [] and sync.sync_pending() == 0


def test_an_event_the_owner_added_blocks_its_time_and_the_lines_own_bookings_do_not(
        radicale, appointments, sync):
    radicale.owner_event(at("2026-03-31", "12:00"), at("2026-03-31", "13:00"), "רופא שיניים",
                         uid="dentist@owner-phone")
    assert sync.push(book(appointments, "10:00").appointment)
    day = (at("2026-03-31"), at("2026-04-01"))
    busy = sync.busy(*day)
    assert busy == [(at("2026-03-31", "12:00"), at("2026-03-31", "13:00"))]
    booking = rules()
    slots = clocks(free_slots(booking, booking.service("תספורת"), TUESDAY, TUESDAY, NOW,
                              appointments.held(*day), busy))
    assert "11:15" in slots and "13:00" in slots
    assert not {"10:00", "11:30", "12:00", "12:45"} & set(slots)
    refused = book(appointments, "12:00", caller="+972509999999", busy=busy)
    assert refused.refused == "busy" and refused.appointment is None


def test_a_calendar_that_is_down_keeps_the_booking_local_and_gets_it_once_back(
        radicale, appointments, sync, caplog):
    radicale.owner_event(at("2026-03-31", "12:00"), at("2026-03-31", "13:00"), "פגישה")
    day = (at("2026-03-31"), at("2026-04-01"))
    known = sync.busy(*day)
    sync.fresh_sec = 0  # every question reads the calendar again
    radicale.stop()
    booked = book(appointments, "10:00", busy=known).appointment
    with caplog.at_level(logging.WARNING, logger="ivr"):
        assert not sync.push(booked)
        assert sync.busy(*day) == known  # the owner's meeting still blocks its hour
    kept = appointments.get(booked.id)
    assert kept.status == "booked" and not kept.synced and kept.external_uid == ""
    assert "CALENDAR_SYNC_ERR" in caplog.text and "CALENDAR_READ_ERR" in caplog.text
    assert "app-password-123" not in caplog.text
    radicale.start()
    assert sync.sync_pending() == 1
    assert appointments.get(booked.id).synced
    uid = f"{booked.id}@ivr-booking"
    assert str(radicale.calendar().event_by_uid(uid).icalendar_component["uid"]) == uid


def test_the_calendar_settings_keep_their_secrets_and_refuse_a_url_that_is_not_http():
    from ivr.config import ConfigError
    settings = Settings.from_env({"CALENDAR_URL": "https://me:url-pass-9@dav.example.com/cal/",
                                  "CALENDAR_PASSWORD": "app-password-123",
                                  "CALENDAR_FEED_TOKEN": "feed-token-456"})
    assert {"app-password-123", "feed-token-456", "url-pass-9"} <= set(settings.secrets())
    assert "app-password-123" not in repr(settings)
    with pytest.raises(ConfigError, match="CALENDAR_URL: expected"):
        Settings.from_env({"CALENDAR_URL": "webcal://dav.example.com/cal/"})


def test_the_caldav_client_leaves_the_pinned_urllib3_in_place():
    """caldav from 2.1 brings niquests, whose urllib3-future wheel replaces urllib3 for every
    program of the venv: the pinned caldav runs on requests, and urllib3 is the one pinned."""
    from pathlib import Path

    import caldav  # noqa: F401 - imported first, as the line imports it
    import urllib3
    pins = (Path(__file__).resolve().parents[2] / "requirements.txt").read_text()
    assert f"urllib3=={urllib3.__version__}" in pins
