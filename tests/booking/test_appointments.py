"""Appointments in the line's database (SQLite and PostgreSQL): the atomic claim, races, moves."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from ivr.booking.appointments import Appointments, identifies
from ivr.schema import appointments as table
from ivr.store import Store

from ..conftest import database_url
from .rules import ZONE, at, clocks, rules

pytestmark = pytest.mark.usefixtures("database")
NOW = at("2026-03-29", "09:00")  # a Sunday
TEN = at("2026-03-31", "10:00")  # the Tuesday after


@pytest.fixture
def stores(tmp_path):
    """Two stores on one database: two workers (or instances) of the line."""
    opened = [Store(database_url(tmp_path)) for _ in range(2)]
    yield opened
    for store in opened:
        store.close()


def desk(store: Store) -> Appointments:
    return Appointments(store, "Asia/Jerusalem")


def test_a_booking_is_kept_in_utc_shown_in_israel_and_found_by_the_callers_number(stores):
    book = rules()
    made = desk(stores[0]).book(book, book.service("תספורת"), TEN, NOW, "+972501234567",
                                name="דני", call_sid="CA1")
    booked = made.appointment
    assert made.refused == "" and booked.status == "booked" and not booked.synced
    assert (booked.start, booked.end) == (TEN, at("2026-03-31", "10:30"))
    assert booked.busy_until == at("2026-03-31", "10:40")  # and the 10 minutes of buffer
    assert booked.start.tzinfo.key == ZONE.key
    with stores[1].engine.connect() as conn:
        row = conn.execute(select(table).where(table.c.id == booked.id)).mappings().one()
    assert row["starts_at"] == TEN.timestamp() and row["call_sid"] == "CA1"
    other = desk(stores[1])
    assert [a.id for a in other.of_caller("+972501234567", NOW)] == [booked.id]
    assert other.of_caller("+972501234567", at("2026-03-31", "10:31")) == []
    assert other.of_caller("+972509999999", NOW) == []


def race(stores, callers: int, book, start):
    """`callers` callers on alternating workers book `start` at the same moment."""
    barrier = threading.Barrier(callers)
    outcomes = [None] * callers

    def call(n: int) -> None:
        appointments = desk(stores[n % len(stores)])
        service = book.service("תספורת")
        barrier.wait()
        outcomes[n] = appointments.book(book, service, start, NOW, f"+97250000000{n}")
    threads = [threading.Thread(target=call, args=(n,)) for n in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_two_callers_on_two_workers_racing_for_one_slot_one_gets_it(stores):
    book = rules()
    outcomes = race(stores, 2, book, TEN)
    won = [o for o in outcomes if o.appointment]
    lost = [o for o in outcomes if not o.appointment]
    assert len(won) == 1 and len(lost) == 1
    assert lost[0].refused == "taken"
    assert clocks(lost[0].offers) == ["10:45", "11:15", "11:45"]
    assert len(desk(stores[0]).booked_between(TEN, at("2026-03-31", "11:00"))) == 1


def test_with_two_places_three_racing_callers_two_get_it_and_no_third_overlaps(stores):
    book = rules(capacity=2)
    outcomes = race(stores, 3, book, TEN)
    won = [o.appointment for o in outcomes if o.appointment]
    assert len(won) == 2 and {a.unit for a in won} == {0, 1}
    assert [o.refused for o in outcomes if not o.appointment] == ["taken"]
    quarter = desk(stores[1]).book(book, book.service("תספורת"), at("2026-03-31", "10:15"),
                                   NOW, "+972500000009")
    assert quarter.refused == "taken"  # overlaps both, though it starts at another time


def test_a_cancelled_booking_frees_its_place(stores):
    book = rules()
    first, second = desk(stores[0]), desk(stores[1])
    haircut = book.service("תספורת")
    booked = first.book(book, haircut, TEN, NOW, "+972501111111").appointment
    assert second.book(book, haircut, TEN, NOW, "+972502222222").refused == "taken"
    cancelled = second.cancel(booked.id)
    assert cancelled.status == "cancelled" and not cancelled.synced
    assert first.cancel(booked.id) is None  # once
    assert second.book(book, haircut, TEN, NOW, "+972502222222").appointment is not None
    assert first.of_caller("+972501111111", NOW) == []


def test_a_move_to_a_taken_time_keeps_the_booking_where_it_was(stores):
    book = rules()
    first, second = desk(stores[0]), desk(stores[1])
    haircut = book.service("תספורת")
    mine = first.book(book, haircut, TEN, NOW, "+972501111111").appointment
    theirs = second.book(book, haircut, at("2026-03-31", "12:00"), NOW, "+972502222222")
    refused = first.move(mine.id, book, haircut, at("2026-03-31", "12:00"), NOW)
    assert refused.appointment is None and refused.refused == "taken"
    kept = first.get(mine.id)
    assert kept.start == TEN and kept.status == "booked"
    assert second.book(book, haircut, TEN, NOW, "+972503333333").refused == "taken"
    moved = first.move(mine.id, book, haircut, at("2026-03-31", "10:15"), NOW).appointment
    assert moved.id == mine.id and moved.start == at("2026-03-31", "10:15") and not moved.synced
    assert second.book(book, haircut, at("2026-03-31", "09:15"), NOW, "+972503333333") \
        .appointment is not None  # the old time, freed (09:15 + 40 ends before 10:15)
    second.cancel(theirs.appointment.id)
    assert first.move(mine.id, book, haircut, at("2026-03-31", "12:00"), NOW).appointment.start \
        == at("2026-03-31", "12:00")


def test_a_time_the_rules_refuse_is_not_booked_and_the_next_open_ones_are_offered(stores):
    book = rules()
    appointments = desk(stores[0])
    haircut = book.service("תספורת")
    shabbat = appointments.book(book, haircut, at("2026-04-04", "10:00"), NOW, "+972501111111")
    assert shabbat.refused == "closed" and shabbat.appointment is None
    assert shabbat.offers[0] == at("2026-04-05", "08:00")  # Sunday morning
    late = appointments.book(book, haircut, at("2026-04-03", "12:45"), NOW, "+972501111111")
    assert late.refused == "hours"  # Friday closes at 13:00
    assert appointments.unsynced() == []


@pytest.mark.parametrize("withheld", ["anonymous", "Restricted", "+266696687", "+7378742833",
                                      "12345", ""])
def test_a_withheld_number_finds_no_appointment_not_even_one_booked_under_it(stores, withheld):
    """Callers who withhold their number share one From: one must never hear, cancel or move
    another's appointment. The booking itself is kept (the owner sees it)."""
    book = rules()
    made = desk(stores[0]).book(book, book.service("תספורת"), TEN, NOW, withheld, name="דני")
    assert made.appointment is not None
    assert desk(stores[1]).of_caller(withheld, NOW) == []
    assert not identifies(withheld) and identifies("+972501234567")
