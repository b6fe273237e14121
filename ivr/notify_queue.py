"""The owner's notifications as rows: queued once, each attempt leased to one process."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import and_, delete, or_, select, update

from .schema import capped, notifications
from .store import Store

LEASE_SEC = 60.0  # an attempt (SMTP's or Twilio's timeouts included) is over by then
MAX_ATTEMPTS = 4  # the first attempt and 3 retries


class NotifyQueue:
    """Rows of the notifications table. A row is inserted already claimed for its first
    attempt; a sweep claims the pending rows whose retry is due and whose lease has expired
    (`FOR UPDATE SKIP LOCKED` on PostgreSQL, one compare-and-set on SQLite's single writer)."""

    def __init__(self, store: Store, lease_sec: float = LEASE_SEC):
        self.store, self.lease_sec = store, lease_sec

    def add(self, row_id: str, call_sid: str, channel: str, target: str, subject: str,
            body: str) -> dict | None:
        """Queue a notification claimed by this caller for its first attempt; None when one
        with this id exists (the same message queued twice, by any process)."""
        now = time.time()
        values = capped(notifications, {
            "id": row_id, "call_sid": call_sid, "channel": channel, "target": target,
            "subject": subject, "body": body, "status": "pending", "attempts": 1,
            "next_at": now, "lease_until": now + self.lease_sec, "last_error": "",
            "created_at": now})
        stmt = (self.store.insert(notifications).values(**values)
                .on_conflict_do_nothing(index_elements=[notifications.c.id])
                .returning(notifications.c.id))  # rowcount is -1 here on psycopg
        with self.store.writing() as conn:
            added = conn.execute(stmt).first()
        return values if added else None

    def _due(self, now: float):
        return and_(notifications.c.status == "pending", notifications.c.next_at <= now,
                    or_(notifications.c.lease_until.is_(None),
                        notifications.c.lease_until < now))

    def waiting(self, now: float) -> bool:
        """Whether an attempt is due and unclaimed (a read: an idle sweep takes no write lock)."""
        query = select(notifications.c.id).where(self._due(now)).limit(1)
        with self.store.engine.connect() as conn:
            return conn.execute(query).first() is not None

    def claim(self, now: float, limit: int) -> list[dict]:
        """Lease up to `limit` due rows, oldest first, to this caller alone (attempts + 1)."""
        rows = self.store.lease(notifications, self._due(now), notifications.c.next_at, limit,
                                now + self.lease_sec)
        return sorted(rows, key=lambda r: r["next_at"])

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
