"""The appointments feed, parsed back with icalendar; its token compared in constant time."""

from __future__ import annotations

import datetime as dt

import pytest
from icalendar import Calendar

from ivr.booking.appointments import Appointments
from ivr.booking.feed import feed, token_ok
from ivr.store import Store

from .rules import at, rules

NOW = at("2026-03-29", "09:00")


@pytest.fixture
def booked(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/feed.sqlite3")
    appointments = Appointments(store, "Asia/Jerusalem")
    book = rules()
    haircut = book.service("תספורת")
    kept = appointments.book(book, haircut, at("2026-03-31", "10:00"), NOW, "+972501234567",
                             name="דני").appointment
    gone = appointments.book(book, haircut, at("2026-03-31", "11:00"), NOW, "+972509876543",
                             name="רותי").appointment
    appointments.cancel(gone.id)
    yield appointments, kept, gone
    store.close()


def test_the_feed_has_each_booking_as_an_event_in_israel_time_and_drops_the_cancelled(booked):
    appointments, kept, gone = booked
    body = feed(appointments.since(NOW))
    parsed = Calendar.from_ical(body)
    events = list(parsed.walk("VEVENT"))
    assert [str(e["uid"]) for e in events] == [f"{kept.id}@ivr-booking"]
    only = events[0]
    assert only.decoded("dtstart") == at("2026-03-31", "10:00")
    assert only.decoded("dtend") == at("2026-03-31", "10:30")
    assert only["dtstart"].params["TZID"] == "Asia/Jerusalem"
    assert only.decoded("dtstart").astimezone(dt.UTC).hour == 7  # 10:00 in summer time
    assert str(only["summary"]) == "תספורת – דני"
    assert "+972501234567" in str(only["description"])
    assert str(only["status"]) == "CONFIRMED"
    assert [str(z["tzid"]) for z in parsed.walk("VTIMEZONE")] == ["Asia/Jerusalem"]
    assert feed(appointments.since(NOW)).count(b"BEGIN:VEVENT") == 1
    again = Calendar.from_ical(feed(appointments.since(NOW)))
    assert [str(e["uid"]) for e in again.walk("VEVENT")] == [str(only["uid"])]  # stable


def test_the_feed_token_must_match_and_no_token_opens_nothing():
    assert token_ok("s3cret-feed-token", "s3cret-feed-token")
    assert not token_ok("s3cret-feed-tokeN", "s3cret-feed-token")
    assert not token_ok("", "s3cret-feed-token")
    assert not token_ok(None, "s3cret-feed-token")
    assert not token_ok("", "")
    assert not token_ok("anything", "")
