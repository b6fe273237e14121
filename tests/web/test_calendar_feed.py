"""/calendar/<token>.ics: the owner's phone subscribes to the appointments; nobody else does."""

from __future__ import annotations

import icalendar
import pytest

from ivr.asgi import lane_of
from ivr.booking.feed import event_uid

from ..booking.lines import FEED_TOKEN, Clock, book, booking_line, booking_settings
from ..booking.rules import at


@pytest.fixture
def line(tmp_path, carrier):
    built = []

    def build(**changes):
        rt = booking_line(booking_settings(tmp_path / f"line{len(built)}", carrier.url,
                                           **changes), Clock(at("2026-02-15", "09:00")))
        built.append(rt)
        return rt
    yield build
    for rt in built:
        rt.close()


def test_the_feed_has_the_last_30_days_and_every_coming_appointment(line):
    rt = line()
    book(rt, "2026-02-17", "10:00")  # six weeks before "now": left out
    rt.desk.clock.now = at("2026-03-02", "09:00")
    recent = book(rt, "2026-03-05", "10:00", caller="+972502222222")
    rt.desk.clock.now = at("2026-03-29", "09:00")
    coming = book(rt, "2026-03-31", "10:00")
    rt.desk.cancel(book(rt, "2026-03-30", "11:00"))  # cancelled: dropped from the phone
    response = rt.client.get(f"/calendar/{FEED_TOKEN}.ics")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/calendar; charset=utf-8"
    events = icalendar.Calendar.from_ical(response.data).walk("VEVENT")
    assert [str(e["uid"]) for e in events] == [event_uid(recent.id), event_uid(coming.id)]
    assert events[1].decoded("dtstart") == at("2026-03-31", "10:00")
    assert events[1]["dtstart"].params["TZID"] == "Asia/Jerusalem"
    assert str(events[1]["summary"]) == "תספורת – דני"


def test_a_wrong_or_unset_token_is_a_plain_404(line):
    rt, off = line(), line(calendar_feed_token="")
    wrong = rt.client.get("/calendar/feed-token-0123456788.ics")
    unset = off.client.get(f"/calendar/{FEED_TOKEN}.ics")
    nothing = rt.client.get("/calendar/nothing-here")
    assert wrong.status_code == unset.status_code == 404
    assert wrong.data == unset.data == nothing.data  # no hint which it was
    assert lane_of({"method": "GET", "path": f"/calendar/{FEED_TOKEN}.ics"}) == "other"
