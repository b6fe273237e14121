"""Booking by phone on the scripted line, end to end through the emulator at a fixed "now":
a haircut booked when free, the nearest times offered when taken (picked by key), Friday
afternoon, Shabbat and a holiday refused with the next open day, and a caller who calls again
cancelling by voice or moving by keys."""

from __future__ import annotations

import datetime as dt

import pytest
import yaml

from ivr.booking.sayings import said_day, said_offers
from ivr.booking.when import spoken_slot
from ivr.engines.fake import FakeASR
from ivr.engines.scripted import DEFAULT_FLOW

from ..conftest import wait_until
from .rules import at

pytestmark = pytest.mark.live  # rings whole calls through the emulator

TEXTS = yaml.safe_load(DEFAULT_FLOW.read_text(encoding="utf-8"))["booking_texts"]
SUNDAY = at("2026-11-01", "09:00")  # an ordinary week: no holiday until December
CALLER, OTHER = "+972529876543", "+972501112233"
REQUEST = "אני רוצה לקבוע תור לתספורת מחר בעשר"


def booking_line(phone_line, now: dt.datetime, asr_texts=(), **changes):
    """The scripted line with the shipped flow (its hours and booking:), its desk's clock at
    `now`; the fake ASR hears `asr_texts` in turn; `changes`: other settings."""
    line = phone_line(asr_engine="fake", llm_engine="scripted", tts_engine="fake",
                      turn_mode="stream", **changes)
    line.runtime.desk.clock = lambda: now
    if asr_texts:
        line.runtime.engines.asr = FakeASR(list(asr_texts))
    return line


def call(line, *steps, caller=CALLER):
    """A call of these steps ({"say": …} or {"dtmf": …}); the line's sentences, once it has
    recorded an answer to each step."""
    result = line.carrier.place_call({"steps": list(steps), "from": caller,
                                      "reply_timeout": 60})
    return wait_until(lambda: (said := [m["text"] for m in line.store.history(result.call_sid)
                                        if m["role"] == "assistant"])
                      and len(said) >= len(steps) and said)


def appointments(line, caller=CALLER):
    return line.runtime.desk.of_caller(caller)


def test_a_haircut_tomorrow_at_ten_is_read_back_confirmed_and_booked(phone_line):
    line = booking_line(phone_line, SUNDAY, [REQUEST, "כן", "דנה כהן"])
    said = call(line, {"say": REQUEST}, {"say": "כן"}, {"say": "דנה כהן"})
    slot = spoken_slot(at("2026-11-02", "10:00"))
    assert slot == "ביום שני, השני בנובמבר, בעשר בבוקר"
    assert said == [TEXTS["confirm"].format(service="תספורת", slot=slot), TEXTS["ask_name"],
                    TEXTS["booked"].format(service="תספורת", slot=slot, name="דנה כהן")]
    (booked,) = appointments(line)
    assert (booked.start, booked.name, booked.service) == (at("2026-11-02", "10:00"),
                                                           "דנה כהן", "תספורת")
    assert booked.call_sid == line.store.list_calls()[0]["call_sid"]


def test_a_taken_time_offers_the_nearest_and_the_caller_picks_one_by_key(phone_line):
    line = booking_line(phone_line, SUNDAY, [REQUEST, "משה לוי"])
    desk = line.runtime.desk
    desk.book(desk.service("תספורת"), at("2026-11-02", "10:00"), OTHER, name="אחר")
    said = call(line, {"say": REQUEST}, {"dtmf": "1"}, {"dtmf": "1"}, {"say": "משה לוי"})
    nearest = [at("2026-11-02", t) for t in ("08:45", "09:15", "10:45")]
    taken = TEXTS["taken"].format(slot=spoken_slot(at("2026-11-02", "10:00")))
    offers = TEXTS["offers"].format(offers=said_offers(nearest), keys="1, 2 או 3")
    assert said[0] == f"{taken} {offers}"
    assert said[1] == TEXTS["confirm"].format(service="תספורת", slot=spoken_slot(nearest[0]))
    assert said[2] == TEXTS["ask_name"]  # the same key again answers the next question
    assert said[3] == TEXTS["booked"].format(service="תספורת", slot=spoken_slot(nearest[0]),
                                             name="משה לוי")
    (booked,) = appointments(line)
    assert booked.start == at("2026-11-02", "08:45")


def test_a_slot_taken_while_the_caller_confirms_is_said_and_the_next_ones_offered(phone_line):
    line = booking_line(phone_line, SUNDAY, [REQUEST, "כן", "דנה כהן"])
    desk, book = line.runtime.desk, line.runtime.desk.book
    calls = []

    def another_caller_first(service, start, **who):  # another worker books it meanwhile
        if not calls:
            calls.append(book(service, start, OTHER, name="אחר"))
        return book(service, start, **who)
    desk.book = another_caller_first
    said = call(line, {"say": REQUEST}, {"say": "כן"}, {"say": "דנה כהן"})
    assert said[-1].startswith(TEXTS["taken_now"] + " ")
    assert said_day(dt.date(2026, 11, 2)) in said[-1]
    assert appointments(line) == [] and len(appointments(line, OTHER)) == 1


@pytest.mark.parametrize(("now", "request_", "why", "next_open"), [
    (SUNDAY, "אני רוצה תור ביום שישי בארבע",
     TEXTS["hours"].format(slot="ביום שישי, השישי בנובמבר, בארבע אחר הצהריים"),
     at("2026-11-08", "08:00")),
    (SUNDAY, "אפשר לקבוע תור בשבת?", TEXTS["closed_shabbat"], at("2026-11-08", "08:00")),
    (at("2026-09-17", "09:00"), "אני רוצה תור ביום שני בעשר",  # Yom Kippur, 21 September
     TEXTS["closed_holiday"].format(day="ביום שני, העשרים ואחד בספטמבר"),
     at("2026-09-22", "08:00")),
], ids=["friday-afternoon", "shabbat", "yom-kippur"])
def test_a_closed_time_is_refused_with_the_next_open_day(phone_line, now, request_, why,
                                                         next_open):
    line = booking_line(phone_line, now, [request_])
    (said,) = call(line, {"say": request_})
    offered = [next_open + dt.timedelta(minutes=m) for m in (0, 30, 60)]
    assert said == f"{why} " + TEXTS["offers"].format(offers=said_offers(offered),
                                                      keys="1, 2 או 3")
    assert appointments(line) == []


def test_a_caller_who_calls_again_hears_their_appointment_and_cancels_it_by_voice(phone_line):
    line = booking_line(phone_line, SUNDAY, ["לגבי התור שלי", "אני רוצה לבטל אותו", "כן בבקשה"])
    desk = line.runtime.desk
    mine = desk.book(desk.service("תספורת"), at("2026-11-04", "10:00"), CALLER,
                     name="דנה").appointment
    said = call(line, {"say": "לגבי התור שלי"}, {"say": "אני רוצה לבטל אותו"},
                {"say": "כן בבקשה"})
    slot = spoken_slot(mine.start)
    assert slot == "ביום רביעי, הרביעי בנובמבר, בעשר בבוקר"
    assert said == [TEXTS["yours"].format(service="תספורת", slot=slot),
                    TEXTS["confirm_cancel"].format(slot=slot),
                    TEXTS["cancelled"].format(slot=slot)]
    assert appointments(line) == []
    assert desk.appointments.get(mine.id).status == "cancelled"


def test_a_caller_who_calls_again_moves_their_appointment_by_keys(phone_line):
    line = booking_line(phone_line, SUNDAY, ["ביום חמישי באחת עשרה"])
    desk = line.runtime.desk
    mine = desk.book(desk.service("תספורת"), at("2026-11-04", "10:00"), CALLER,
                     name="דנה").appointment
    said = call(line, {"dtmf": "4"}, {"dtmf": "2"}, {"say": "ביום חמישי באחת עשרה"},
                {"dtmf": "1"})
    new = spoken_slot(at("2026-11-05", "11:00"))
    assert said == [TEXTS["yours"].format(service="תספורת", slot=spoken_slot(mine.start)),
                    TEXTS["ask_move"], TEXTS["confirm_move"].format(slot=new),
                    TEXTS["moved"].format(slot=new)]
    (moved,) = appointments(line)
    assert (moved.id, moved.start) == (mine.id, at("2026-11-05", "11:00"))


def test_in_gather_mode_twilio_hears_the_request_and_a_key_confirms(phone_line):
    """The embedded defaults (no ASR engine: Twilio's <Gather> recognises the speech)."""
    line = phone_line(local=True)
    assert line.runtime.settings.turn_mode == "gather"
    line.runtime.desk.clock = lambda: SUNDAY
    said = call(line, {"say": REQUEST}, {"dtmf": "1"}, {"say": "דנה כהן"})
    slot = spoken_slot(at("2026-11-02", "10:00"))
    assert said == [TEXTS["confirm"].format(service="תספורת", slot=slot), TEXTS["ask_name"],
                    TEXTS["booked"].format(service="תספורת", slot=slot, name="דנה כהן")]
    (booked,) = appointments(line)
    assert (booked.start, booked.name) == (at("2026-11-02", "10:00"), "דנה כהן")
