"""Whole booking calls through the emulator on the scripted line at a fixed "now": a haircut
booked with the owner's CalDAV calendar (a real Radicale) connected and the feed on, seen in
both as the owner's phone sees them; two callers on two instances of the line racing for one
time, one booked and the other told and offered the next times."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import icalendar
import requests

from ivr.booking.sayings import said_offers
from ivr.booking.when import spoken_slot

from .rules import at
from .test_conversation_line import CALLER, OTHER, REQUEST, SUNDAY, TEXTS, booking_line, call

FEED_TOKEN = "feed-token-0123456789abcdef"
TEN = at("2026-11-02", "10:00")  # "מחר בעשר" on SUNDAY


def test_a_booked_haircut_is_in_the_owners_calendar_and_in_the_lines_feed(phone_line,
                                                                          radicale):
    line = booking_line(phone_line, SUNDAY, [REQUEST, "כן", "דנה כהן"],
                        calendar_url=radicale.calendar_url, calendar_user="owner",
                        calendar_password="app-password-123", calendar_feed_token=FEED_TOKEN)
    said = call(line, {"say": REQUEST}, {"say": "כן"}, {"say": "דנה כהן"})
    assert said[-1] == TEXTS["booked"].format(service="תספורת", slot=spoken_slot(TEN),
                                              name="דנה כהן")
    zone = line.runtime.settings.timezone

    (seen,) = [e.icalendar_component for e in radicale.calendar().events()]  # the owner's phone
    assert str(seen["summary"]) == "תספורת – דנה כהן"
    assert (seen.decoded("dtstart"), seen.decoded("dtend")) == (TEN, at("2026-11-02", "10:30"))
    assert seen["dtstart"].params["TZID"] == zone

    response = requests.get(f"{line.url}/calendar/{FEED_TOKEN}.ics", timeout=30)
    assert response.status_code == 200
    (published,) = icalendar.Calendar.from_ical(response.content).walk("VEVENT")
    assert published.decoded("dtstart") == TEN
    assert published["dtstart"].params["TZID"] == zone
    assert str(published["summary"]) == "תספורת – דנה כהן"
    assert str(published["uid"]) == str(seen["uid"])  # one appointment, one event
    assert line.runtime.desk.appointments.unsynced() == []


def test_two_callers_on_two_instances_race_for_one_time_and_one_gets_it(phone_line, tmp_path,
                                                                        database):
    """Both callers confirm tomorrow at ten and say their names on two instances of the line
    on one database, which reach the booking together (a barrier): one is booked; the other
    hears it was just taken, is offered the next times and books the first by key and "כן".
    (The one booked, asked if anything else, keys 1 for the hours and is not understood.)"""
    names = {CALLER: "דנה כהן", OTHER: "משה לוי"}
    together = threading.Barrier(2, timeout=120)  # a bound no loaded machine reaches
    lines, first = {}, set()
    for n, caller in enumerate((CALLER, OTHER)):
        (tmp_path / f"tts{n}").mkdir()
        line = lines[caller] = booking_line(
            phone_line, SUNDAY, [REQUEST, "כן", names[caller], "כן"],
            tts_dir=str(tmp_path / f"tts{n}"), var_dir=str(tmp_path / f"var{n}"))

        def book_together(*args, book=line.runtime.desk.book, line_no=n, **kwargs):
            if line_no not in first:  # this line's first booking waits for the other line's
                first.add(line_no)
                together.wait()
            return book(*args, **kwargs)
        line.runtime.desk.book = book_together
    assert lines[CALLER].runtime.store is not lines[OTHER].runtime.store

    def ring(caller):
        return call(lines[caller], {"say": REQUEST}, {"say": "כן"}, {"say": names[caller]},
                    {"dtmf": "1"}, {"say": "כן"}, caller=caller)
    with ThreadPoolExecutor(2) as pool:
        said = dict(zip(lines, pool.map(ring, lines), strict=True))

    def booked(caller, start):
        return TEXTS["booked"].format(service="תספורת", slot=spoken_slot(start),
                                      name=names[caller])
    (winner,) = [c for c in lines if said[c][2] == booked(c, TEN)]
    (loser,) = set(lines) - {winner}
    nearest = [at("2026-11-02", t) for t in ("10:45", "11:15", "11:45")]
    assert said[loser][2:] == [
        TEXTS["taken_now"] + " " + TEXTS["offers"].format(offers=said_offers(nearest),
                                                          keys="1, 2 או 3"),
        TEXTS["confirm"].format(service="תספורת", slot=spoken_slot(nearest[0])),
        booked(loser, nearest[0])]
    for line in lines.values():  # each instance sees both, on the one database
        assert [a.start for a in line.runtime.desk.of_caller(winner)] == [TEN]
        assert [a.start for a in line.runtime.desk.of_caller(loser)] == [nearest[0]]
