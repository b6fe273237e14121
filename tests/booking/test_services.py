"""What can be booked: the flow's `booking:` read, its mistakes named by line, edits used."""

from __future__ import annotations

import os

import pytest

from ivr.booking.services import LiveBooking, check_booking
from ivr.flow import DEFAULT_FLOW, FlowFile, FlowFileError, read_flow

from .rules import FLOW


def flow_file(tmp_path, text: str) -> FlowFile:
    path = tmp_path / "flow.yaml"
    path.write_text(text, encoding="utf-8")
    return FlowFile(path)


def line_of(text: str, words: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if words in line)


@pytest.mark.parametrize("edit, entry, says", [
    (("minutes: 30", "minutes: half an hour"), "minutes: half", "not a whole number"),
    (("capacity: 1", "capacity: 0"), "capacity: 0", "from 1 to 100"),
    (("slot_step_minutes: 15", "slot_step_minutes: 7"), "slot_step_minutes", "steps of 5"),
    (("      buffer: 10\n", "      buffer: 10\n      colour: red\n"), "- name: תספורת",
     "unknown entry colour"),
    (("  capacity: 1", "  capacity: 1\n  eve_hours: \"9-13\""), "eve_hours", "not a time"),
])
def test_a_booking_mistake_is_one_sentence_naming_the_file_and_its_line(tmp_path, edit, entry,
                                                                        says):
    text = FLOW.replace(*edit)
    flow = flow_file(tmp_path, text)
    with pytest.raises(FlowFileError) as info:
        flow.add_check(check_booking)
    message = str(info.value)
    assert message.startswith(f"{flow.path}:{line_of(text, entry)}: booking.")
    assert says in message and "\n" not in message


def test_booking_needs_opening_hours(tmp_path):
    flow = flow_file(tmp_path, FLOW[FLOW.index("booking:"):])
    with pytest.raises(FlowFileError, match="needs the opening hours"):
        flow.add_check(check_booking)


def test_an_edit_is_used_and_a_broken_one_keeps_the_rules_before_it(tmp_path):
    flow = flow_file(tmp_path, FLOW)
    live = LiveBooking(flow, "Asia/Jerusalem")
    assert live.now().service("תספורת").minutes == 30
    stat = os.stat(flow.path)
    flow.path.write_text(FLOW.replace("minutes: 30", "minutes: 45"), encoding="utf-8")
    os.utime(flow.path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert live.now().service("תספורת").minutes == 45
    flow.path.write_text(FLOW.replace("minutes: 30", "minutes: -5"), encoding="utf-8")
    os.utime(flow.path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2 * 10**9))
    assert live.now().service("תספורת").minutes == 45
    assert "booking.services.0.minutes" in flow.problem


def test_the_shipped_flow_books_a_haircut():
    rules = LiveBooking(FlowFile(DEFAULT_FLOW), "Asia/Jerusalem").now()
    haircut = rules.service("תספורת")
    assert haircut is not None and haircut.minutes == 30
    assert rules.service("אני רוצה תספורת") == haircut
    check_booking(read_flow(DEFAULT_FLOW))
