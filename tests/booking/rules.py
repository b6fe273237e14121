"""The booking rules the tests use: a barber's flow (Sunday–Thursday, a short Friday)."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import yaml

from ivr.booking.services import BookingRules

ZONE = zoneinfo.ZoneInfo("Asia/Jerusalem")
FLOW = """
hours:
  sun: "08:00-18:00"
  mon: "08:00-18:00"
  tue: "08:00-18:00"
  wed: "08:00-18:00"
  thu: "08:00-18:00"
  fri: "08:00-13:00"
booking:
  services:
    - name: תספורת
      minutes: 30
      price: 80
      buffer: 10
    - name: צבע
      minutes: 60
  capacity: 1
  min_notice_minutes: 60
  max_days_ahead: 30
  slot_step_minutes: 15
"""


def rules(**booking) -> BookingRules:
    """The barber's rules, with some `booking:` entries changed (hours=… replaces `hours:`)."""
    flow = yaml.safe_load(FLOW)
    if "hours" in booking:
        flow["hours"] = booking.pop("hours")
    flow["booking"].update(booking)
    return BookingRules.from_flow(flow, "Asia/Jerusalem")


def at(day: str, clock: str = "00:00") -> dt.datetime:
    """"2026-03-31", "10:00" → that wall time in Israel."""
    return dt.datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=ZONE)


def clocks(starts) -> list[str]:
    """Starts as the wall clock says them ("08:00")."""
    return [s.astimezone(ZONE).strftime("%H:%M") for s in starts]
