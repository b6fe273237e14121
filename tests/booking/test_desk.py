"""The booking desk as the conversation will use it: offers around the owner's own events,
a booking on one worker refused on another, moved and cancelled, the calendar kept in step."""

from __future__ import annotations

import pytest
from caldav.lib.error import NotFoundError

from ivr.booking.desk import Desk
from ivr.config import Settings
from ivr.flow import FlowFile
from ivr.store import Store

from .rules import FLOW, at, clocks

NOW = at("2026-03-29", "09:00")
CALLER = "+972501234567"


@pytest.fixture
def desks(tmp_path, radicale):
    """Two workers' desks on one database and one calendar, at a fixed "now"."""
    (tmp_path / "flow.yaml").write_text(FLOW, encoding="utf-8")
    settings = Settings.from_env({"CALENDAR_URL": radicale.calendar_url,
                                  "CALENDAR_USER": "owner", "CALENDAR_PASSWORD": "secret-1"})
    stores = [Store(f"sqlite:///{tmp_path}/line.sqlite3") for _ in range(2)]
    yield [Desk.from_settings(settings, store, FlowFile(tmp_path / "flow.yaml"),
                              clock=lambda: NOW) for store in stores]
    for store in stores:
        store.close()


def test_a_caller_is_offered_times_around_the_owners_event_books_moves_and_cancels(
        radicale, desks):
    radicale.owner_event(at("2026-03-31", "12:00"), at("2026-03-31", "13:00"), "רופא שיניים")
    first, second = desks
    haircut = first.service("תספורת")
    offers = first.offer(haircut, at("2026-03-31", "11:45"))
    assert clocks(offers) == ["13:00", "13:30", "14:00"]
    booked = first.book(haircut, offers[0], CALLER, name="דני", call_sid="CA1").appointment
    assert booked.synced
    uid = booked.external_uid
    assert radicale.calendar().event_by_uid(uid).icalendar_component.decoded("dtstart") \
        == at("2026-03-31", "13:00")
    lost = second.book(haircut, offers[0], "+972509999999")
    assert lost.refused == "taken" and clocks(lost.offers) == ["13:45", "14:15", "14:45"]
    assert second.book(haircut, at("2026-03-31", "12:15"), "+972509999999").refused == "busy"
    mine = second.of_caller(CALLER)
    assert [a.id for a in mine] == [booked.id]
    moved = second.move(mine[0], at("2026-03-31", "15:00")).appointment
    assert moved.synced and moved.id == booked.id
    assert radicale.calendar().event_by_uid(uid).icalendar_component.decoded("dtstart") \
        == at("2026-03-31", "15:00")
    assert first.cancel(moved).status == "cancelled"
    with pytest.raises(NotFoundError):
        radicale.calendar().event_by_uid(uid)
    assert first.of_caller(CALLER) == [] and first.sync_pending() == 0


def test_a_flow_without_booking_books_nothing(tmp_path):
    (tmp_path / "flow.yaml").write_text("greeting: שלום\n", encoding="utf-8")
    store = Store(f"sqlite:///{tmp_path}/line.sqlite3")
    desk = Desk.from_settings(Settings.from_env({}), store, FlowFile(tmp_path / "flow.yaml"),
                              clock=lambda: NOW)
    assert desk.rules is None and desk.calendar is None and desk.service("תספורת") is None
    store.close()
