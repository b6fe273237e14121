"""The inspector's appointments page and a call's bookings, behind the inspector's lock."""

from __future__ import annotations

import pytest

from ..booking.lines import INSPECTOR_TOKEN, SID, Clock, book, booking_line, booking_settings
from ..booking.rules import at

AUTH = {"Authorization": f"Bearer {INSPECTOR_TOKEN}"}


@pytest.fixture
def line(tmp_path, carrier):
    rt = booking_line(booking_settings(tmp_path / "line", carrier.url),
                      Clock(at("2026-03-02", "09:00")))
    yield rt
    rt.close()


def test_the_appointments_page_is_locked(line):
    assert line.client.get("/inspector/appointments").status_code == 401
    assert line.client.get("/inspector/appointments",
                           headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_coming_and_recent_appointments_cancelled_shown_as_such_in_the_line_s_time(line):
    book(line, "2026-03-05", "10:00", caller="+972502222222", call_sid="CA" + "e" * 32)
    line.desk.clock.now = at("2026-03-29", "09:00")
    book(line, "2026-03-31", "10:00")
    line.desk.cancel(book(line, "2026-03-30", "11:00"), call_sid=SID)
    page = line.client.get("/inspector/appointments", headers=AUTH)
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    coming, past = text.split("<h2>Coming</h2>")[1].split("<h2>The last 30 days</h2>")
    assert coming.index("Mon 2026-03-30") < coming.index("Tue 2026-03-31")
    assert "11:00–11:30" in coming and "10:00–10:30" in coming and "cancelled" in coming
    assert coming.count("cancelled") == 2  # the row's class and its status
    assert "Thu 2026-03-05" in past and "+972502222222" in past and "cancelled" not in past
    assert "Times in Asia/Jerusalem." in text


def test_the_call_page_lists_the_bookings_and_cancellations_made_in_it(line):
    line.desk.clock.now = at("2026-03-29", "09:00")
    kept = book(line)
    line.desk.cancel(book(line, "2026-03-30", "11:00"), call_sid=SID)
    text = line.client.get(f"/inspector/calls/{SID}", headers=AUTH).get_data(as_text=True)
    section = text.split("<h2>Bookings in this call</h2>")[1].split("</table>")[0]
    rows = section.split("<tr>")[2:]
    assert [r.split("<td>")[2].split("</td>")[0] for r in rows] == [
        "booked", "booked", "cancelled"]
    assert "2026-03-31 10:00" in rows[0] and "booked, 2026-03-31 10:00" in rows[0]
    assert "cancelled, 2026-03-30 11:00" in rows[2]
    assert kept.call_sid == SID
