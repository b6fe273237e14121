"""What a booking tells: the caller's SMS (booked, moved, cancelled) through the emulator's
Messages resource, once each, and the owner's notice as for a message left."""

from __future__ import annotations

import pytest

from ivr.booking.notices import caller_sms

from ..conftest import wait_until
from .lines import CALLER, LINE, OWNER, SID, Clock, book, booking_line, booking_settings
from .rules import at


@pytest.fixture
def line(tmp_path, carrier):
    rt = booking_line(booking_settings(tmp_path / "line", carrier.url, notify_sms_to=OWNER),
                      Clock())
    yield rt
    rt.close()


def sent_to(carrier, number: str) -> list[str]:
    return [m["body"] for m in carrier.messages if m["to"] == number]


def all_sent(rt) -> bool:
    rows = rt.notifier.queue.of_call(SID)
    return bool(rows) and all(r["status"] == "sent" for r in rows)


def test_the_caller_gets_one_sms_with_the_time_the_business_and_how_to_cancel(line, carrier):
    appointment = book(line)
    wait_until(lambda: all_sent(line) and len(line.notifier.queue.of_call(SID)) == 2)
    assert sent_to(carrier, CALLER) == [
        "נקבע לך תור לתספורת ביום שלישי 31.3 בשעה 10:00 במספרת דני. "
        "לביטול או לשינוי התקשרו אלינו 03-333-3333."]
    assert [m["from"] for m in carrier.messages] == [LINE, LINE]
    owner = sent_to(carrier, OWNER)
    assert len(owner) == 1 and owner[0].startswith(
        "תור חדש: תספורת ביום שלישי 31.3 בשעה 10:00\nדני +972501234567\n")
    assert owner[0].endswith("/inspector/appointments")
    kinds = [e["kind"] for e in line.store.events(SID)]
    assert "APPOINTMENT_BOOKED" in kinds
    # the same change told again (a listener run twice, another worker): nothing more is sent
    line.desk._tell("booked", appointment, SID)
    wait_until(lambda: all_sent(line))
    assert len(carrier.messages) == 2


def test_a_move_and_a_cancellation_each_send_their_sms(line, carrier):
    appointment = book(line)
    moved = line.desk.move(appointment, at("2026-03-30", "12:30"), call_sid=SID).appointment
    line.desk.cancel(moved, call_sid=SID)
    wait_until(lambda: all_sent(line) and len(line.notifier.queue.of_call(SID)) == 6)
    assert sent_to(carrier, CALLER) == [
        "נקבע לך תור לתספורת ביום שלישי 31.3 בשעה 10:00 במספרת דני. "
        "לביטול או לשינוי התקשרו אלינו 03-333-3333.",
        "התור שלך לתספורת במספרת דני הועבר ליום שני 30.3 בשעה 12:30. "
        "לביטול או לשינוי התקשרו אלינו 03-333-3333.",
        "התור שלך לתספורת ביום שני 30.3 בשעה 12:30 במספרת דני בוטל. "
        "לתור חדש התקשרו אלינו 03-333-3333."]
    assert [b.split("\n")[0] for b in sent_to(carrier, OWNER)] == [
        "תור חדש: תספורת ביום שלישי 31.3 בשעה 10:00", "תור הוזז: תספורת ביום שני 30.3 בשעה 12:30",
        "תור בוטל: תספורת ביום שני 30.3 בשעה 12:30"]


def test_without_a_sender_number_the_caller_gets_no_sms_and_the_log_says_why(tmp_path, carrier):
    rt = booking_line(booking_settings(tmp_path / "line", carrier.url, notify_sms_from=""),
                      Clock())
    try:
        book(rt)
        off = [e for e in rt.store.events(SID) if e["kind"] == "BOOKING_SMS_OFF"]
        assert off and off[0]["detail"]["reason"] == "NOTIFY_SMS_FROM is not set"
        assert rt.notifier.queue.of_call(SID) == [] and carrier.messages == []
    finally:
        rt.close()


def test_the_sms_reads_without_a_business_name_or_a_known_number(line):
    appointment = book(line)
    assert caller_sms("reminder", appointment) == (
        "תזכורת: יש לך תור לתספורת ביום שלישי 31.3 בשעה 10:00. לביטול או לשינוי התקשרו אלינו.")


def test_the_owner_s_e_mail_says_what_for_whom_and_when(tmp_path, carrier, smtp):
    rt = booking_line(booking_settings(tmp_path / "line", carrier.url, smtp_url=smtp.url(),
                                       notify_email_to="owner@example.com"), Clock())
    try:
        book(rt)
        wait_until(lambda: smtp.inbox.messages)
        mail = smtp.inbox.messages[0]
        assert mail["Subject"] == "תור חדש: תספורת ביום שלישי 31.3 בשעה 10:00 (דני, +972501234567)"
        body = mail.get_content()
        assert "שם: דני" in body and "טלפון: +972501234567" in body
        assert "/inspector/appointments" in body
    finally:
        rt.close()
