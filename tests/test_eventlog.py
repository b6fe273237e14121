"""Event lines: one line per event whatever the values, secrets redacted, rows capped; rejected
requests counted rather than stored one by one."""

import json
import logging

from ivr.eventlog import MAX_STORED_CHARS, EventLog, RejectionTally, format_value
from ivr.store import Store

from .conftest import database_url


def store_in(tmp_path) -> Store:
    return Store(database_url(tmp_path))


def test_values_with_newlines_or_control_characters_stay_on_one_line():
    for value in ("a\nINFO WATCHDOG_REDIRECT_OK call=CA1", "x\r\ny", "esc\x1b[31m", "ls\u2028x",
                  "nul\x00", "del\x7f"):
        text = format_value(value)
        assert text.isprintable() and "\n" not in text and "\r" not in text, text
        assert json.loads(text) == value  # nothing lost: the quoted form reads back exactly


def test_plain_values_stay_bare_and_hebrew_stays_readable():
    assert format_value("MZ123") == "MZ123"
    assert format_value("שלום עולם") == '"שלום עולם"'
    assert format_value(3) == "3"


def test_a_forged_call_sid_cannot_start_a_line_of_its_own(tmp_path, caplog):
    events = EventLog(store_in(tmp_path))
    forged = "CA1\n2026-01-01 00:00:00,000 INFO WATCHDOG_REDIRECT_OK call=CA2"
    with caplog.at_level(logging.INFO, logger="ivr"):
        events.emit("WS_BAD", forged, reason="x")
    lines = caplog.text.strip().splitlines()
    assert len(lines) == 1 and "WATCHDOG_REDIRECT_OK" not in lines[0].split("call=")[0]


def test_stored_details_are_capped_and_secrets_redacted(tmp_path):
    store = store_in(tmp_path)
    events = EventLog(store, ["sekret-token-123"])
    events.emit("GATHER", "CA" + "1" * 32, speech="a" * 250_000, auth="sekret-token-123",
                params={f"k{i}": "v" for i in range(500)}, note="has sekret-token-123 inside")
    detail = store.events("CA" + "1" * 32)[0]["detail"]
    assert len(detail["speech"]) <= MAX_STORED_CHARS + 1
    assert detail["note"] == "has *** inside" and len(detail["params"]) <= 60
    assert "sekret-token-123" not in json.dumps(detail)


def test_rejections_write_one_row_then_one_summary_a_minute(tmp_path, caplog):
    store = store_in(tmp_path)
    tally = RejectionTally(EventLog(store))
    with caplog.at_level(logging.WARNING, logger="ivr"):
        for i in range(3000):
            tally.add("SIGNATURE_REJECTED", f"10.0.0.{i % 3}", route="/webhook/incoming_call")
    store.flush()
    assert len(store.events("")) == 1
    assert len([r for r in caplog.records if "SIGNATURE_REJECTED" in r.getMessage()]) == 3
    tally.close()  # the minute ends
    rows = [e["detail"] for e in store.events("")]
    assert len(rows) == 2 and rows[1]["count"] == 3000 and rows[1]["summary"] is True
    assert sum(rows[1]["sources"].values()) == 3000
