"""The daily digest of new questions the line could not answer, on SQLite and PostgreSQL: by a
real SMTP server and the emulator's SMS at INBOX_DIGEST_HOUR, once a day however many instances
sweep, nothing on a day with nothing new, nothing armed without notifications."""

from __future__ import annotations

import datetime as dt
import threading
import zoneinfo

import pytest

from ivr.app import create_app
from ivr.notify.digest import SWEEP_JOB, Digest

from ..conftest import make_settings, wait_until

pytestmark = pytest.mark.usefixtures("database")

CALL_A, CALL_B = "CA" + "a" * 32, "CA" + "b" * 32
OWNER_SMS = "+972509999999"
ZONE = zoneinfo.ZoneInfo("Asia/Jerusalem")


@pytest.fixture
def instances(tmp_path, smtp, carrier):
    """`instances(n)`: n apps on one database (instances of the line), notifications by e-mail
    and SMS, each digest on one clock the test moves (`clock[0]`), swept only by the test."""
    built, clock = [], [0.0]

    def build(n: int = 1, **changes) -> list:
        settings = make_settings(tmp_path, smtp_url=smtp.url(), notify_email_to="owner@example.com",
                                 twilio_api_base_url=carrier.url, notify_sms_to=OWNER_SMS,
                                 notify_sms_from="+97233333333", notify_retry_sec=0.05,
                                 **changes)
        for _ in range(n):
            rt = create_app(settings).extensions["ivr"]
            rt.scheduler.remove_job(SWEEP_JOB)
            rt.digest.clock = lambda: clock[0]
            built.append(rt)
        return built[-n:]
    build.clock = clock
    yield build
    for rt in built:
        rt.close()


def asked_then(rt, group: int, at: float) -> None:
    """The group's askings dated `at` on the test's clock (the inbox writes the real time)."""
    from sqlalchemy import update

    from ivr.schema import gaps
    with rt.store.writing() as conn:
        conn.execute(update(gaps).where(gaps.c.group_id == group).values(created_at=at))


def sweep_at_once(runtimes) -> int:
    """Every instance sweeps at the same moment: how many ran the digest."""
    gate, ran = threading.Barrier(len(runtimes)), []

    def sweep(rt) -> None:
        gate.wait()
        ran.append(rt.digest.sweep())
    workers = [threading.Thread(target=sweep, args=(rt,)) for rt in runtimes]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(ran)


def test_the_days_new_questions_are_sent_once_by_email_and_sms(instances, smtp, carrier):
    one, two = instances(2)
    armed = one.digest.armed()
    due = dt.datetime.fromtimestamp(armed["due_at"], ZONE)
    assert (due.hour, due.minute) == (19, 0) and armed == two.digest.armed()
    one.inbox.record(CALL_A, "אתם עושים החלקה יפנית?", "not understood")
    two.inbox.record(CALL_B, "יש אצלכם החלקה יפנית?", "not understood")
    one.inbox.record(CALL_B, "יש לכם וויפיי?", "not understood")
    instances.clock[0] = armed["due_at"] - 1
    assert sweep_at_once([one, two]) == 0  # not yet
    instances.clock[0] = armed["due_at"] + 1
    assert sweep_at_once([one, two]) == 1  # one instance ran it
    mail = wait_until(lambda: smtp.inbox.messages)[0]
    assert mail["Subject"] == "2 שאלות חדשות שהקו לא ידע לענות עליהן"
    body = mail.get_body().get_content().replace("\r\n", "\n")
    assert "• אתם עושים החלקה יפנית? (2 שיחות)\n  גם: יש אצלכם החלקה יפנית?\n" in body
    assert "• יש לכם וויפיי? (שיחה אחת)" in body
    assert body.endswith("https://line.example.com/inspector/inbox\n")
    sms = wait_until(lambda: carrier.messages)[0]
    assert sms["to"] == OWNER_SMS and sms["body"] == (
        "2 שאלות חדשות שהקו לא ידע לענות עליהן:\n• אתם עושים החלקה יפנית? (2 שיחות)\n"
        "• יש לכם וויפיי? (שיחה אחת)\nhttps://line.example.com/inspector/inbox")
    tomorrow = one.digest.armed()
    assert tomorrow["due_at"] - armed["due_at"] == pytest.approx(86400, abs=3600)

    instances.clock[0] = tomorrow["due_at"] + 1  # a day with nothing new: nothing sent
    assert sweep_at_once([one, two]) == 1
    assert one.digest.armed()["due_at"] > tomorrow["due_at"]
    asked_then(one, one.inbox.record(CALL_A, "יש לכם מזגן?", "not understood"),
               instances.clock[0] + 60)  # asked after that day's run
    instances.clock[0] = one.digest.armed()["due_at"] + 1
    assert sweep_at_once([one, two]) == 1
    wait_until(lambda: len(smtp.inbox.messages) == 2 and len(carrier.messages) == 2)
    assert smtp.inbox.messages[1]["Subject"] == "שאלה חדשה שהקו לא ידע לענות עליה"
    assert "• יש לכם מזגן? (שיחה אחת)" in smtp.inbox.messages[1].get_body().get_content()
    assert len(smtp.inbox.messages) == 2 and len(carrier.messages) == 2


def test_an_answered_question_is_not_in_the_digest(instances, smtp):
    (rt,) = instances(1)
    group = rt.inbox.record(CALL_A, "יש לכם וויפיי?", "not understood")
    rt.inbox.answer(group, "כן, הסיסמה על הקיר.")
    instances.clock[0] = rt.digest.armed()["due_at"] + 1
    assert rt.digest.sweep() == 1
    assert rt.notifier.queue.of_call("") == [] and smtp.inbox.messages == []


def test_the_hour_is_a_setting_and_nothing_is_armed_without_notifications(instances,
                                                                         tmp_path):
    (rt,) = instances(1, inbox_digest_hour=7)
    due = dt.datetime.fromtimestamp(rt.digest.armed()["due_at"], ZONE)
    assert (due.hour, due.minute, rt.digest.armed()["hour"]) == (7, 0, 7)
    quiet = create_app(make_settings(tmp_path)).extensions["ivr"]  # no NOTIFY_*: no digest
    try:
        assert quiet.digest.armed() is None
    finally:
        quiet.close()


def test_the_next_digest_is_at_the_hour_in_the_time_zone_across_daylight_saving():
    from types import SimpleNamespace
    settings = SimpleNamespace(timezone="Asia/Jerusalem", inbox_digest_hour=19)
    digest = Digest.__new__(Digest)
    digest.s = settings
    before_dst = dt.datetime(2026, 3, 26, 20, 0, tzinfo=ZONE).timestamp()  # DST begins 27.3
    after = dt.datetime.fromtimestamp(digest.next_at(before_dst), ZONE)
    assert (after.date(), after.hour, after.utcoffset()) == (
        dt.date(2026, 3, 27), 19, dt.timedelta(hours=3))
