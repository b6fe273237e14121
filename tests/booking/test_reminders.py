"""The reminder SMS REMINDER_HOURS before an appointment: once, across workers and a kill -9;
re-armed by a move, retired by a cancellation, never sent for a time already begun."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys

import pytest

from ivr.booking.reminders import timer_id

from ..conftest import database_url, wait_until
from ..livehelpers import ROOT
from .lines import CALLER, NOW, SID, Clock, book, booking_line, booking_settings
from .rules import at

pytestmark = pytest.mark.usefixtures("database")
LATER = dt.timedelta(seconds=30)
REMINDER = ("תזכורת: יש לך תור לתספורת ביום שלישי 31.3 בשעה 10:00 במספרת דני. "
            "לביטול או לשינוי התקשרו אלינו 03-333-3333.")


@pytest.fixture
def lines(tmp_path, carrier):
    """`lines(n)`: n workers of one line on the test's database, each on its own clock."""
    built = []

    def build(clock: Clock):
        rt = booking_line(booking_settings(tmp_path / f"line{len(built)}", carrier.url,
                                           database_url=database_url(tmp_path)), clock)
        built.append(rt)
        return rt
    yield build
    for rt in built:
        rt.close()


def to_caller(carrier, caller: str = CALLER) -> list[str]:
    return [m["body"] for m in carrier.messages if m["to"] == caller]


def settled(rt) -> bool:
    """Every outbox row sent and no reminder armed or running."""
    rows = rt.notifier.queue.of_call(SID)
    return all(r["status"] == "sent" for r in rows) and not rt.reminders.pending()


def test_the_reminder_goes_once_at_its_time_from_whichever_worker_sweeps_first(lines, carrier):
    clocks = [Clock(), Clock()]
    here, there = lines(clocks[0]), lines(clocks[1])
    appointment = book(here)
    wait_until(lambda: len(to_caller(carrier)) == 1)  # the confirmation
    assert here.reminders.pending() == [timer_id(appointment.id)]
    due = at("2026-03-30", "10:00")  # 24 hours before
    for clock in clocks:
        clock.now = due - LATER
    assert here.reminders.sweep() == 0 and there.reminders.sweep() == 0  # not yet
    for clock in clocks:
        clock.now = due + LATER
    wait_until(lambda: len(to_caller(carrier)) == 2 and settled(here))
    assert to_caller(carrier)[1] == REMINDER
    assert here.reminders.sweep() == 0 and there.reminders.sweep() == 0
    assert len(carrier.messages) == 2
    queued = [e for e in here.store.events(SID) if e["kind"] == "REMINDER_QUEUED"]
    assert len(queued) == 1


def test_a_move_re_arms_the_reminder_and_a_cancellation_retires_it(lines, carrier):
    clock = Clock()
    rt = lines(clock)
    kept = book(rt)
    other = book(rt, "2026-03-31", "14:00", caller="+972507777777", call_sid="CA" + "c" * 32)
    moved = rt.desk.move(kept, at("2026-03-30", "16:00"), call_sid=SID).appointment
    rt.desk.cancel(other)
    assert rt.reminders.pending() == [timer_id(kept.id)]
    clock.now = at("2026-03-29", "16:00") + LATER  # the moved time's reminder is due
    wait_until(lambda: settled(rt) and len(to_caller(carrier)) == 3)
    assert to_caller(carrier)[2].startswith(
        "תזכורת: יש לך תור לתספורת ביום שני 30.3 בשעה 16:00")
    clock.now = at("2026-03-30", "10:00") + LATER  # the old time's and the cancelled one's
    assert rt.reminders.sweep() == 0
    assert not [m for m in to_caller(carrier, "+972507777777") if "תזכורת" in m]
    assert moved.id == kept.id


def test_no_reminder_for_a_time_begun_nor_when_the_booking_is_near_or_reminders_off(
        lines, carrier):
    clock = Clock()
    rt = lines(clock)
    book(rt)
    rt.settings = rt.reminders.s = rt.settings.replace(reminder_hours=0)
    book(rt, "2026-04-05", "10:00")  # REMINDER_HOURS=0: none
    rt.reminders.s = rt.settings.replace(reminder_hours=24)
    book(rt, "2026-03-29", "15:00")  # within 24 hours: the confirmation is enough
    assert len(rt.reminders.pending()) == 1
    clock.now = at("2026-03-31", "10:05")  # every sweeper was down until it had begun
    assert rt.reminders.sweep() == 1
    wait_until(lambda: settled(rt) and len(to_caller(carrier)) == 3)
    assert not [m for m in to_caller(carrier) if "תזכורת" in m]


@pytest.mark.live  # starts processes
def test_after_a_kill_9_between_booking_and_reminder_the_reminder_goes_once(
        lines, carrier, tmp_path):
    clock = Clock()
    here = lines(clock)  # another worker of the line, on the same database
    command = [sys.executable, "-m", "tests.booking.worker", database_url(tmp_path),
               carrier.url]
    booker = subprocess.Popen([*command, str(tmp_path / "booker"), NOW.isoformat()],
                              cwd=ROOT, text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    due = at("2026-03-30", "10:00") + LATER
    try:
        assert booker.stdout.readline().strip() == "ready"
        booker.stdin.write(json.dumps({"book": "2026-03-31T10:00"}) + "\n")
        booker.stdin.flush()
        appointment_id = booker.stdout.readline().strip()
        wait_until(lambda: [r["status"] for r in here.notifier.queue.of_call(SID)] == ["sent"])
        os.kill(booker.pid, signal.SIGKILL)  # between the booking and its reminder
        booker.wait(30)
    finally:
        booker.kill()
    assert here.reminders.pending() == [timer_id(appointment_id)]
    sweeper = subprocess.Popen([*command, str(tmp_path / "sweeper"), due.isoformat()],
                               cwd=ROOT, text=True, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE)
    try:
        assert sweeper.stdout.readline().strip() == "ready"
        clock.now = due  # this worker sweeps too
        wait_until(lambda: len(to_caller(carrier)) == 2 and settled(here))
        assert here.reminders.sweep() == 0
    finally:
        sweeper.kill()
        sweeper.wait(30)
    assert to_caller(carrier) == [to_caller(carrier)[0], REMINDER]
    assert len(carrier.messages) == 2


def test_a_reminder_whose_arming_died_with_its_process_is_armed_at_the_next_start(lines):
    clock = Clock()
    rt = lines(clock)
    appointment = book(rt)
    near = book(rt, "2026-03-29", "15:00", caller="+972507777777")  # no reminder: too near
    rt.reminders.timers.drop(timer_id(appointment.id))  # killed before the arming landed
    assert rt.reminders.pending() == []
    assert rt.reminders.recover() == 1
    assert rt.reminders.pending() == [timer_id(appointment.id)] and near.id != appointment.id
    assert rt.reminders.recover() == 0
