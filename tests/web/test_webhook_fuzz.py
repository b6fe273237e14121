"""A burst of signed and malformed webhooks, 8 at a time, on SQLite then PostgreSQL: every one
answered (no 5xx, TwiML that runs), no exception, and the same answers and records on both."""

import logging

from sqlalchemy import select

from bench.webhook_fuzz import bad_answer, burst, send, shape
from ivr.app import create_app
from ivr.schema import calls

from ..conftest import AUTH_TOKEN, make_settings
from ..livehelpers import LiveLine

FIELDS = {"CallDuration", "RecordingDuration", "DialCallDuration", "turn", "part", "Digits",
          "Confidence"}
REQUESTS = 300  # `make bench-webhooks` sends the whole 2,120
SEED = 21


class Errors(logging.Handler):
    """The ERROR records of the line's log (an exception caught anywhere is one)."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record.getMessage()[:300])


def burst_on(tmp_path, name: str, database_url: str) -> dict:
    """The burst against a live line on `database_url`: its answers, its errors, its records."""
    live = LiveLine()
    (tmp_path / name).mkdir()
    settings = make_settings(tmp_path / name).replace(
        public_base_url=live.url, database_url=database_url, asr_engine="fake",
        llm_engine="fake", tts_engine="fake", turn_mode="stream",
        twilio_api_base_url="http://127.0.0.1:9")  # a watchdog's REST update: refused at once
    app = create_app(settings)
    errors = Errors()
    logging.getLogger("ivr").addHandler(errors)
    try:
        live.serve(app)
        outcomes = send(live.url, burst(live.url, AUTH_TOKEN, REQUESTS, SEED))
        store = app.extensions["ivr"].store
        ignored = [e["detail"]["field"] for sid in {r["call_sid"] for r in store.list_calls(500)}
                   for e in store.events(sid) if e["kind"] == "TWILIO_FIELD_IGNORED"]
        with store.engine.connect() as conn:
            rows = sorted(conn.execute(select(calls.c.call_sid, calls.c.ended,
                                              calls.c.duration_sec)).all())
        failed = [e for sid in {r[0] for r in rows} for e in store.events(sid)
                  if e["kind"] == "WEBHOOK_ERR"]
    finally:
        live.stop()
        app.extensions["ivr"].close()
        logging.getLogger("ivr").removeHandler(errors)
    return {"outcomes": outcomes, "errors": errors.records, "webhook_errors": failed,
            "ignored": sorted(ignored), "calls": rows}


def test_a_burst_of_signed_and_malformed_webhooks_is_answered_alike_on_both_databases(
        tmp_path, pg_cluster):
    sqlite = f"sqlite:///{tmp_path}/fuzz.sqlite3"
    runs = {}
    for name, url in (("sqlite", sqlite), ("postgresql", pg_cluster.new_database())):
        run = runs[name] = burst_on(tmp_path, name, url)
        assert len(run["outcomes"]) == REQUESTS
        assert [(o.index, bad_answer(o)) for o in run["outcomes"] if bad_answer(o)] == [], name
        assert run["errors"] == [] and run["webhook_errors"] == [], name
        assert set(run["ignored"]) <= FIELDS and run["ignored"], name  # each with its reason
    first, second = runs["sqlite"], runs["postgresql"]
    assert [shape(o) for o in first["outcomes"]] == [shape(o) for o in second["outcomes"]]
    assert first["ignored"] == second["ignored"]
    assert first["calls"] == second["calls"]  # each call there, ended or not, with its duration
    statuses = {o.status for o in first["outcomes"]}
    assert {200, 204, 400, 403} <= statuses  # the burst reached the routes and the refusals
