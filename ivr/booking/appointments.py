"""Appointments in the line's database: an atomic claim of a place; find, cancel, move.

The claim: a booking holds its place (chair, room: one of `capacity` units) as one row per
5 minutes of its time and buffer in `appointment_cells`, whose primary key is (unit, cell).
Claiming is INSERTing those rows in one synchronous transaction, with the appointment's row:
the database's unique key decides, on SQLite and PostgreSQL alike, across workers and
instances. Two callers racing for one place: PostgreSQL makes the second INSERT wait for the
first transaction and then refuses it (a unique violation); SQLite lets one writer in at a time.
The loser's transaction rolls back whole and it tries the next unit; none left is "taken".
Not `SELECT … FOR UPDATE` then count: an empty time has no row to lock (PostgreSQL would need
SERIALIZABLE or advisory locks), and SQLite has no row locks at all. A move releases the old
cells and claims the new ones in the same transaction: it happens whole or not at all, so the
caller never loses both.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass

import phonenumbers
from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from ..schema import appointment_cells, appointments, capped
from ..store import Store
from .services import BookingRules, Service
from .slots import Held, Interval, cells, next_free, why_not

# What Twilio sends as From for a withheld number: a word, or (as its docs describe them, from
# memory: both forms are handled) the word spelled on a keypad: ANONYMOUS, UNAVAILABLE, UNKNOWN,
# RESTRICTED, BLOCKED.
WITHHELD = {"+266696687", "+86282452253", "+8656696", "+7378742833", "+2562533"}


def identifies(number: str) -> bool:
    """Whether a caller's From names one person's phone: a possible number, not "anonymous" or a
    withheld placeholder (two withheld callers must never see each other's appointments)."""
    if not number or number in WITHHELD:
        return False
    try:
        return phonenumbers.is_possible_number(phonenumbers.parse(number, None))
    except phonenumbers.NumberParseException:
        return False

BOOKED, CANCELLED = "booked", "cancelled"


@dataclass(frozen=True)
class Appointment:
    """One booking as the line keeps it; times aware, in TIMEZONE."""

    id: str
    call_sid: str
    caller: str
    name: str
    service: str
    start: dt.datetime
    end: dt.datetime
    busy_until: dt.datetime  # the end and the service's buffer
    unit: int
    status: str
    synced: bool
    external_uid: str
    created_at: float
    updated_at: float

    @property
    def held(self) -> Held:
        return self.start, self.busy_until, self.unit

    @classmethod
    def from_row(cls, row: dict, zone: zoneinfo.ZoneInfo) -> Appointment:
        def at(ts: float) -> dt.datetime:
            return dt.datetime.fromtimestamp(ts, zone)
        return cls(row["id"], row["call_sid"] or "", row["caller"] or "", row["name"] or "",
                   row["service"] or "", at(row["starts_at"]), at(row["ends_at"]),
                   at(row["busy_until"]), row["unit"] or 0, row["status"], bool(row["synced"]),
                   row["external_uid"] or "", row["created_at"], row["updated_at"])


@dataclass(frozen=True)
class Outcome:
    """What a booking or a move came to: the appointment, or why not (a why_not reason:
    "taken", "closed", "hours", "notice", "too_far", "busy"; "gone" for an appointment that is
    not booked) and the next free starts to offer instead."""

    appointment: Appointment | None
    refused: str = ""
    offers: tuple[dt.datetime, ...] = ()


class Appointments:
    """The line's appointments in its store; every write a synchronous transaction (never the
    store's deferred writer: a claim's answer is needed now)."""

    def __init__(self, store: Store, zone: str):
        self.store, self.zone = store, zoneinfo.ZoneInfo(zone)

    def _rows(self, query) -> list[Appointment]:
        with self.store.engine.connect() as conn:
            return [Appointment.from_row(dict(r), self.zone)
                    for r in conn.execute(query).mappings()]

    def get(self, appointment_id: str) -> Appointment | None:
        rows = self._rows(select(appointments).where(appointments.c.id == appointment_id))
        return rows[0] if rows else None

    def booked_between(self, start: dt.datetime, end: dt.datetime) -> list[Appointment]:
        """Booked appointments whose time or buffer overlaps [start, end), by start."""
        query = (select(appointments)
                 .where(appointments.c.status == BOOKED,
                        appointments.c.starts_at < end.timestamp(),
                        appointments.c.busy_until > start.timestamp())
                 .order_by(appointments.c.starts_at))
        return self._rows(query)

    def held(self, start: dt.datetime, end: dt.datetime, but: str = "") -> list[Held]:
        """The places held in [start, end) (for slots.free_slots' `taken`), but `but`'s."""
        return [a.held for a in self.booked_between(start, end) if a.id != but]

    def of_caller(self, caller: str, now: dt.datetime) -> list[Appointment]:
        """The caller's booked appointments not yet over, soonest first."""
        query = (select(appointments)
                 .where(appointments.c.caller == caller, appointments.c.status == BOOKED,
                        appointments.c.ends_at > now.timestamp())
                 .order_by(appointments.c.starts_at))
        return self._rows(query) if identifies(caller) else []

    def since(self, start: dt.datetime) -> list[Appointment]:
        """Every appointment (cancelled too) ending after `start`, by start: the feed's."""
        query = (select(appointments).where(appointments.c.ends_at > start.timestamp())
                 .order_by(appointments.c.starts_at))
        return self._rows(query)

    def unsynced(self, limit: int = 50) -> list[Appointment]:
        """Appointments the owner's calendar does not show as they are now, oldest change
        first."""
        query = (select(appointments).where(or_(appointments.c.synced.is_(False),
                                                        appointments.c.synced.is_(None)))
                 .order_by(appointments.c.updated_at).limit(limit))
        return self._rows(query)

    def book(self, rules: BookingRules, service: Service, start: dt.datetime, now: dt.datetime,
             caller: str, name: str = "", call_sid: str = "",
             busy: Sequence[Interval] = ()) -> Outcome:
        """Book `service` at `start` for `caller` if the rules allow it and a place is free
        (claimed atomically); otherwise why not, with the next free starts."""
        end = start + dt.timedelta(minutes=service.minutes)
        busy_until = start + service.occupies
        refused = why_not(rules, service, start, now, (), busy)
        if not refused:
            now_ts = time.time()
            row = {"id": uuid.uuid4().hex, "call_sid": call_sid, "caller": caller,
                   "name": name, "service": service.name, "starts_at": start.timestamp(),
                   "ends_at": end.timestamp(), "busy_until": busy_until.timestamp(),
                   "status": BOOKED, "synced": False, "external_uid": "", "sync_error": "",
                   "created_at": now_ts, "updated_at": now_ts}

            def write(conn, unit: int) -> None:
                conn.execute(insert(appointments).values(**capped(appointments,
                                                                  {**row, "unit": unit})))
            if self._claim(row["id"], start, busy_until, rules.capacity, write) is not None:
                return Outcome(self.get(row["id"]))
            refused = "taken"
        return Outcome(None, refused, self.offers(rules, service, start, now, busy))

    def move(self, appointment_id: str, rules: BookingRules, service: Service,
             start: dt.datetime, now: dt.datetime,
             busy: Sequence[Interval] = ()) -> Outcome:
        """Move a booked appointment to `start` (its service may change too): the new place
        claimed and the old released in one transaction, so it stays where it was when the
        new time is not free."""
        current = self.get(appointment_id)
        if current is None or current.status != BOOKED:
            return Outcome(None, "gone")
        busy_until = start + service.occupies
        refused = why_not(rules, service, start, now, (), busy)
        if not refused:
            changes = {"service": service.name, "starts_at": start.timestamp(),
                       "ends_at": (start + dt.timedelta(minutes=service.minutes)).timestamp(),
                       "busy_until": busy_until.timestamp(), "synced": False,
                       "sync_error": "", "updated_at": time.time()}

            def write(conn, unit: int) -> None:
                moved = conn.execute(update(appointments)
                                     .where(appointments.c.id == appointment_id,
                                            appointments.c.status == BOOKED)
                                     .values(**capped(appointments, {**changes, "unit": unit})))
                if moved.rowcount != 1:  # cancelled meanwhile: claim nothing
                    raise Gone
            try:
                if self._claim(appointment_id, start, busy_until, rules.capacity, write,
                               release=True) is not None:
                    return Outcome(self.get(appointment_id))
            except Gone:
                return Outcome(None, "gone")
            refused = "taken"
        return Outcome(None, refused, self.offers(rules, service, start, now, busy,
                                                  but=appointment_id))

    def cancel(self, appointment_id: str) -> Appointment | None:
        """Cancel a booked appointment and free its place; the appointment as cancelled, or
        None when it was not booked."""
        with self.store.writing() as conn:
            done = conn.execute(update(appointments)
                                .where(appointments.c.id == appointment_id,
                                       appointments.c.status == BOOKED)
                                .values(status=CANCELLED, synced=False, sync_error="",
                                        updated_at=time.time()))
            if done.rowcount != 1:
                return None
            conn.execute(delete(appointment_cells)
                         .where(appointment_cells.c.appointment_id == appointment_id))
        return self.get(appointment_id)

    def offers(self, rules: BookingRules, service: Service, after: dt.datetime,
               now: dt.datetime, busy: Sequence[Interval] = (), n: int = 3,
               but: str = "") -> tuple[dt.datetime, ...]:
        """The next `n` free starts from `after` on (offered instead of a refused one)."""
        horizon = now + dt.timedelta(days=rules.max_days_ahead + 2)
        taken = self.held(min(after, now), horizon, but=but)
        return tuple(next_free(rules, service, max(after, now), now, taken, busy, n=n))

    def mark_synced(self, appointment: Appointment, external_uid: str) -> bool:
        """Record that the owner's calendar shows `appointment` as read (not if it changed
        since: that change is synced next)."""
        with self.store.writing() as conn:
            return conn.execute(update(appointments)
                                .where(appointments.c.id == appointment.id,
                                       appointments.c.updated_at == appointment.updated_at)
                                .values(**capped(appointments, {
                                    "synced": True, "external_uid": external_uid,
                                    "sync_error": ""}))).rowcount == 1

    def mark_sync_failed(self, appointment_id: str, error: str) -> None:
        with self.store.writing() as conn:
            conn.execute(update(appointments).where(appointments.c.id == appointment_id)
                         .values(**capped(appointments, {"sync_error": error})))

    def _claim(self, appointment_id: str, start: dt.datetime, until: dt.datetime,
               capacity: int, write, release: bool = False) -> int | None:
        """Hold [start, until) on the first unit free of it, with `write(conn, unit)` in the same
        transaction (and, with `release`, the appointment's old cells let go first); the
        unit, or None when every unit is held."""
        rows = [{"cell": cell, "appointment_id": appointment_id}
                for cell in cells(start, until)]
        for unit in range(capacity):
            try:
                with self.store.writing() as conn:
                    if release:
                        conn.execute(delete(appointment_cells).where(
                            appointment_cells.c.appointment_id == appointment_id))
                    conn.execute(insert(appointment_cells), [{**r, "unit": unit} for r in rows])
                    write(conn, unit)
                return unit
            except IntegrityError:
                continue
        return None


class Gone(Exception):
    """The appointment stopped being booked while it was being moved."""
