"""The watchdog's checks as due timers in the database: armed by any process, run by one."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, func, or_, select

from .schema import capped, checks
from .store import Store

LEASE_SEC = 30.0  # a claimer that died mid-check leaves it to another process after this


@dataclass(frozen=True)
class Check:
    """One claimed arming of a check (its token tells it from a later arming of the same id)."""

    id: str
    call_sid: str
    kind: str
    turn: int
    due_at: float
    token: str
    attempts: int
    detail: dict


class DueChecks:
    """Rows of the checks table: arming upserts one, a sweep claims the due ones with a lease
    (`FOR UPDATE SKIP LOCKED` on PostgreSQL, one atomic compare-and-set on SQLite's single
    writer), and a finished run deletes its own arming only. `kinds` are the kinds this one
    arms and runs (the watchdog's, the reminders'): each sees and claims only its own rows."""

    def __init__(self, store: Store, lease_sec: float = LEASE_SEC,
                 kinds: tuple[str, ...] = ()):
        self.store, self.lease_sec, self.kinds = store, lease_sec, kinds

    def _mine(self, condition=None):
        """`condition` on this one's kinds of rows only."""
        own = checks.c.kind.in_(self.kinds) if self.kinds else None
        parts = [c for c in (own, condition) if c is not None]
        return and_(*parts) if parts else checks.c.id.is_not(None)

    def arm(self, check_id: str, call_sid: str, kind: str, turn: int, due_at: float,
            wait: bool = False, **detail: Any) -> str:
        """Arm (or re-arm: the id's previous arming is replaced) without waiting: the store's
        writer lands the row in order with the call's own writes; with `wait`, written before
        it returns. Returns the arming's token."""
        token = uuid.uuid4().hex
        values = capped(checks, {
            "id": check_id, "call_sid": call_sid, "kind": kind, "turn": turn, "due_at": due_at,
            "token": token, "lease_until": None, "attempts": 0,
            "detail": json.dumps(detail, ensure_ascii=False)})
        statement = self.store.upsert(checks, values,
                                      {k: v for k, v in values.items() if k != "id"})
        if wait:
            with self.store.writing() as conn:
                conn.execute(statement)
        else:
            self.store.defer(statement)
        return token

    def drop(self, check_id: str) -> bool:
        """Retire a check, whatever its arming (once the armings on their way have landed)."""
        self.store.flush()
        with self.store.writing() as conn:
            return conn.execute(delete(checks).where(self._mine(checks.c.id == check_id))
                                ).rowcount == 1

    def _due(self, now: float):
        return self._mine(and_(checks.c.due_at <= now,
                               or_(checks.c.lease_until.is_(None),
                                   checks.c.lease_until < now)))

    def waiting(self, now: float) -> bool:
        """Whether a check is due and unclaimed (a read: an idle sweep takes no write lock)."""
        with self.store.engine.connect() as conn:
            return conn.execute(select(checks.c.id).where(self._due(now)).limit(1)).first() \
                is not None

    def claim(self, now: float, limit: int) -> list[Check]:
        """Lease up to `limit` due checks, oldest first, to this caller alone."""
        rows = self.store.lease(checks, self._due(now), checks.c.due_at, limit,
                                now + self.lease_sec)
        return sorted((Check(id=r["id"], call_sid=r["call_sid"], kind=r["kind"],
                             turn=r["turn"] or 0, due_at=r["due_at"], token=r["token"],
                             attempts=r["attempts"], detail=json.loads(r["detail"] or "{}"))
                       for r in rows), key=lambda c: c.due_at)

    def done(self, check: Check) -> bool:
        """Delete the check if it is still this arming (one that re-armed itself, or a newer
        arming by a webhook, stays)."""
        with self.store.writing() as conn:
            return conn.execute(delete(checks).where(
                checks.c.id == check.id, checks.c.token == check.token)).rowcount == 1

    def cancel(self, call_sid: str) -> int:
        """Delete every check of the call, once the armings still on their way have landed."""
        self.store.flush()
        with self.store.writing() as conn:
            return conn.execute(delete(checks).where(
                self._mine(checks.c.call_sid == call_sid))).rowcount

    def ids(self, call_sid: str | None = None) -> list[str]:
        """The pending checks' ids (of one call, or all), armings on their way included."""
        self.store.flush()
        query = select(checks.c.id).where(self._mine()).order_by(checks.c.id)
        if call_sid is not None:
            query = query.where(checks.c.call_sid == call_sid)
        with self.store.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def call_sids(self) -> set[str]:
        """The calls that have a pending check."""
        self.store.flush()
        with self.store.engine.connect() as conn:
            return set(conn.execute(select(checks.c.call_sid).where(self._mine())
                                    .distinct()).scalars())

    def count(self) -> int:
        """How many checks are pending (a quick read, for /healthz)."""
        with self.store.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(checks)
                                .where(self._mine())).scalar() or 0
