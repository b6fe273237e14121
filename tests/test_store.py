"""Store round trips on SQLite and PostgreSQL: calls, turns, events, leads, claims, WAL, purge."""

import logging
import threading
import time

import pytest

from ivr.eventlog import EventLog, format_value
from ivr.store import Store

from .conftest import backdate, database_url

pytestmark = pytest.mark.usefixtures("database")

SID = "CA" + "c" * 32


def test_call_round_trip_and_ensure_is_idempotent(tmp_path):
    store = Store(database_url(tmp_path))
    store.ensure_call(SID, from_number="+972501111111")
    store.ensure_call(SID, from_number="+972502222222")
    store.update_call(SID, turn=3, history='[{"role": "user", "text": "שלום"}]')
    reopened = Store(database_url(tmp_path))
    call = reopened.get_call(SID)
    assert call["from_number"] == "+972501111111" and call["turn"] == 3
    assert reopened.history(SID) == [{"role": "user", "text": "שלום"}]
    assert [c["call_sid"] for c in reopened.list_calls()] == [SID]


def test_processes_starting_at_once_on_a_new_database_all_get_the_schema(tmp_path, database):
    """Several workers (WORKERS=2, two instances) open a new database at the same moment: the
    tables are created once, nobody fails on a table another one created meanwhile."""
    if database == "sqlite":
        pytest.skip("SQLite serves one worker only (python -m ivr check refuses WORKERS > 1)")
    gate = threading.Barrier(6)
    stores, errors = [], []

    def open_store() -> None:
        gate.wait()
        try:
            stores.append(Store(database_url(tmp_path, "race")))
        except Exception as exc:  # noqa: BLE001 - the assertion below shows it
            errors.append(exc)
    threads = [threading.Thread(target=open_store) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(stores) == 6
    with stores[0].engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM health").scalar() == 1
    for store in stores:
        store.close()


def test_sqlite_runs_in_wal_mode(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/wal.sqlite3")
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_turns_events_and_leads_round_trip(tmp_path):
    store = Store(database_url(tmp_path))
    store.add_turn(SID, turn=1, source="gather", user_text="כמה זה עולה?", reply_text="מאה שקל",
                   audio_url="https://h/static/tts/x.mp3", llm_ms=12, tts_ms=340)
    store.add_event(SID, "ASR_TEXT", {"text": "כמה זה עולה?"})
    store.add_lead(SID, name="דנה", phone="0501234567", reason="הצעת מחיר")
    turn = store.turns(SID)[0]
    assert (turn["user_text"], turn["tts_ms"], turn["source"]) == ("כמה זה עולה?", 340, "gather")
    assert store.events(SID)[0]["detail"] == {"text": "כמה זה עולה?"}
    assert store.leads()[0]["name"] == "דנה"


def test_claim_lets_exactly_one_of_many_threads_win(tmp_path):
    store = Store(database_url(tmp_path))
    store.ensure_call(SID, turn=1)
    wins = []

    def try_claim():
        if store.claim(SID, {"turn_mode": ""}, turn_mode="record"):
            wins.append(1)
    threads = [threading.Thread(target=try_claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1 and store.get_call(SID)["turn_mode"] == "record"


class LoggedErrors(logging.Handler):
    def __init__(self):
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_a_row_the_database_refuses_is_lost_alone_and_the_rows_queued_with_it_land(tmp_path):
    """One deferred row the database refuses (here a duplicate key) must not hold the writer:
    the rows queued with it land at once, reads do not wait for it, the database stays healthy."""
    from ivr.store import INSERT_EVENT
    store = Store(database_url(tmp_path))
    store.add_event(SID, "FIRST", {})
    taken = store.events(SID)[0]["id"]
    errors = LoggedErrors()
    logging.getLogger("ivr").addHandler(errors)
    try:
        store.defer((INSERT_EVENT, {"id": taken, "call_sid": SID, "ts": 1.0, "kind": "AGAIN",
                                    "detail": "{}"}))
        store.upsert_call(SID, from_number="+972501234567")
        store.add_event(SID, "AFTER", {}, later=True)
        assert store.flush()  # landed; not FLUSH_WAIT_SEC waited out
    finally:
        logging.getLogger("ivr").removeHandler(errors)
    assert store.get_call(SID)["from_number"] == "+972501234567"
    assert [e["kind"] for e in store.events(SID)] == ["FIRST", "AFTER"]
    assert [line.split()[0] for line in errors.lines] == ["STORE_WRITE_ERR"]
    assert "table=events" in errors.lines[0]
    assert store.write_problem() is None
    store.close()


def test_text_is_kept_without_nul_and_an_integer_its_column_cannot_hold_is_refused(tmp_path):
    """PostgreSQL refuses NUL in text and integers beyond 2**31-1, SQLite takes both: the
    store gives both databases the same, and refuses a number where it is written (its caller
    sees it), never in the writer's batch."""
    from ivr.schema import OutOfRange
    store = Store(database_url(tmp_path))
    store.ensure_call(SID, from_number="+97250\x001234567")
    store.add_turn(SID, turn=1, user_text="\x00כן")
    assert store.get_call(SID)["from_number"] == "+972501234567"
    assert store.turns(SID)[0]["user_text"] == "כן"
    with pytest.raises(OutOfRange):
        store.update_call(SID, duration_sec=2**31)
    with pytest.raises(OutOfRange):
        store.upsert_call(SID, turn=2**63)
    store.update_call(SID, duration_sec=2**31 - 1)
    assert store.get_call(SID)["duration_sec"] == 2**31 - 1
    store.close()


def test_event_log_redacts_secrets_in_log_and_row(tmp_path, caplog):
    store = Store(database_url(tmp_path))
    events = EventLog(store, ["tok-123456789"])
    with caplog.at_level("INFO", logger="ivr"):
        events.emit("WEBHOOK", SID, url="https://x/?t=tok-123456789", auth_token="whatever",
                    text="שלום עולם")
    line = caplog.records[-1].getMessage()
    assert "tok-123456789" not in line and "whatever" not in line
    assert line.startswith(f"WEBHOOK call={SID} ") and 'text="שלום עולם"' in line
    detail = store.events(SID)[0]["detail"]
    assert detail["auth_token"] == "***" and "tok-123456789" not in detail["url"]


def test_format_value_quotes_only_when_needed():
    assert format_value("abc") == "abc"
    assert format_value("a b") == '"a b"'
    assert format_value(12) == "12"


def test_purge_before_deletes_old_calls_with_their_rows_in_batches(tmp_path):
    store = Store(database_url(tmp_path))
    old = [f"CA{n:032d}" for n in range(5)]
    for sid in old + [SID]:
        store.ensure_call(sid)
        store.add_turn(sid, turn=1, source="gather")
        store.add_event(sid, "ASR_TEXT", {"text": "שלום"})
        store.add_event(sid, "TWIML", {})
        store.add_lead(sid, name="דנה")
    store.add_event(None, "APP_START", {})
    store.add_event("CA" + "9" * 32, "SIGNATURE_REJECTED", {})  # a call never recorded
    for sid in old + ["", "CA" + "9" * 32]:
        backdate(store, sid, days=100)
    store.add_event(None, "APP_START", {})  # today's: kept
    counts = store.purge_before(time.time() - 90 * 86400, batch=2)
    assert counts == {"calls": 5, "turns": 5, "events": 12}
    assert [c["call_sid"] for c in store.list_calls()] == [SID]
    assert len(store.turns(SID)) == 1 and len(store.events(SID)) == 2
    assert [e["kind"] for e in store.events("")] == ["APP_START"]
    assert len(store.leads()) == 6  # leads stay until the owner deletes them
    assert store.purge_before(time.time() - 90 * 86400) == {"calls": 0, "turns": 0, "events": 0}


def test_purge_before_takes_an_ended_call_by_its_end_and_a_live_one_by_its_last_update(
        tmp_path):
    store = Store(database_url(tmp_path))
    ended, live = "CA" + "e" * 32, "CA" + "f" * 32
    for sid in (ended, live):
        store.ensure_call(sid)
    then = time.time() - 100 * 86400
    store.update_call(ended, ended=True, ended_at=then)  # updated today, ended long ago
    store.update_call(live, ended_at=then)  # not ended: its recent update keeps it
    counts = store.purge_before(time.time() - 90 * 86400)
    assert counts["calls"] == 1 and store.get_call(ended) is None and store.get_call(live)
