"""The owner as the line reaches them: phone, business hours and holidays from the flow file."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path

from .flow import FlowFile, FlowFileError, watch
from .phrases import DEFAULT_GOODBYE, OWNER_UNAVAILABLE, TAKE_MESSAGE, TRANSFERRING

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # datetime.weekday() order
Span = tuple[dt.time, dt.time | None]  # None: until midnight ("24:00"); an end before the
# start runs past midnight into the next day ("20:00-02:00")
HEBREW_DAYS = {"sun": "ראשון", "mon": "שני", "tue": "שלישי", "wed": "רביעי", "thu": "חמישי",
               "fri": "שישי", "sat": "שבת"}
SPOKEN_WEEK = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # the week as said in Israel


class HoursError(FlowFileError):
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
        if opens is None or closes == opens:
            raise HoursError(f"{where}: {part.strip()!r} opens and closes at the same time; "
                             "for the whole day write 00:00-24:00")
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
        """True when `at` (default now) falls in a span of its weekday, in the hours' zone, or
        in the after-midnight part of the day before's span that runs past midnight."""
        local = (at or dt.datetime.now(dt.UTC)).astimezone(zoneinfo.ZoneInfo(self.zone))
        if local.date() in self.holidays:
            return False
        if self.week is None:
            return True
        now, day = local.time(), local.weekday()
        today = any(opens <= now and (closes is None or closes <= opens or now < closes)
                    for opens, closes in self.week[day])
        overnight = any(closes is not None and closes < opens and now < closes
                        for opens, closes in self.week[(day - 1) % 7])
        return today or overnight

    def spoken(self) -> str:
        """The week's hours as a sentence to say ("בימים ראשון עד חמישי 8:00-18:00, וביום שישי
        8:00-13:00"): days in a row with the same hours together; TTS reads the times in words
        (speakable). The flow's `{hours}` placeholder."""
        if self.week is None:
            return "בכל יום, בכל שעה"
        groups: list[tuple[list[str], str]] = []
        for day in SPOKEN_WEEK:
            said = " וגם ".join(_span_words(span) for span in self.week[DAYS.index(day)])
            if groups and said and groups[-1][1] == said:
                groups[-1][0].append(day)
            elif said:
                groups.append(([day], said))
        if not groups:
            return "אין לנו שעות פתיחה קבועות"
        parts = [_days_words(days) + " " + said for days, said in groups]
        return ", ".join(parts[:-1]) + ", ו" + parts[-1] if len(parts) > 1 else parts[0]


def _clock_words(at: dt.time | None) -> str:
    return "0:00" if at is None else f"{at.hour}:{at.minute:02d}"


def _span_words(span: Span) -> str:
    opens, closes = span
    if opens == dt.time(0) and closes is None:
        return "כל היום"
    return f"{_clock_words(opens)}-{_clock_words(closes)}"


def _days_words(days: list[str]) -> str:
    names = [HEBREW_DAYS[d] for d in days]
    if len(names) == 1:
        return f"ביום {names[0]}"
    if len(names) == 2:
        return f"בימים {names[0]} ו{names[1]}"
    return f"בימים {names[0]} עד {names[-1]}"


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
    def from_settings(cls, settings, flow_path: str | Path | None = None) -> Owner:
        """OWNER_* and TIMEZONE from the settings, hours and texts from the flow file as it is
        now (FlowFileError naming the file, and the line or entry, when it cannot be used)."""
        flow = watch(flow_path or settings.flow_file)
        flow.add_check(check_hours)
        return cls.from_flow(settings, flow.current())

    @classmethod
    def from_flow(cls, settings, flow: dict) -> Owner:
        """The Owner of these settings and this (checked) flow."""
        hours = BusinessHours.from_flow(flow, settings.timezone)
        return cls(settings.owner_phone, settings.owner_ring_first,
                   settings.owner_dial_timeout_sec, hours, **person_texts(flow))

    def reachable(self, at: dt.datetime | None = None) -> bool:
        """There is a phone to ring and it is business hours."""
        return bool(self.phone) and self.hours.is_open(at)


def check_hours(flow: dict) -> None:
    """The flow's `hours:` and `holidays:` can be read (HoursError says which entry and why)."""
    BusinessHours.from_flow(flow, "UTC")


class LiveOwner:
    """The Owner as the flow file says now: rebuilt when the file changes (see flow.FlowFile),
    the previous one kept while a bad edit waits to be fixed. Reads like an Owner."""

    def __init__(self, settings, flow: FlowFile):
        flow.add_check(check_hours)
        self.settings, self.flow = settings, flow
        self.built: tuple[dict | None, Owner | None] = (None, None)

    def now(self) -> Owner:
        data = self.flow.current()
        seen, owner = self.built
        if seen is not data or owner is None:
            owner = Owner.from_flow(self.settings, data)
            self.built = (data, owner)
        return owner

    def __getattr__(self, name: str):
        if name.startswith("_"):  # copy, pickle: not an Owner's attribute
            raise AttributeError(name)
        return getattr(self.now(), name)
