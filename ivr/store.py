"""SQLAlchemy Core store of calls, turns, events and leads: the truth about each call."""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    create_engine,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import Engine

metadata = MetaData()

calls = Table(
    "calls", metadata,
    Column("call_sid", String(64), primary_key=True),
    Column("account_sid", String(64), default=""),
    Column("from_number", String(64), default=""),
    Column("to_number", String(64), default=""),
    Column("status", String(32), default="in-progress"),
    Column("turn_mode", String(16), default=""),
    Column("reply_mode", String(16), default=""),
    Column("turn", Integer, default=0),
    Column("stream_started_turn", Integer, default=0),
    Column("last_media_at", Float),
    Column("silent_turns", Integer, default=0),
    Column("history", Text, default="[]"),
    Column("pending_twiml", Text),
    Column("fallback_reason", String(200)),
    Column("outcome", String(64), default=""),
    Column("errors", Integer, default=0),
    Column("duration_sec", Integer),
    Column("started_at", Float),
    Column("updated_at", Float),
    Column("ended_at", Float),
    Column("ended", Boolean, default=False),
)

turns = Table(
    "turns", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("call_sid", String(64), index=True),
    Column("turn", Integer),
    Column("source", String(16)),
    Column("user_text", Text, default=""),
    Column("reply_text", Text, default=""),
    Column("audio_url", Text, default=""),
    Column("utterance_ms", Integer),
    Column("asr_ms", Integer),
    Column("llm_ms", Integer),
    Column("tts_ms", Integer),
    Column("total_ms", Integer),
    Column("fallback", String(64), default=""),
    Column("created_at", Float),
)

events = Table(
    "events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("call_sid", String(64), index=True),
    Column("ts", Float),
    Column("kind", String(64)),
    Column("detail", Text, default="{}"),
)

leads = Table(
    "leads", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("call_sid", String(64), index=True),
    Column("caller", String(64), default=""),
    Column("name", Text, default=""),
    Column("phone", Text, default=""),
    Column("reason", Text, default=""),
    Column("created_at", Float),
)

CALL_FIELDS = frozenset(c.name for c in calls.columns)
PURGE_BATCH = 200  # rows (calls, with their turns and events) per purge transaction


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class Store:
    """Thread-safe access to the call database; every method is one short transaction.

    Writes from the media hot path (`later=True`) go to one background writer so that a frame
    never waits for the database; every read first waits for those writes to land.
    """

    def __init__(self, url: str):
        sqlite = url.startswith("sqlite")
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        options = {"pool_size": 20, "max_overflow": 40} if sqlite else {"pool_pre_ping": True}
        self.engine: Engine = create_engine(url, **options)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA journal_mode=WAL")  # kept by the file itself
        metadata.create_all(self.engine)
        self.write_lock = threading.Lock()
        self.writes: queue.Queue = queue.Queue()
        self.writer = threading.Thread(target=self._write_forever, daemon=True,
                                       name="store-writer")
        self.writer.start()

    def _write_forever(self) -> None:
        while True:
            first = self.writes.get()
            if first is None:
                self.writes.task_done()
                return
            batch = [first]
            while len(batch) < 500:
                try:
                    batch.append(self.writes.get_nowait())
                except queue.Empty:
                    break
            try:
                with self.writing() as conn:
                    for statement in batch:
                        if statement is not None:
                            conn.execute(statement)
            except Exception as exc:  # noqa: BLE001 - a lost hot-path row must not kill writes
                logging.getLogger("ivr").error("STORE_WRITE_ERR rows=%d err=%r", len(batch), exc)
            finally:
                for _ in batch:
                    self.writes.task_done()

    @contextmanager
    def writing(self):
        """One write transaction at a time in this process: SQLite's busy handler polls with
        10-100 ms sleeps under contention, which would stall whoever waits (a media frame)."""
        with self.write_lock, self.engine.begin() as conn:
            yield conn

    def flush(self) -> None:
        """Wait until every deferred write has landed."""
        if self.writes.unfinished_tasks:
            self.writes.join()

    def ping(self) -> bool:
        """True when the database answers a trivial query."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:  # noqa: BLE001 - health check reports, never raises
            return False

    def ensure_call(self, call_sid: str, **fields: Any) -> dict:
        """Create the call if it is unknown (any webhook may be the first we see); return it."""
        now = time.time()
        row = self.get_call(call_sid)
        if row is None:
            values = {k: v for k, v in fields.items() if k in CALL_FIELDS and v is not None}
            values.update(call_sid=call_sid, started_at=now, updated_at=now)
            try:
                with self.writing() as conn:
                    conn.execute(insert(calls).values(**values))
            except Exception:  # noqa: BLE001 - a concurrent webhook created it first
                if self.get_call(call_sid) is None:
                    raise
            row = self.get_call(call_sid)
        return row

    def get_call(self, call_sid: str) -> dict | None:
        self.flush()
        with self.engine.connect() as conn:
            row = conn.execute(select(calls).where(calls.c.call_sid == call_sid)).mappings().first()
        return dict(row) if row else None

    def update_call(self, call_sid: str, later: bool = False, **fields: Any) -> None:
        values = {k: v for k, v in fields.items() if k in CALL_FIELDS}
        values["updated_at"] = time.time()
        statement = update(calls).where(calls.c.call_sid == call_sid).values(**values)
        if later:
            self.writes.put(statement)
            return
        with self.writing() as conn:
            conn.execute(statement)

    def claim(self, call_sid: str, where: dict[str, Any], **changes: Any) -> bool:
        """Apply changes only if the call still matches `where`; True if this caller won."""
        self.flush()
        stmt = update(calls).where(calls.c.call_sid == call_sid)
        for key, value in where.items():
            stmt = stmt.where(calls.c[key] == value)
        with self.writing() as conn:
            result = conn.execute(stmt.values(updated_at=time.time(), **changes))
        return result.rowcount == 1

    def claim_stream_start(self, call_sid: str, turn: int) -> bool:
        """Record that the stream of `turn` started (only ever moves forward)."""
        stmt = (update(calls).where(calls.c.call_sid == call_sid)
                .where((calls.c.stream_started_turn < turn) | calls.c.stream_started_turn.is_(None))
                .values(stream_started_turn=turn, updated_at=time.time()))
        with self.writing() as conn:
            return conn.execute(stmt).rowcount == 1

    def history(self, call_sid: str) -> list[dict]:
        call = self.get_call(call_sid)
        return json.loads(call["history"] or "[]") if call else []

    def list_calls(self, limit: int = 100) -> list[dict]:
        self.flush()
        stmt = select(calls).order_by(calls.c.started_at.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(stmt).mappings()]

    def call_summaries(self, limit: int = 200) -> list[dict]:
        """Newest calls with their number of turns and of error events (the inspector's list)."""
        self.flush()
        turn_count = (select(func.count()).where(turns.c.call_sid == calls.c.call_sid)
                      .scalar_subquery())
        error_count = (select(func.count()).where(events.c.call_sid == calls.c.call_sid)
                       .where(or_(events.c.kind.like("%\\_ERR", escape="\\"),
                                  events.c.kind.like("%\\_FAIL", escape="\\"),
                                  events.c.kind.like("%REJECTED", escape="\\"),
                                  events.c.kind.like("%REFUSED", escape="\\")))
                       .scalar_subquery())
        stmt = (select(calls, turn_count.label("turn_count"), error_count.label("error_count"))
                .order_by(calls.c.started_at.desc()).limit(limit))
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(stmt).mappings()]

    def add_event(self, call_sid: str | None, kind: str, detail: dict,
                  later: bool = False) -> None:
        row = {"call_sid": call_sid or "", "ts": time.time(), "kind": kind,
               "detail": json.dumps(detail, ensure_ascii=False, default=str)}
        if later:
            self.writes.put(insert(events).values(**row))
            return
        with self.writing() as conn:
            conn.execute(insert(events).values(**row))

    def events(self, call_sid: str) -> list[dict]:
        self.flush()
        stmt = select(events).where(events.c.call_sid == call_sid).order_by(events.c.id)
        with self.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(stmt).mappings()]
        for row in rows:
            row["detail"] = json.loads(row["detail"] or "{}")
        return rows

    def add_turn(self, call_sid: str, **fields: Any) -> int:
        values = {k: v for k, v in fields.items() if k in turns.c}
        values.update(call_sid=call_sid, created_at=time.time())
        with self.writing() as conn:
            return conn.execute(insert(turns).values(**values)).inserted_primary_key[0]

    def turns(self, call_sid: str) -> list[dict]:
        self.flush()
        stmt = select(turns).where(turns.c.call_sid == call_sid).order_by(turns.c.id)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(stmt).mappings()]

    def add_lead(self, call_sid: str, **fields: Any) -> int:
        values = {k: v for k, v in fields.items() if k in leads.c}
        values.update(call_sid=call_sid, created_at=time.time())
        with self.writing() as conn:
            return conn.execute(insert(leads).values(**values)).inserted_primary_key[0]

    def leads(self) -> list[dict]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(leads).order_by(leads.c.id)).mappings()]

    def purge_before(self, ts: float, batch: int = PURGE_BATCH) -> dict[str, int]:
        """Delete calls ended, or last updated, before `ts` with their turns and events, and
        older turns and events of no known call; leads are never deleted. Each batch is its own
        short transaction, so a big purge keeps other writers waiting for one batch at most."""
        self.flush()
        stale = or_(and_(calls.c.ended.is_(True), calls.c.ended_at < ts),
                    func.coalesce(calls.c.updated_at, calls.c.started_at, 0) < ts)
        counts = {"calls": 0, "turns": 0, "events": 0}
        after = ""
        while sids := self._read_column(select(calls.c.call_sid).where(
                stale, calls.c.call_sid > after).order_by(calls.c.call_sid).limit(batch)):
            after = sids[-1]
            with self.writing() as conn:  # re-checked inside: a call may have woken up since
                sids = list(conn.execute(select(calls.c.call_sid).where(
                    stale, calls.c.call_sid.in_(sids))).scalars())
                for table in (turns, events, calls):
                    deleted = conn.execute(delete(table).where(table.c.call_sid.in_(sids)))
                    counts[table.name] += deleted.rowcount
        counts["turns"] += self._purge_orphans(turns, turns.c.created_at < ts, batch)
        counts["events"] += self._purge_orphans(events, events.c.ts < ts, batch)
        return counts

    def _purge_orphans(self, table: Table, old: Any, batch: int) -> int:
        """Delete `old` rows whose call_sid names no call ("" for line-wide events)."""
        orphan = ~select(calls.c.call_sid).where(calls.c.call_sid == table.c.call_sid).exists()
        removed, after = 0, 0
        while ids := self._read_column(select(table.c.id).where(
                old, orphan, table.c.id > after).order_by(table.c.id).limit(batch)):
            after = ids[-1]
            with self.writing() as conn:
                removed += conn.execute(delete(table).where(table.c.id.in_(ids))).rowcount
        return removed

    def _read_column(self, query: Any) -> list:
        """The first column of a query's rows, read outside the write lock."""
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def close(self) -> None:
        self.flush()
        self.writes.put(None)
        self.writer.join(5)
        self.engine.dispose()
