"""The booking tools as the LLM calls them, run by code against a desk on SQLite at a fixed
"now": the caller's words resolved by when.resolve, free times said in words with signed slot
ids that any worker reads back, a taken time answered with the next ones, a caller's own
appointments only."""

from __future__ import annotations

import json

import pytest

from ivr.booking.appointments import Appointments
from ivr.booking.desk import Desk
from ivr.booking.services import LiveBooking
from ivr.booking.tools import BookingTools
from ivr.flow import FlowFile
from ivr.store import Store

from .rules import FLOW, at, clocks

NOW = at("2026-03-29", "09:00")  # a Sunday morning
CALLER, OTHER = "+972501234567", "+972509999999"
KEY = b"the line's signing key"


@pytest.fixture
def desks(tmp_path):
    """Two workers' desks on one SQLite database, at NOW."""
    (tmp_path / "flow.yaml").write_text(FLOW, encoding="utf-8")
    stores = [Store(f"sqlite:///{tmp_path}/line.sqlite3") for _ in range(2)]
    yield [Desk(LiveBooking(FlowFile(tmp_path / "flow.yaml"), "Asia/Jerusalem"),
                Appointments(store, "Asia/Jerusalem"), clock=lambda: NOW) for store in stores]
    for store in stores:
        store.close()


def call(tools: BookingTools, tool: str, **args) -> dict:
    return json.loads(tools.run(tool, json.dumps(args, ensure_ascii=False)))


def test_the_callers_words_become_a_free_time_in_words_and_a_booking(desks):
    first, second = desks
    tools = BookingTools(first, "CA1", CALLER, KEY)
    found = call(tools, "find_free_times", service="תספורת", when_words="מחר בעשר")
    (slot,) = found["slots"]
    assert slot["said"] == "ביום שני, השלושים במרץ, בעשר בבוקר"
    assert "2026" not in json.dumps(found) and "10:00" not in json.dumps(found)  # words only
    # the next turn lands on another worker: the id is read back there, nothing stored
    booked = call(BookingTools(second, "CA1", CALLER, KEY), "book", slot_id=slot["slot_id"],
                  name="דני")
    assert booked["booked"] is True and booked["said"] == slot["said"]
    (row,) = second.of_caller(CALLER)
    assert (row.name, row.caller, row.call_sid, row.service) == ("דני", CALLER, "CA1", "תספורת")
    assert row.start == at("2026-03-30", "10:00")


def test_a_taken_time_is_answered_with_the_next_free_ones(desks):
    first, second = desks
    first.book(first.service("תספורת"), at("2026-03-30", "10:00"), OTHER)
    found = call(BookingTools(second, "CA2", CALLER, KEY), "find_free_times",
                 service="תספורת", when_words="מחר בעשר")
    assert found["not_free"] == "השעה כבר תפוסה"
    assert [s["said"] for s in found["slots"]] == [
        "ביום שני, השלושים במרץ, ברבע לאחת עשרה בבוקר",
        "ביום שני, השלושים במרץ, באחת עשרה ורבע בבוקר",
        "ביום שני, השלושים במרץ, ברבע לשתים עשרה בבוקר"]


def test_a_time_taken_between_the_offer_and_the_yes_is_refused_with_the_next(desks):
    first, second = desks
    mine = BookingTools(first, "CA3", CALLER, KEY)
    (slot,) = call(mine, "find_free_times", service="תספורת", when_words="מחר בעשר")["slots"]
    second.book(second.service("תספורת"), at("2026-03-30", "10:00"), OTHER)  # another caller
    refused = call(mine, "book", slot_id=slot["slot_id"], name="דני")
    assert refused["booked"] is False and refused["why"] == "השעה כבר תפוסה"
    assert refused["slots"][0]["said"] == "ביום שני, השלושים במרץ, ברבע לאחת עשרה בבוקר"
    assert call(mine, "book", slot_id=refused["slots"][0]["slot_id"], name="")["booked"]
    assert clocks(a.start for a in first.of_caller(CALLER)) == ["10:45"]


def test_words_the_resolver_cannot_settle_come_back_as_its_question(desks):
    tools = BookingTools(desks[0], "CA4", CALLER, KEY)
    asked = call(tools, "find_free_times", service="תספורת", when_words="ביום ראשון")
    assert asked == {"ask": asked["ask"]} and "?" in asked["ask"]  # today, or next week?
    assert call(tools, "find_free_times", service="תספורת", when_words="בעשר") == {
        "ask": "לאיזה יום לקבוע?"}
    unknown = call(tools, "find_free_times", service="פדיקור", when_words="מחר")
    assert "תספורת" in unknown["error"] and "צבע" in unknown["error"]


def test_shabbat_is_refused_with_the_next_open_day(desks):
    found = call(BookingTools(desks[0], "CA5", CALLER, KEY), "find_free_times",
                 service="תספורת", when_words="בשבת בבוקר")
    assert found["not_free"] == "העסק סגור ביום הזה"
    assert found["slots"][0]["said"] == "ביום ראשון, החמישי באפריל, בשמונה בבוקר"


def test_a_slot_id_of_another_call_or_made_up_is_refused(desks):
    first = desks[0]
    (slot,) = call(BookingTools(first, "CA6", CALLER, KEY), "find_free_times",
                   service="צבע", when_words="מחר בשתיים")["slots"]
    for tools, token in ((BookingTools(first, "CA7", CALLER, KEY), slot["slot_id"]),
                         (BookingTools(first, "CA6", CALLER, KEY), slot["slot_id"][:-1] + "0"),
                         (BookingTools(first, "CA6", CALLER, b"another key"), slot["slot_id"])):
        assert "unknown slot_id" in call(tools, "book", slot_id=token, name="")["error"]
    assert first.of_caller(CALLER) == []


def test_a_caller_finds_moves_and_cancels_only_their_own(desks):
    first, second = desks
    theirs = first.book(first.service("תספורת"), at("2026-03-31", "12:00"), OTHER).appointment
    mine = BookingTools(first, "CA8", CALLER, KEY)
    (slot,) = call(mine, "find_free_times", service="תספורת", when_words="מחר בעשר")["slots"]
    call(mine, "book", slot_id=slot["slot_id"], name="דני")
    again = BookingTools(second, "CA9", CALLER, KEY)  # the caller calls again
    (appointment,) = call(again, "my_appointments")["appointments"]
    assert appointment["said"] == slot["said"] and appointment["service"] == "תספורת"
    assert "not one of this caller" in call(again, "cancel",
                                            appointment_id=theirs.id)["error"]
    (later,) = call(again, "find_free_times", service="תספורת",
                    when_words="ביום רביעי באחת עשרה")["slots"]
    moved = call(again, "move", appointment_id=appointment["appointment_id"],
                 slot_id=later["slot_id"])
    assert moved["moved"] is True and moved["said"] == later["said"]
    assert call(again, "cancel", appointment_id=appointment["appointment_id"])["cancelled"]
    assert first.of_caller(CALLER) == [] and len(first.of_caller(OTHER)) == 1


def test_a_call_the_model_gets_wrong_is_told_not_raised(desks):
    tools = BookingTools(desks[0], "CA10", CALLER, KEY)
    assert "error" in json.loads(tools.run("book", "{not json"))
    assert "error" in json.loads(tools.run("drop_table", "{}"))
    assert "error" in json.loads(tools.run("book", '{"slot": "x"}'))
