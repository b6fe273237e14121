"""The owner as the line reaches them: phone, business hours and holidays from the flow file."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .phrases import DEFAULT_GOODBYE, OWNER_UNAVAILABLE, TAKE_MESSAGE, TRANSFERRING

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # datetime.weekday() order
Span = tuple[dt.time, dt.time | None]  # None: until midnight ("24:00")


class HoursError(ValueError):
    """The flow's `hours:` or `holidays:` cannot be read; says which entry and why."""


def parse_clock(raw: str, where: str) -> dt.time | None:
    """"8:00" → 08:00; "24:00" → None (the end of the day)."""
    hours, _, minutes = raw.strip().partition(":")
    if not (hours.isdigit() and minutes.isdigit() and len(minutes) == 2):
        raise HoursError(f"{where}: {raw!r} is not a time like 08:00")
    if (int(hours), int(minutes)) == (24, 0):
        return None
    if int(hours) > 23 or int(minutes) > 59:
        raise HoursError(f"{where}: {raw!r} is not a time of day")
    return dt.time(int(hours), int(minutes))


def parse_spans(raw: object, where: str) -> list[Span]:
    """"08:00-13:00, 16:00-19:00" → spans; "closed" (or nothing) → none."""
    if raw in (None, False, "closed", ""):
        return []
    spans = []
    for part in str(raw).split(","):
        start, sep, end = part.replace("–", "-").partition("-")
        if not sep:
            raise HoursError(f"{where}: {part.strip()!r} is not a range like 08:00-18:00")
        opens, closes = parse_clock(start, where), parse_clock(end, where)
        if opens is None or (closes is not None and closes <= opens):
            raise HoursError(f"{where}: {part.strip()!r} closes before it opens")
        spans.append((opens, closes))
    return spans


@dataclass(frozen=True)
class BusinessHours:
    """When the owner takes calls: spans per weekday, closed on holidays. No `hours:` in the
    flow at all means any time."""

    week: dict[int, list[Span]] | None = None  # weekday → spans; None: always open
    holidays: frozenset[dt.date] = frozenset()
    zone: str = "Asia/Jerusalem"

    @classmethod
    def from_flow(cls, flow: dict, zone: str) -> BusinessHours:
        hours, holidays = flow.get("hours"), flow.get("holidays") or []
        if hours is not None and not isinstance(hours, dict):
            raise HoursError("hours: expected one line per day, like  sun: \"08:00-18:00\"")
        unknown = sorted(set(hours or {}) - set(DAYS))
        if unknown:
            raise HoursError(f"hours: unknown day(s) {', '.join(map(str, unknown))}; "
                             f"use {', '.join(DAYS)}")
        week = None if hours is None else {
            n: parse_spans(hours.get(day), f"hours.{day}") for n, day in enumerate(DAYS)}
        try:
            dates = frozenset(d if isinstance(d, dt.date) else dt.date.fromisoformat(str(d))
                              for d in holidays)
        except ValueError as exc:
            raise HoursError(f"holidays: {exc}; expected dates like 2026-12-25") from None
        return cls(week, dates, zone)

    def is_open(self, at: dt.datetime | None = None) -> bool:
        """True when `at` (default now) falls in a span of its weekday, in the hours' zone."""
        local = (at or dt.datetime.now(dt.UTC)).astimezone(zoneinfo.ZoneInfo(self.zone))
        if local.date() in self.holidays:
            return False
        if self.week is None:
            return True
        now = local.time()
        return any(opens <= now and (closes is None or now < closes)
                   for opens, closes in self.week[local.weekday()])


def person_texts(flow: dict) -> dict[str, str]:
    """What the line says around a caller's request for a person, from the flow file (or the
    defaults): the transfer, the owner not answering, the first question of a message, goodbye."""
    lead = flow.get("lead") or {}
    return {"transferring": flow.get("transferring") or TRANSFERRING,
            "unavailable": flow.get("owner_unavailable") or OWNER_UNAVAILABLE,
            "take_message": lead.get("ask_name") or TAKE_MESSAGE,
            "goodbye": flow.get("goodbye") or DEFAULT_GOODBYE}


@dataclass(frozen=True)
class Owner:
    """Who the line transfers to and rings first, when, and what it says around a transfer."""

    phone: str = ""
    ring_first: bool = False
    dial_timeout: int = 20
    hours: BusinessHours = field(default_factory=BusinessHours)
    transferring: str = TRANSFERRING
    unavailable: str = OWNER_UNAVAILABLE
    take_message: str = TAKE_MESSAGE
    goodbye: str = DEFAULT_GOODBYE

    @classmethod
    def from_settings(cls, settings, flow_path: str | Path) -> Owner:
        """OWNER_* and TIMEZONE from the settings, hours and texts from the flow file."""
        flow = yaml.safe_load(Path(flow_path).read_text(encoding="utf-8")) or {}
        try:
            hours = BusinessHours.from_flow(flow, settings.timezone)
        except HoursError as exc:
            raise HoursError(f"{flow_path}: {exc}") from None
        return cls(settings.owner_phone, settings.owner_ring_first,
                   settings.owner_dial_timeout_sec, hours, **person_texts(flow))

    def reachable(self, at: dt.datetime | None = None) -> bool:
        """There is a phone to ring and it is business hours."""
        return bool(self.phone) and self.hours.is_open(at)
