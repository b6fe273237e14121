"""What can be booked, from the flow's `booking:` beside `hours:`: services, rules, open days."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import lru_cache

from ..flow import FlowFile
from ..owner import DAYS, BusinessHours, HoursError, Span, parse_spans

FRIDAY = DAYS.index("fri")
# hdate's names of the days Israel closes for besides Yom Tov (its YOM_TOV type): Independence Day
CLOSED_MODERN = frozenset({"yom_haatzmaut"})


class BookingError(HoursError):
    """The flow's `booking:` cannot be used; starts with its entry ("booking.capacity: …")."""


@dataclass(frozen=True)
class Service:
    """One thing a caller can book: its name as said, how long, its price, the gap after it."""

    name: str
    minutes: int
    price: float | None = None
    buffer: int = 0  # minutes kept free after it (cleaning, the next customer's setup)

    @property
    def occupies(self) -> dt.timedelta:
        """How long a booking of it keeps a place taken: its minutes and its buffer."""
        return dt.timedelta(minutes=self.minutes + self.buffer)


@lru_cache(maxsize=2048)
def jewish_day(day: dt.date) -> tuple[str, str]:
    """("closed" | "eve" | "", the holiday's name) for `day` in Israel, from hdate: closed on
    Yom Tov and Independence Day, an eve (ערב חג) before a Yom Tov."""
    from hdate import HDateInfo, HolidayTypes  # loaded on the first booking question only

    holidays = HDateInfo(day, diaspora=False).holidays
    for holiday in holidays:
        if holiday.type is HolidayTypes.YOM_TOV or holiday.name in CLOSED_MODERN:
            return "closed", holiday.name
    for holiday in holidays:
        if holiday.type is HolidayTypes.EREV_YOM_TOV:
            return "eve", holiday.name
    return "", ""


@dataclass(frozen=True)
class BookingRules:
    """The flow's `booking:` read: what can be booked, how soon and how far ahead, how many at
    once, and the opening spans of each day (the hours, Friday's on eves, none on Shabbat
    unless `hours:` names `sat`, none on Israel's holidays unless the flow says otherwise)."""

    services: tuple[Service, ...]
    hours: BusinessHours
    capacity: int = 1
    min_notice: dt.timedelta = dt.timedelta(minutes=60)
    max_days_ahead: int = 30
    step: dt.timedelta = dt.timedelta(minutes=15)
    closed_on_jewish_holidays: bool = True
    eve_spans: tuple[Span, ...] | None = None  # None: the Friday hours
    open_on: frozenset[dt.date] = field(default_factory=frozenset)  # open as any week

    @property
    def zone(self) -> str:
        return self.hours.zone

    @classmethod
    def from_flow(cls, flow: dict, zone: str) -> BookingRules | None:
        """The rules of this flow in TIMEZONE `zone`; None when it has no `booking:`;
        BookingError naming the entry when it cannot be used."""
        raw = flow.get("booking")
        if raw is None:
            return None
        if not isinstance(raw, dict):
            raise BookingError("booking: expected services: and the rules under it")
        unknown = sorted(set(raw) - BOOKING_KEYS)
        if unknown:
            raise BookingError(f"booking: unknown entry {', '.join(map(str, unknown))}; "
                               f"use {', '.join(sorted(BOOKING_KEYS))}")
        hours = BusinessHours.from_flow(flow, zone)
        if hours.week is None:
            raise BookingError("booking: needs the opening hours: add hours: with a line "
                               "per day you take appointments")
        eve = raw.get("eve_hours")
        return cls(
            services=_services(raw.get("services")),
            hours=hours,
            capacity=_whole(raw, "capacity", 1, 1, 100),
            min_notice=dt.timedelta(minutes=_whole(raw, "min_notice_minutes", 60, 0, 60 * 24 * 30)),
            max_days_ahead=_whole(raw, "max_days_ahead", 30, 0, 366),
            step=dt.timedelta(minutes=_whole(raw, "slot_step_minutes", 15, 5, 240, every=5)),
            closed_on_jewish_holidays=_flag(raw, "closed_on_jewish_holidays", True),
            eve_spans=None if eve is None else tuple(parse_spans(eve, "booking.eve_hours")),
            open_on=_dates(raw.get("open_on") or [], "booking.open_on"))

    def service(self, said: str) -> Service | None:
        """The service a caller named: its exact name, else the one whose name the words hold
        (or that holds them); None when none or several fit."""
        said = (said or "").strip()
        exact = [s for s in self.services if s.name == said]
        if exact:
            return exact[0]
        fits = [s for s in self.services if said and (s.name in said or said in s.name)]
        return fits[0] if len(fits) == 1 else None

    def closed_because(self, day: dt.date) -> str:
        """Why `day` takes no appointments at all ("holiday", "shabbat" …), "" when it may."""
        if day in self.hours.holidays:
            return "holiday"
        if day not in self.open_on and self.closed_on_jewish_holidays \
                and jewish_day(day)[0] == "closed":
            return jewish_day(day)[1]
        if not self.spans(day):
            return "shabbat" if day.weekday() == DAYS.index("sat") else "closed"
        return ""

    def spans(self, day: dt.date) -> list[Span]:
        """The opening spans of the local date `day` for appointments."""
        if day in self.hours.holidays:
            return []
        week = self.hours.week or {}
        usual = week.get(day.weekday(), [])
        if day in self.open_on or not self.closed_on_jewish_holidays:
            return usual
        kind = jewish_day(day)[0]
        if kind == "closed":
            return []
        if kind == "eve" and usual and day.weekday() != FRIDAY:
            return list(self.eve_spans if self.eve_spans is not None else week.get(FRIDAY, []))
        return usual


BOOKING_KEYS = frozenset({"services", "capacity", "min_notice_minutes", "max_days_ahead",
                          "slot_step_minutes", "closed_on_jewish_holidays", "eve_hours",
                          "open_on"})


def _whole(raw: dict, key: str, default: int, low: int, high: int, every: int = 1,
           where: str = "booking") -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high \
            or value % every:
        step = f" in steps of {every}" if every > 1 else ""
        raise BookingError(f"{where}.{key}: {value!r} is not a whole number from {low} to "
                           f"{high}{step}")
    return value


def _flag(raw: dict, key: str, default: bool) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise BookingError(f"booking.{key}: {value!r} is not true or false")
    return value


def _dates(raw: object, where: str) -> frozenset[dt.date]:
    if not isinstance(raw, list):
        raise BookingError(f"{where}: expected a list of dates like [2027-05-12]")
    try:
        return frozenset(d if isinstance(d, dt.date) else dt.date.fromisoformat(str(d))
                         for d in raw)
    except ValueError as exc:
        raise BookingError(f"{where}: {exc}; expected dates like 2027-05-12") from None


def _services(raw: object) -> tuple[Service, ...]:
    if not isinstance(raw, list) or not raw:
        raise BookingError("booking.services: expected a list of services, each with a name: "
                           "and minutes:")
    services = []
    for n, item in enumerate(raw):
        where = f"booking.services.{n}"
        if not isinstance(item, dict) or not str(item.get("name") or "").strip():
            raise BookingError(f"{where}: expected name: and minutes:")
        unknown = sorted(set(item) - {"name", "minutes", "price", "buffer"})
        if unknown:
            raise BookingError(f"{where}: unknown entry {', '.join(map(str, unknown))}; "
                               "use name, minutes, price, buffer")
        if "minutes" not in item:
            raise BookingError(f"{where}: expected minutes: (how long it takes)")
        price = item.get("price")
        if price is not None and (isinstance(price, bool) or not isinstance(price, int | float)
                                  or price < 0):
            raise BookingError(f"{where}.price: {price!r} is not an amount like 80")
        services.append(Service(str(item["name"]).strip(),
                                _whole(item, "minutes", 0, 5, 24 * 60, where=where),
                                price, _whole(item, "buffer", 0, 0, 240, where=where)))
    names = [s.name for s in services]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise BookingError(f"booking.services: {', '.join(twice)} named twice")
    return tuple(services)


def check_booking(flow: dict) -> None:
    """The flow's `booking:` can be used (BookingError says which entry and why)."""
    BookingRules.from_flow(flow, "UTC")


class LiveBooking:
    """The booking rules as the flow file says now: rebuilt when the file changes (see
    flow.FlowFile), the previous ones kept while a bad edit waits to be fixed."""

    def __init__(self, flow: FlowFile, zone: str):
        flow.add_check(check_booking)
        self.flow, self.zone = flow, zone
        self.built: tuple[dict | None, BookingRules | None] = (None, None)

    def now(self) -> BookingRules | None:
        """The rules now; None when the flow has no `booking:`."""
        data = self.flow.current()
        seen, rules = self.built
        if seen is not data:
            rules = BookingRules.from_flow(data, self.zone)
            self.built = (data, rules)
        return rules
