"""The owner's notifications as rows: queued once, each attempt leased to one process."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import and_, delete, or_, select, update

from ..schema import capped, notifications
from ..store import Store

LEASE_SEC = 60.0  # an attempt is over well before then (its deadline: ATTEMPT_SHARE of it)
ATTEMPT_SHARE = 0.5  # an attempt's overall deadline as a share of its lease
MAX_ATTEMPTS = 4  # the first attempt and 3 retries


class NotifyQueue:
    """Rows of the notifications table. A row is inserted unclaimed (due at once, or held a
    while for the summary it carries); each attempt, the first included, claims due rows whose
    lease has expired (`FOR UPDATE SKIP LOCKED` on PostgreSQL, one compare-and-set on SQLite's
    single writer)."""

    def __init__(self, store: Store, lease_sec: float = LEASE_SEC):
        self.store, self.lease_sec = store, lease_sec

    def add(self, row_id: str, call_sid: str, channel: str, target: str, subject: str,
            body: str, hold_sec: float = 0.0) -> dict | None:
        """Queue a notification, due in `hold_sec` (claimed by whoever sweeps then); None when
        one with this id exists (the same message queued twice, by any process)."""
        now = time.time()
        values = capped(notifications, {
            "id": row_id, "call_sid": call_sid, "channel": channel, "target": target,
            "subject": subject, "body": body, "status": "pending", "attempts": 0,
            "next_at": now + hold_sec, "lease_until": None, "last_error": "",
            "created_at": now})
        stmt = (self.store.insert(notifications).values(**values)
                .on_conflict_do_nothing(index_elements=[notifications.c.id])
                .returning(notifications.c.id))  # rowcount is -1 here on psycopg
        with self.store.writing() as conn:
            added = conn.execute(stmt).first()
        return values if added else None

    def revise(self, row_id: str, subject: str, body: str) -> bool:
        """Give a held row its final text and make it due now, unless an attempt began."""
        stmt = (update(notifications)
                .where(notifications.c.id == row_id, notifications.c.attempts == 0,
                       notifications.c.status == "pending")
                .values(**capped(notifications, {"subject": subject, "body": body,
                                                 "next_at": time.time()})))
        with self.store.writing() as conn:
            return conn.execute(stmt).rowcount == 1

    def _due(self, now: float, channel: str | None):
        due = and_(notifications.c.status == "pending", notifications.c.next_at <= now,
                   or_(notifications.c.lease_until.is_(None),
                       notifications.c.lease_until < now))
        return due if channel is None else and_(due, notifications.c.channel == channel)

    def waiting(self, now: float, channel: str | None = None) -> bool:
        """Whether an attempt is due and unclaimed (a read: an idle sweep takes no write lock)."""
        query = select(notifications.c.id).where(self._due(now, channel)).limit(1)
        with self.store.engine.connect() as conn:
            return conn.execute(query).first() is not None

    def claim(self, now: float, limit: int, channel: str | None = None) -> list[dict]:
        """Lease up to `limit` due rows (of `channel`), oldest first, to this caller alone
        (attempts + 1)."""
        rows = self.store.lease(notifications, self._due(now, channel),
                                notifications.c.next_at, limit, now + self.lease_sec)
        return sorted(rows, key=lambda r: r["next_at"])

    def deadline(self, row: dict) -> float:
        """When a claimed row's attempt must be over: well inside its lease, so that no other
        process claims it while this attempt still tries."""
        return row["lease_until"] - self.lease_sec * (1 - ATTEMPT_SHARE)

    def finish(self, row: dict, **changes: Any) -> bool:
        """Record an attempt's outcome (lease released) if the row is still this attempt's."""
        stmt = (update(notifications)
                .where(notifications.c.id == row["id"],
                       notifications.c.attempts == row["attempts"],
                       notifications.c.status == "pending")
                .values(**capped(notifications, {**changes, "lease_until": None})))
        with self.store.writing() as conn:
            return conn.execute(stmt).rowcount == 1

    def of_call(self, call_sid: str) -> list[dict]:
        """The call's notifications, oldest first (the inspector's table)."""
        query = (select(notifications).where(notifications.c.call_sid == call_sid)
                 .order_by(notifications.c.created_at, notifications.c.id))
        with self.store.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def purge_before(self, ts: float) -> int:
        """Delete the notifications queued before `ts` (RETENTION_DAYS); how many."""
        with self.store.writing() as conn:
            return conn.execute(delete(notifications).where(
                notifications.c.created_at < ts)).rowcount
