"""Free slots of a service: each day's opening spans in TIMEZONE wall time, less what is taken."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterator, Sequence

from .services import BookingRules, Service

Interval = tuple[dt.datetime, dt.datetime]  # aware datetimes, [start, end)
Held = tuple[dt.datetime, dt.datetime, int]  # an appointment: from, until (its buffer too), place
CELL = dt.timedelta(minutes=5)  # the grain of a held place; slot steps are whole cells
DAY = dt.timedelta(days=1)


def wall_time(day: dt.date, at: dt.time | None, zone: zoneinfo.ZoneInfo) -> dt.datetime | None:
    """`day` at `at` (None: the midnight that ends it) on the zone's clocks; None when the clocks
    skip that time (the hour lost when daylight saving starts)."""
    naive = dt.datetime.combine(day + DAY if at is None else day, at or dt.time(0))
    aware = naive.replace(tzinfo=zone)
    if aware.astimezone(dt.UTC).astimezone(zone).replace(tzinfo=None) != naive:
        return None
    return aware


def openings(rules: BookingRules, day: dt.date) -> list[Interval]:
    """The spans `day` takes appointments in, as aware datetimes (a span past midnight ends
    the next day)."""
    zone = zoneinfo.ZoneInfo(rules.zone)
    out = []
    for opens, closes in rules.spans(day):
        start = wall_time(day, opens, zone) or _after_gap(day, opens, zone)
        end_day = day + DAY if closes is not None and closes <= opens else day
        end = wall_time(end_day, closes, zone) or _after_gap(end_day, closes, zone)
        out.append((start, end))
    return out


def _after_gap(day: dt.date, at: dt.time | None, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    """The first moment after a time the clocks skip."""
    naive = dt.datetime.combine(day, at or dt.time(0))
    return naive.replace(tzinfo=zone).astimezone(dt.UTC).astimezone(zone)


def starts(rules: BookingRules, day: dt.date, service: Service) -> Iterator[dt.datetime]:
    """Every start on `day` whose service ends by its span's close: from each opening, every
    `slot_step_minutes` of wall time (a start the clocks skip is left out)."""
    zone = zoneinfo.ZoneInfo(rules.zone)
    length = dt.timedelta(minutes=service.minutes)
    for start, end in openings(rules, day):
        wall = start.replace(tzinfo=None)
        while True:
            at = wall_time(wall.date(), wall.time(), zone)
            if at is not None:
                if at + length > end:
                    break
                yield at
            wall += rules.step


def cells(start: dt.datetime, end: dt.datetime) -> range:
    """The CELL-long pieces of time [start, end) touches, numbered from the epoch: what an
    appointment holds in the database (ivr/booking/appointments.py) and what overlaps means."""
    first = int(start.timestamp() // CELL.total_seconds())
    return range(first, -int(-end.timestamp() // CELL.total_seconds()))


def free_unit(taken: Sequence[Held], start: dt.datetime, end: dt.datetime,
              capacity: int) -> int | None:
    """The first of the `capacity` places (chairs, rooms) free for [start, end), or None."""
    wanted = cells(start, end)
    held = {u for b, e, u in taken if b < end and e > start
            and set(cells(b, e)) & set(wanted)}
    return next((u for u in range(capacity) if u not in held), None)


def why_not(rules: BookingRules, service: Service, at: dt.datetime, now: dt.datetime,
            taken: Sequence[Held] = (), busy: Sequence[Interval] = ()) -> str:
    """Why `service` cannot be booked at `at` ("" when it can): "closed" (the whole day: a
    holiday, Shabbat…), "hours" (not a start in the day's spans), "notice" (too soon or past),
    "too_far", "busy" (the owner's calendar), "taken" (all `capacity` places)."""
    at = at.astimezone(zoneinfo.ZoneInfo(rules.zone))
    if rules.closed_because(at.date()):
        return "closed"
    if at not in set(starts(rules, at.date(), service)):
        return "hours"
    return _blocked(rules, service, at, now, taken, busy)


def _blocked(rules: BookingRules, service: Service, at: dt.datetime, now: dt.datetime,
             taken: Sequence[Held], busy: Sequence[Interval]) -> str:
    """why_not for a start known to be in the day's spans."""
    if at < now + rules.min_notice:
        return "notice"
    if at.date() > now.astimezone(at.tzinfo).date() + dt.timedelta(days=rules.max_days_ahead):
        return "too_far"
    end = at + service.occupies
    if any(b < end and e > at for b, e in busy):
        return "busy"
    if free_unit(taken, at, end, rules.capacity) is None:
        return "taken"
    return ""


def free_slots(rules: BookingRules, service: Service, first: dt.date, last: dt.date,
               now: dt.datetime, taken: Sequence[Held] = (),
               busy: Sequence[Interval] = ()) -> list[dt.datetime]:
    """Every start of `service` from the local date `first` to `last` (both included) that can
    be booked: in the day's spans, at least `min_notice` after `now`, at most `max_days_ahead`
    days from today, clear of `busy` (the owner's calendar) with its buffer, and with fewer
    one of the `capacity` places free of `taken` (appointments with their buffers)."""
    zone = zoneinfo.ZoneInfo(rules.zone)
    today = now.astimezone(zone).date()
    first, last = max(first, today), min(last, today + dt.timedelta(days=rules.max_days_ahead))
    out, day = [], first
    while day <= last:
        out += [at for at in starts(rules, day, service)
                if not _blocked(rules, service, at, now, taken, busy)]
        day += DAY
    return out


def next_free(rules: BookingRules, service: Service, after: dt.datetime, now: dt.datetime,
              taken: Sequence[Held] = (), busy: Sequence[Interval] = (), n: int = 3,
              apart: dt.timedelta | None = None) -> list[dt.datetime]:
    """Up to `n` free starts from `after` on, each at least `apart` (default: the service's
    length) after the one before: the two or three to offer a caller."""
    zone = zoneinfo.ZoneInfo(rules.zone)
    apart = dt.timedelta(minutes=service.minutes) if apart is None else apart
    today = now.astimezone(zone).date()
    day = max(after.astimezone(zone).date(), today)
    last = today + dt.timedelta(days=rules.max_days_ahead)
    offered: list[dt.datetime] = []
    while day <= last and len(offered) < n:
        for at in free_slots(rules, service, day, day, now, taken, busy):
            if at >= after and (not offered or at >= offered[-1] + apart):
                offered.append(at)
                if len(offered) == n:
                    break
        day += DAY
    return offered
