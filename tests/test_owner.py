"""Business hours and holidays from the flow, in the owner's time zone; who the line reaches."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from ivr.config import Settings
from ivr.engines.scripted import DEFAULT_FLOW
from ivr.owner import BusinessHours, HoursError, Owner

JERUSALEM = ZoneInfo("Asia/Jerusalem")
WEEK = {"sun": "08:00-18:00", "mon": "08:00-12:00, 16:00-19:00", "fri": "08:00-13:00",
        "sat": "closed", "thu": "20:00-24:00"}


def at(day: str, clock: str) -> dt.datetime:
    """A moment in Jerusalem: `day` is a date (2026-11-22 was a Sunday)."""
    return dt.datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=JERUSALEM)


def test_open_inside_a_span_of_the_day_and_closed_outside_it():
    hours = BusinessHours.from_flow({"hours": WEEK}, "Asia/Jerusalem")
    assert hours.is_open(at("2026-11-22", "08:00"))  # Sunday opens at 8
    assert not hours.is_open(at("2026-11-22", "07:59"))
    assert not hours.is_open(at("2026-11-22", "18:00"))  # closes at 18:00 sharp
    assert hours.is_open(at("2026-11-23", "11:59")) and hours.is_open(at("2026-11-23", "16:30"))
    assert not hours.is_open(at("2026-11-23", "13:00"))  # Monday's lunch break
    assert not hours.is_open(at("2026-11-24", "10:00"))  # Tuesday is not listed: closed
    assert hours.is_open(at("2026-11-26", "23:59"))  # Thursday until midnight
    assert not hours.is_open(at("2026-11-28", "10:00"))  # Saturday "closed"


def test_the_hours_are_the_owners_local_time_whatever_the_clock_of_the_server():
    hours = BusinessHours.from_flow({"hours": WEEK}, "Asia/Jerusalem")
    utc = dt.datetime(2026, 11, 22, 6, 30, tzinfo=dt.UTC)  # 08:30 in Jerusalem (winter, +2)
    assert hours.is_open(utc)
    summer = dt.datetime(2026, 7, 5, 5, 30, tzinfo=dt.UTC)  # a Sunday, 08:30 (summer, +3)
    assert hours.is_open(summer)
    assert not BusinessHours.from_flow({"hours": WEEK}, "America/New_York").is_open(utc)


def test_a_span_over_midnight_runs_into_the_next_morning():
    hours = BusinessHours.from_flow({"hours": {"fri": "20:00-02:00", "sat": "21:00-23:00"}},
                                    "Asia/Jerusalem")
    assert not hours.is_open(at("2026-11-27", "19:59"))  # Friday, before it opens
    assert hours.is_open(at("2026-11-27", "23:30"))
    assert hours.is_open(at("2026-11-28", "01:59"))  # Saturday night: still Friday's span
    assert not hours.is_open(at("2026-11-28", "02:00"))  # closes at 2 sharp
    assert hours.is_open(at("2026-11-28", "22:00")) and not hours.is_open(at("2026-11-29", "01:00"))
    assert hours.spoken() == "ביום שישי 20:00-2:00, וביום שבת 21:00-23:00"


def test_the_hours_are_said_as_the_owner_wrote_them_in_words():
    from ivr.speakable import speakable
    week = BusinessHours.from_flow({"hours": WEEK}, "Asia/Jerusalem")
    assert week.spoken() == ("ביום ראשון 8:00-18:00, ביום שני 8:00-12:00 וגם 16:00-19:00, "
                             "ביום חמישי 20:00-0:00, וביום שישי 8:00-13:00")
    default = Owner.from_settings(Settings(), DEFAULT_FLOW).hours.spoken()
    assert default == "בימים ראשון עד חמישי 8:00-18:00, וביום שישי 8:00-13:00"
    assert speakable(default) == ("בימים ראשון עד חמישי שמונה בבוקר עד שש בערב, וביום שישי "
                                  "שמונה בבוקר עד אחת אחר הצהריים")
    assert BusinessHours().spoken() == "בכל יום, בכל שעה"


def test_a_holiday_is_closed_all_day_and_no_hours_at_all_means_any_time():
    hours = BusinessHours.from_flow({"hours": WEEK, "holidays": ["2026-11-22"]}, "Asia/Jerusalem")
    assert not hours.is_open(at("2026-11-22", "10:00"))
    assert hours.is_open(at("2026-11-29", "10:00"))
    always = BusinessHours.from_flow({}, "Asia/Jerusalem")
    assert always.is_open(at("2026-11-28", "03:00"))
    assert not BusinessHours.from_flow({"holidays": [dt.date(2026, 11, 28)]},
                                       "Asia/Jerusalem").is_open(at("2026-11-28", "03:00"))


@pytest.mark.parametrize("flow, says", [
    ({"hours": {"sunday": "08:00-18:00"}}, "unknown day(s) sunday"),
    ({"hours": {"sun": "8-18"}}, "'8' is not a time like 08:00"),
    ({"hours": {"sun": "08:00"}}, "not a range like 08:00-18:00"),
    ({"hours": {"sun": "08:00-08:00"}}, "opens and closes at the same time; for the whole day"),
    ({"hours": {"sun": "08:00-25:00"}}, "is not a time of day"),
    ({"hours": "always"}, "one line per day"),
    ({"holidays": ["next friday"]}, "expected dates like 2026-12-25"),
])
def test_a_wrong_entry_is_named_with_what_is_expected(flow, says):
    with pytest.raises(HoursError, match=says.replace("(", r"\(").replace(")", r"\)")):
        BusinessHours.from_flow(flow, "Asia/Jerusalem")


def test_the_owner_is_reachable_with_a_phone_in_business_hours_only(tmp_path):
    settings = Settings(owner_phone="+972501234567", owner_ring_first=True,
                        owner_dial_timeout_sec=25)
    owner = Owner.from_settings(settings, DEFAULT_FLOW)
    assert (owner.phone, owner.ring_first, owner.dial_timeout) == ("+972501234567", True, 25)
    assert owner.take_message == "בשמחה, אשאיר הודעה לצוות. מה השם שלך?"  # the flow's
    assert owner.transferring == "מעביר אותך לבעל העסק, רק רגע."
    assert owner.reachable(at("2026-11-22", "10:00"))  # Sunday morning
    assert not owner.reachable(at("2026-11-27", "14:00"))  # Friday afternoon
    assert not owner.reachable(at("2026-11-28", "10:00"))  # Saturday
    assert not Owner.from_settings(Settings(), DEFAULT_FLOW).reachable(at("2026-11-22", "10:00"))
    bad = tmp_path / "flow.yaml"
    bad.write_text('greeting: "שלום"\nhours:\n  mon: closed\n  sun: "9-5"\n', encoding="utf-8")
    with pytest.raises(HoursError, match=f"^{bad}:4: hours.sun: '9' is not a time like 08:00$"):
        Owner.from_settings(settings, bad)
