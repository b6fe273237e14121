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
    Table,
    and_,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    IntegrityError,
    NotSupportedError,
    ProgrammingError,
    StatementError,
)

from . import threads
from .schema import (  # noqa: F401 - UnknownField is part of the store's interface
    UnknownField,
    call_values,
    calls,
    capped,
    events,
    health,
    leads,
    metadata,
    turns,
)

WRITE_RETRY_SEC = 120.0  # a deferred write waits this long for a locked database, then is lost
SCHEMA_LOCK_KEY = 0x1F5A7E  # PostgreSQL advisory lock held while the schema is created
FLUSH_WAIT_SEC = 10.0  # a read waits this long for deferred writes, then reads what is there
PG_POOL_SIZE = 16  # PostgreSQL connections a process keeps open: a webhook never waits to connect
PG_POOL_OVERFLOW = 16  # more, opened for a burst and closed after it
PURGE_BATCH = 200  # rows (calls, with their turns and events) per purge transaction


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def add_missing_columns(conn: Connection) -> list[str]:
    """Columns added to a table since its database was created (all nullable) are added to
    it, so an existing deployment keeps its calls across an upgrade."""
    added = []
    existing = inspect(conn)
    for table in metadata.sorted_tables:
        have = {c["name"] for c in existing.get_columns(table.name)}
        for column in table.columns:
            if column.name not in have:
                kind = column.type.compile(dialect=conn.dialect)
                conn.exec_driver_sql(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}')
                added.append(f"{table.name}.{column.name}")
    return added


def create_schema(engine: Engine) -> None:
    """The tables, their new columns and the health row, in one transaction; on PostgreSQL
    under an advisory lock, so that workers and instances starting at once take turns."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
        metadata.create_all(conn)
        add_missing_columns(conn)
        if conn.execute(select(func.count()).select_from(health)).scalar() == 0:
            conn.execute(insert(health).values(id=1, checked_at=time.time()))


INSERT_EVENT = insert(events)  # built once: an event row is only its parameters


def coalesced(batch: list) -> list:
    """The deferred writes in order, with runs of one statement's parameters (a dict each, or
    a list of dicts) merged into one executemany."""
    out: list = []
    for item in batch:
        if isinstance(item, tuple) and out and isinstance(out[-1], tuple) \
                and out[-1][0] is item[0]:
            rows = item[1] if isinstance(item[1], list) else [item[1]]
            previous = out[-1][1] if isinstance(out[-1][1], list) else [out[-1][1]]
            out[-1] = (item[0], previous + rows)
        else:
            out.append(item)
    return out


def refused(exc: Exception) -> bool:
    """Whether the database (or its driver) refused the statement itself: a value it cannot
    hold, a duplicate key, a bad parameter. Writing it again fails again; anything else (a
    locked database, a lost connection, no free connection) may pass."""
    if isinstance(exc, (DataError, IntegrityError, ProgrammingError, NotSupportedError,
                        ValueError, TypeError, OverflowError)):
        return True
    return isinstance(exc, StatementError) and not isinstance(exc, DBAPIError)


def statement_table(statement: Any) -> str:
    """The table a deferred statement writes (for the log)."""
    statement = statement[0] if isinstance(statement, tuple) else statement
    table = getattr(statement, "table", None)
    return getattr(table, "name", "?")


class Store:
    """Thread-safe access to the call database; every method is one short transaction.

    Writes from the media hot path (`later=True`) go to one background writer so that a frame
    never waits for the database; every read first waits for those writes to land.
    """

    def __init__(self, url: str):
        sqlite = url.startswith("sqlite")
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        options = {"pool_size": 20, "max_overflow": 40} if sqlite else {
            "pool_size": PG_POOL_SIZE, "max_overflow": PG_POOL_OVERFLOW, "pool_pre_ping": True}
        self.engine: Engine = create_engine(url, **options)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA journal_mode=WAL")  # kept by the file itself
        create_schema(self.engine)
        self.write_lock = threading.Lock()
        self.write_error: tuple[float, str] | None = None
        self.writes: queue.Queue = queue.Queue()
        self.landing = threading.Condition()  # deferred writes queued / landed so far, so a
        self.queued = self.landed = 0  # read waits for those before it, never for a lull
        self.writer = threads.start("store-writer", self._write_forever)

    def defer(self, statement: Any) -> None:
        """Hand a write to the background writer (a statement, or (statement, rows)): written
        in order, retried while the database is locked, landed before any later read."""
        with self.landing:
            self.queued += 1
            self.writes.put(statement)

    def _write_forever(self) -> None:
        while True:
            first = self.writes.get()
            batch = [first]
            while len(batch) < 500 and first is not None:
                try:
                    batch.append(self.writes.get_nowait())
                except queue.Empty:
                    break
            try:
                self._write_batch([s for s in batch if s is not None])
            finally:
                with self.landing:
                    self.landed += len(batch)
                    self.landing.notify_all()
            if None in batch:
                return

    def _write_batch(self, batch: list) -> None:
        """Write deferred rows in one transaction; when the database refuses one of them (a
        value it cannot hold), each row on its own, so that row alone is lost (logged), never
        the batch, and no later write waits behind it."""
        if self._write_retrying(coalesced(batch)) is None:
            return
        for statement in batch:
            refused = self._write_retrying([statement])
            if refused is not None:
                logging.getLogger("ivr").error("STORE_WRITE_ERR rows=1 table=%s err=%r",
                                               statement_table(statement), refused)

    def _write_retrying(self, statements: list) -> Exception | None:
        """Write `statements` in one transaction; while the database is locked or unreachable,
        keep trying (they land once it is back), for WRITE_RETRY_SEC at most. The error when
        the database refuses a statement itself (not worth a retry), else None."""
        deadline, pause = time.monotonic() + WRITE_RETRY_SEC, 0.05
        while True:
            try:
                with self.writing() as conn:
                    for statement in statements:
                        conn.execute(*statement) if isinstance(statement, tuple) \
                            else conn.execute(statement)
                self.write_error = None
                return None
            except Exception as exc:  # noqa: BLE001 - a lost hot-path row must not kill writes
                if refused(exc):
                    return exc
                self.write_error = (time.time(), repr(exc)[:200])
                if time.monotonic() > deadline:
                    logging.getLogger("ivr").error("STORE_WRITE_ERR rows=%d err=%r",
                                                   len(statements), exc)
                    return None
                time.sleep(pause)
                pause = min(pause * 2, 2.0)

    @contextmanager
    def writing(self):
        """One write transaction at a time in this process: SQLite's busy handler polls with
        10-100 ms sleeps under contention, which would stall whoever waits (a media frame)."""
        with self.write_lock, self.engine.begin() as conn:
            yield conn

    def flush(self, wait_sec: float = FLUSH_WAIT_SEC) -> bool:
        """Wait until every deferred write queued before this call has landed (True), or
        `wait_sec` has passed. Writes queued meanwhile are not waited for: under steady load
        the queue is never empty, and a read must not wait for a lull."""
        with self.landing:
            target = self.queued
            return self.landing.wait_for(lambda: self.landed >= target, wait_sec)

    def write_problem(self, wait_sec: float = 1.0) -> str | None:
        """Why a write would fail or wait now (a locked or broken database), or None."""
        if self.write_error and time.time() - self.write_error[0] < 30:
            return f"deferred writes failing: {self.write_error[1]}"
        if not self.write_lock.acquire(timeout=wait_sec):
            return f"a write has held the database for over {wait_sec:g} s"
        sqlite = self.engine.dialect.name == "sqlite"
        wait_ms = int(wait_sec * 1000)
        try:
            with self.engine.begin() as conn:
                conn.exec_driver_sql(f"PRAGMA busy_timeout={wait_ms}" if sqlite
                                     else f"SET LOCAL statement_timeout = {wait_ms}")
                try:
                    conn.execute(update(health).values(checked_at=time.time()))
                finally:
                    if sqlite:
                        conn.exec_driver_sql("PRAGMA busy_timeout=5000")
        except Exception as exc:  # noqa: BLE001 - health reports, never raises
            return f"database write failed: {str(exc).splitlines()[0][:160]}"
        finally:
            self.write_lock.release()
        return None

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
            values = {k: v for k, v in fields.items() if v is not None}
            values.update(call_sid=call_sid, started_at=now, updated_at=now)
            try:
                with self.writing() as conn:
                    conn.execute(insert(calls).values(**call_values(values)))
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

    def upsert_call(self, call_sid: str, **fields: Any) -> None:
        """Create or update the call without waiting: the row lands when the database can take
        it (a webhook that must answer Twilio in time, whatever the database does)."""
        now = time.time()
        values = call_values({**fields, "call_sid": call_sid, "updated_at": now})
        changes = {k: v for k, v in values.items() if k != "call_sid"}
        self.defer(self.upsert(calls, {"started_at": now, **values}, changes))

    def insert(self, table: Table) -> Any:
        """INSERT into `table` in this database's dialect (with its ON CONFLICT clauses)."""
        build = {"sqlite": sqlite_insert, "postgresql": postgresql_insert}[self.engine.dialect.name]
        return build(table)

    def upsert(self, table: Table, values: dict[str, Any], changes: dict[str, Any]) -> Any:
        """INSERT `values`, or when a row has that primary key, UPDATE it with `changes`."""
        return self.insert(table).values(**values).on_conflict_do_update(
            index_elements=list(table.primary_key.columns), set_=changes)

    def lease(self, table: Table, due: Any, order: Any, limit: int, until: float
              ) -> list[dict]:
        """Lease up to `limit` rows that are `due`, first by `order`, to this caller alone
        (`lease_until`, one more of `attempts`): `FOR UPDATE SKIP LOCKED` on PostgreSQL, one
        atomic compare-and-set on SQLite's single writer. The rows as leased."""
        pick = (select(table.c.id).where(due).order_by(order).limit(limit)
                .with_for_update(skip_locked=True))  # no-op on SQLite
        stmt = (update(table).where(table.c.id.in_(pick.scalar_subquery()), due)
                .values(lease_until=until, attempts=func.coalesce(table.c.attempts, 0) + 1)
                .returning(*table.c))
        with self.writing() as conn:
            return [dict(r) for r in conn.execute(stmt).mappings()]

    def update_call(self, call_sid: str, later: bool = False, **fields: Any) -> None:
        values = call_values({**fields, "updated_at": time.time()})
        statement = update(calls).where(calls.c.call_sid == call_sid).values(**values)
        if later:
            self.defer(statement)
            return
        self.flush()  # never overtake a deferred write of the same call (its row may be in it)
        with self.writing() as conn:
            conn.execute(statement)

    def touch_media_many(self, times: dict[str, float]) -> None:
        """last_media_at of many calls in one deferred statement (never waits)."""
        statement = (update(calls).where(calls.c.call_sid == bindparam("sid"))
                     .values(last_media_at=bindparam("at"), updated_at=bindparam("at")))
        self.defer((statement, [{"sid": sid, "at": at} for sid, at in times.items()]))

    def claim(self, call_sid: str, where: dict[str, Any], unstarted: int | None = None,
              **changes: Any) -> bool:
        """Apply changes only if the call still matches `where` (and, with `unstarted`, the
        stream of that turn has not started); True if this caller won."""
        self.flush()
        stmt = update(calls).where(calls.c.call_sid == call_sid)
        for key, value in where.items():
            stmt = stmt.where(calls.c[key] == value)
        if unstarted is not None:
            stmt = stmt.where(func.coalesce(calls.c.stream_started_turn, 0) < unstarted)
        with self.writing() as conn:
            result = conn.execute(stmt.values(**call_values({**changes,
                                                               "updated_at": time.time()})))
        return result.rowcount == 1

    def claim_stream_start(self, call_sid: str, turn: int, live_on_turn: bool = False) -> bool:
        """Record that the stream of `turn` started (only ever moves forward); `live_on_turn`:
        only if the call has not ended and is on `turn` (or on none yet)."""
        stmt = (update(calls).where(calls.c.call_sid == call_sid)
                .where((calls.c.stream_started_turn < turn) | calls.c.stream_started_turn.is_(None))
                .values(stream_started_turn=turn, updated_at=time.time()))
        if live_on_turn:
            stmt = stmt.where(or_(calls.c.ended.is_(False), calls.c.ended.is_(None)),
                              or_(calls.c.turn == turn, calls.c.turn.is_(None), calls.c.turn == 0))
        self.flush()
        with self.writing() as conn:
            return conn.execute(stmt).rowcount == 1

    def history(self, call_sid: str) -> list[dict]:
        call = self.get_call(call_sid)
        return json.loads(call["history"] or "[]") if call else []

    def live_calls(self, since: float) -> list[dict]:
        """Calls not ended and updated since `since` (what a restarted process must watch)."""
        self.flush()
        stmt = (select(calls).where(calls.c.ended.is_(False) | calls.c.ended.is_(None))
                .where(calls.c.updated_at >= since))
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(stmt).mappings()]

    def list_calls(self, limit: int = 100) -> list[dict]:
        self.flush()
        stmt = select(calls).order_by(calls.c.started_at.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(stmt).mappings()]

    def call_summaries(self, limit: int = 200) -> list[dict]:
        """Newest calls with their number of turns and of error events, and when their last
        event was (the inspector's list)."""
        self.flush()
        turn_count = (select(func.count()).where(turns.c.call_sid == calls.c.call_sid)
                      .scalar_subquery())
        error_count = (select(func.count()).where(events.c.call_sid == calls.c.call_sid)
                       .where(or_(events.c.kind.like("%\\_ERR", escape="\\"),
                                  events.c.kind.like("%\\_FAIL", escape="\\"),
                                  events.c.kind.like("%REJECTED", escape="\\"),
                                  events.c.kind.like("%REFUSED", escape="\\")))
                       .scalar_subquery())
        last_event = (select(func.max(events.c.ts)).where(events.c.call_sid == calls.c.call_sid)
                      .scalar_subquery())
        stmt = (select(calls, turn_count.label("turn_count"), error_count.label("error_count"),
                       last_event.label("last_event_at"))
                .order_by(calls.c.started_at.desc()).limit(limit))
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(stmt).mappings()]

    def add_event(self, call_sid: str | None, kind: str, detail: dict,
                  later: bool = False) -> None:
        row = capped(events, {"call_sid": call_sid or "", "ts": time.time(), "kind": kind,
                              "detail": json.dumps(detail, ensure_ascii=False, default=str)})
        if later:
            self.defer((INSERT_EVENT, row))
            return
        with self.writing() as conn:
            conn.execute(INSERT_EVENT, row)

    def events(self, call_sid: str) -> list[dict]:
        self.flush()
        stmt = (select(events).where(events.c.call_sid == call_sid)
                .order_by(events.c.ts, events.c.id))  # deferred rows land later
        with self.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(stmt).mappings()]
        for row in rows:
            row["detail"] = json.loads(row["detail"] or "{}")
        return rows

    def add_turn(self, call_sid: str, **fields: Any) -> int:
        values = capped(turns, {k: v for k, v in fields.items() if k in turns.c})
        values.update(call_sid=call_sid, created_at=time.time())
        with self.writing() as conn:
            return conn.execute(insert(turns).values(**values)).inserted_primary_key[0]

    def turns(self, call_sid: str) -> list[dict]:
        self.flush()
        stmt = select(turns).where(turns.c.call_sid == call_sid).order_by(turns.c.id)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(stmt).mappings()]

    def add_lead(self, call_sid: str, **fields: Any) -> int:
        values = capped(leads, {k: v for k, v in fields.items() if k in leads.c})
        values.update(call_sid=call_sid, created_at=time.time())
        with self.writing() as conn:
            return conn.execute(insert(leads).values(**values)).inserted_primary_key[0]

    def last_lead(self, call_sid: str) -> dict | None:
        """The latest message the call left (name, phone, reason, incomplete), or None."""
        self.flush()
        query = (select(leads.c.name, leads.c.phone, leads.c.reason, leads.c.incomplete)
                 .where(leads.c.call_sid == call_sid).order_by(leads.c.id.desc()).limit(1))
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return dict(row) if row else None

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
        """Write what is pending, stop the writer, release the database; a second call is a
        no-op."""
        if not self.writer.is_alive():
            return
        self.flush()
        self.defer(None)
        self.writer.join(5)
        self.engine.dispose()
