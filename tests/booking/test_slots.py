"""Free slots: the hours, a short Friday, Shabbat, a holiday and its eve, DST, capacity, buffers."""

from __future__ import annotations

import datetime as dt

from ivr.booking.slots import free_slots, next_free, why_not

from .rules import ZONE, at, clocks, rules

NOW = at("2026-03-22", "09:00")  # a Sunday, before everything the tests ask about
TUESDAY = dt.date(2026, 3, 31)


def day_slots(book, day: dt.date, service: str = "תספורת", now=NOW, taken=(), busy=()):
    return free_slots(book, book.service(service), day, day, now, taken, busy)


def test_a_weekday_offers_every_quarter_hour_whose_service_ends_by_closing():
    book = rules()
    slots = day_slots(book, TUESDAY)
    assert clocks(slots)[:3] == ["08:00", "08:15", "08:30"]
    assert clocks(slots)[-1] == "17:30"  # 30 minutes: the last one ends at 18:00
    assert len(slots) == 39
    assert clocks(day_slots(book, TUESDAY, "צבע"))[-1] == "17:00"
    assert all(s.tzinfo is not None and s.astimezone(ZONE).date() == TUESDAY for s in slots)


def test_friday_is_short_and_shabbat_is_closed():
    book = rules()
    friday, saturday = dt.date(2026, 4, 10), dt.date(2026, 4, 11)
    assert clocks(day_slots(book, friday))[-1] == "12:30"
    assert day_slots(book, saturday) == []
    assert book.closed_because(saturday) == "shabbat"
    assert why_not(book, book.service("תספורת"), at("2026-04-11", "10:00"), NOW) == "closed"
    monday = book.service("תספורת")
    assert next_free(book, monday, at("2026-04-10", "12:45"), NOW, n=1) == [
        at("2026-04-12", "08:00")]  # Friday's last start passed: Sunday morning


def test_a_holiday_is_closed_and_its_eve_short_like_a_friday_from_the_calendar_library():
    book = rules()
    eve, pesach = dt.date(2026, 4, 1), dt.date(2026, 4, 2)  # a Wednesday and a Thursday
    assert clocks(day_slots(book, eve))[-1] == "12:30"
    assert day_slots(book, pesach) == []
    assert book.closed_because(pesach) == "pesach"
    assert why_not(book, book.service("תספורת"), at("2026-04-01", "15:00"), NOW) == "hours"
    kippur = dt.date(2026, 9, 21)  # a Monday
    assert day_slots(book, kippur, now=at("2026-09-01", "09:00")) == []


def test_the_flow_overrides_the_holidays_and_the_eves():
    eve, pesach = dt.date(2026, 4, 1), dt.date(2026, 4, 2)
    assert clocks(day_slots(rules(eve_hours="09:00-11:00"), eve))[-1] == "10:30"
    assert clocks(day_slots(rules(closed_on_jewish_holidays=False), pesach))[-1] == "17:30"
    assert clocks(day_slots(rules(closed_on_jewish_holidays=False), eve))[-1] == "17:30"
    assert clocks(day_slots(rules(open_on=["2026-04-02"]), pesach))[-1] == "17:30"
    book = rules()
    closed = book.__class__.from_flow(
        {"hours": {"tue": "08:00-18:00"}, "holidays": ["2026-03-31"],
         "booking": {"services": [{"name": "תספורת", "minutes": 30}]}}, "Asia/Jerusalem")
    assert day_slots(closed, TUESDAY) == [] and closed.closed_because(TUESDAY) == "holiday"


def test_the_day_daylight_saving_starts_keeps_wall_clock_hours_and_skips_the_lost_hour():
    book = rules()
    friday = dt.date(2026, 3, 27)  # Israel moves its clocks forward at 02:00 that night
    first = day_slots(book, friday)[0]
    assert clocks([first]) == ["08:00"]
    assert first.astimezone(dt.UTC).hour == 5  # UTC+3 from that night
    assert day_slots(book, dt.date(2026, 3, 26))[0].astimezone(dt.UTC).hour == 6  # UTC+2
    night = rules(hours={"thu": "00:00-04:00", "fri": "00:00-04:00"}, slot_step_minutes=60)
    colour = "צבע"  # 60 minutes
    assert clocks(day_slots(night, dt.date(2026, 3, 26), colour)) == [
        "00:00", "01:00", "02:00", "03:00"]
    assert clocks(day_slots(night, friday, colour)) == ["00:00", "01:00", "03:00"]
    lengths = {(s + dt.timedelta(hours=1)) - s for s in day_slots(night, friday, colour)}
    assert lengths == {dt.timedelta(hours=1)}


def test_two_places_take_two_at_once_and_refuse_a_third():
    book = rules(capacity=2)
    haircut = book.service("תספורת")
    ten = at("2026-03-31", "10:00")
    one = [(ten, ten + haircut.occupies, 0)]
    two = one + [(ten, ten + haircut.occupies, 1)]
    assert ten in day_slots(book, TUESDAY, taken=one)
    assert ten not in day_slots(book, TUESDAY, taken=two)
    assert why_not(book, haircut, ten, NOW, two) == "taken"
    assert at("2026-03-31", "10:45") in day_slots(book, TUESDAY, taken=two)


def test_a_buffer_keeps_the_place_after_each_appointment():
    book = rules()
    haircut = book.service("תספורת")  # 30 minutes and 10 of buffer
    ten = at("2026-03-31", "10:00")
    taken = [(ten, ten + haircut.occupies, 0)]
    slots = clocks(day_slots(book, TUESDAY, taken=taken))
    assert "09:15" in slots and "10:45" in slots  # 09:15 + 40 ends before 10:00
    assert not {"09:30", "09:45", "10:00", "10:15", "10:30"} & set(slots)


def test_min_notice_max_days_ahead_and_the_owners_busy_times():
    book = rules()
    haircut = book.service("תספורת")
    now = at("2026-03-31", "10:07")
    assert clocks(day_slots(book, TUESDAY, now=now))[0] == "11:15"
    assert why_not(book, haircut, at("2026-03-31", "11:00"), now) == "notice"
    assert why_not(book, haircut, at("2026-05-01", "10:00"), now) == "too_far"
    assert free_slots(book, haircut, dt.date(2026, 5, 1), dt.date(2026, 5, 3), now) == []
    busy = [(at("2026-03-31", "12:00"), at("2026-03-31", "13:00"))]
    slots = clocks(day_slots(book, TUESDAY, now=now, busy=busy))
    assert "11:15" in slots and "11:30" not in slots and "13:00" in slots
    assert why_not(book, haircut, at("2026-03-31", "12:30"), now, busy=busy) == "busy"


def test_next_free_offers_three_apart_from_the_asked_time():
    book = rules()
    haircut = book.service("תספורת")
    ten = at("2026-03-31", "10:00")
    taken = [(ten, ten + haircut.occupies, 0)]
    assert clocks(next_free(book, haircut, ten, NOW, taken)) == ["10:45", "11:15", "11:45"]
    assert len(next_free(book, haircut, ten, NOW, taken, n=2)) == 2
