"""The booking tools an LLM may call, run by code against the desk: times from when.resolve,
slots as spoken words and signed ids, the caller known by the call's number, never the model's.

The model never does date arithmetic and never sees an ISO date: it passes on the caller's own
words (`when_words`), the code resolves them (or returns the resolver's question), and each free
time comes back as the words to say and an opaque `slot_id`. A slot id is signed (HMAC under the
line's signing key) over the call, the service and the start, so any worker or instance can read
it back on the next turn with nothing stored, and a made-up or altered id is refused.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import zoneinfo

from . import when as when_
from .appointments import Appointment, Outcome
from .desk import Desk
from .services import Service
from .slots import why_not

OFFERED = 3  # free times offered at once
NO_DAY = "לאיזה יום לקבוע?"
NOT_THAT_DAY = "אין זמן פנוי ביום הזה"
REASONS = {  # why a time cannot be booked, as the model may say it
    "closed": "העסק סגור ביום הזה", "hours": "זו לא שעה שאפשר לקבוע בה", "notice": "מוקדם מדי",
    "too_far": "רחוק מדי מראש", "busy": "השעה תפוסה", "taken": "השעה כבר תפוסה",
    "gone": "התור כבר לא קיים", "off": "אין קביעת תורים בטלפון"}


def _object(**properties: dict) -> dict:
    """A JSON schema object as strict function calling takes it: every property required, no
    other property allowed."""
    return {"type": "object", "properties": properties, "required": list(properties),
            "additionalProperties": False}


TEXT = {"type": "string"}
DEFINITIONS = [  # (name, what it is for, its parameters' JSON schema)
    ("find_free_times",
     "Free appointment times of a service. Pass the caller's own words for the day and time "
     "exactly as said (e.g. 'מחר בעשר', 'יום שלישי הבא אחרי הצהריים'), never a date you worked "
     "out. Returns times as words to say, each with a slot_id, or a question to ask the caller.",
     _object(service={**TEXT, "description": "the service the caller wants, as they said it"},
             when_words={**TEXT, "description": "the caller's words for the day and time, "
                                                "verbatim, in Hebrew ('' when none said)"})),
    ("book",
     "Book a time the caller confirmed after you read it back to them. The caller's phone "
     "number is known to the line.",
     _object(slot_id={**TEXT, "description": "a slot_id from find_free_times or from a "
                                             "refused booking's offers"},
             name={**TEXT, "description": "the caller's name ('' when not given)"})),
    ("my_appointments", "The caller's coming appointments (by the number they call from).",
     _object()),
    ("cancel", "Cancel one of the caller's appointments, once they confirmed.",
     _object(appointment_id={**TEXT, "description": "an appointment_id from my_appointments"})),
    ("move", "Move one of the caller's appointments to a free time they confirmed.",
     _object(appointment_id={**TEXT, "description": "an appointment_id from my_appointments"},
             slot_id={**TEXT, "description": "a slot_id from find_free_times"})),
]
NAMES = frozenset(name for name, _, _ in DEFINITIONS)


class ToolError(Exception):
    """A tool cannot do what it was asked; the model is told why (its message)."""


@dataclasses.dataclass
class BookingTools:
    """The tools of one call: run against `desk`, booking for `caller` (the call's From)."""

    desk: Desk
    call_sid: str
    caller: str
    key: bytes  # signs the slot ids
    zone: str = when_.TIMEZONE
    kept: list = dataclasses.field(default_factory=list)  # what the LLM keeps of this turn

    definitions = DEFINITIONS

    def run(self, name: str, arguments: str) -> str:
        """Run tool `name` with its JSON `arguments`; the result as JSON for the model. A
        refusal or a failure is a result too ({"error": …}): the model says what to do next."""
        try:
            args = json.loads(arguments or "{}")
            if name not in NAMES or not isinstance(args, dict):
                raise ToolError(f"no tool {name!r} taking these arguments")
            result = getattr(self, name)(**{k: str(v) for k, v in args.items()})
        except (ToolError, TypeError, ValueError) as exc:
            result = {"error": str(exc)}
        except Exception as exc:  # noqa: BLE001 - the database or calendar failed: say so
            result = {"error": f"the booking system failed ({type(exc).__name__}): tell the "
                               "caller it cannot be done now and offer to take a message"}
        return json.dumps(result, ensure_ascii=False)

    # ---- the tools -----------------------------------------------------------------------------
    def find_free_times(self, service: str, when_words: str) -> dict:
        chosen = self._service(service)
        now = self.desk.clock()
        said = when_.resolve(when_words, now, self.zone)
        if said.ask:
            return {"ask": said.ask}
        local = zoneinfo.ZoneInfo(self.zone)
        if said.day is None and said.days is None:
            if said.time is not None or said.window is not None:
                return {"ask": NO_DAY}
            return self._offer(chosen, now, "")  # "as soon as possible"
        first = said.day or said.days[0]
        start = said.start(self.zone)
        if start is not None:  # one exact time: it, or why not and the nearest
            if start in self.desk.free(chosen, first, first):
                return {"service": chosen.name, "slots": [self._slot(chosen, start)]}
            return self._offer(chosen, start, self._why(chosen, start))
        opens = dt.datetime.combine(first, said.window[0] if said.window else dt.time(0), local)
        if said.window is not None:
            ends = dt.datetime.combine(first, said.window[1], local)
            inside = [at for at in self.desk.free(chosen, first, first) if opens <= at < ends]
            if inside:
                return {"service": chosen.name,
                        "slots": [self._slot(chosen, at) for at in spread(inside)]}
        offers = self.desk.offer(chosen, max(opens, now), OFFERED)
        why = ""
        if not any(at.astimezone(local).date() == first for at in offers):
            rules = self.desk.rules
            why = REASONS["closed"] if rules and rules.closed_because(first) else NOT_THAT_DAY
        return self._offered(chosen, offers, why)

    def book(self, slot_id: str, name: str) -> dict:
        service, start = self._read_slot(slot_id)
        outcome = self.desk.book(service, start, self.caller, name.strip(), self.call_sid)
        return self._outcome("booked", service, outcome)

    def my_appointments(self) -> dict:
        return {"appointments": [self._appointment(a) for a in self.desk.of_caller(self.caller)]}

    def cancel(self, appointment_id: str) -> dict:
        appointment = self._mine(appointment_id)
        cancelled = self.desk.cancel(appointment, self.call_sid)
        if cancelled is None:
            raise ToolError(REASONS["gone"])
        return {"cancelled": True, "said": when_.spoken_slot(cancelled.start)}

    def move(self, appointment_id: str, slot_id: str) -> dict:
        appointment = self._mine(appointment_id)
        service, start = self._read_slot(slot_id)
        return self._outcome("moved", service, self.desk.move(appointment, start, service,
                                                                 call_sid=self.call_sid))

    # ---- their parts ---------------------------------------------------------------------------
    def _service(self, said: str) -> Service:
        rules = self.desk.rules
        if rules is None:
            raise ToolError(REASONS["off"])
        service = rules.service(said)
        if service is None:
            names = ", ".join(s.name for s in rules.services)
            raise ToolError(f"which service? ask the caller: {names}")
        return service

    def _why(self, service: Service, start: dt.datetime) -> str:
        rules = self.desk.rules
        reason = why_not(rules, service, start, self.desk.clock()) if rules else "off"
        return REASONS.get(reason or "taken", reason)

    def _offer(self, service: Service, after: dt.datetime, why: str) -> dict:
        return self._offered(service, self.desk.offer(service, after, OFFERED), why)

    def _offered(self, service: Service, offers: list[dt.datetime], why: str) -> dict:
        """The times to offer, and why not the one asked for (when it was not free)."""
        result = {"service": service.name, "slots": [self._slot(service, at) for at in offers]}
        if why:
            result["not_free"] = why
        if not offers:
            result["none"] = "אין זמנים פנויים בתקופה שאפשר לקבוע בה"
        return result

    def _outcome(self, done: str, service: Service, outcome: Outcome) -> dict:
        if outcome.appointment is not None:
            return {done: True, **self._appointment(outcome.appointment)}
        return {done: False, "why": REASONS.get(outcome.refused, outcome.refused),
                "slots": [self._slot(service, at) for at in outcome.offers[:OFFERED]]}

    def _appointment(self, appointment: Appointment) -> dict:
        return {"appointment_id": appointment.id, "service": appointment.service,
                "said": when_.spoken_slot(appointment.start.astimezone(
                    zoneinfo.ZoneInfo(self.zone)))}

    def _mine(self, appointment_id: str) -> Appointment:
        """One of this caller's coming appointments (never another caller's)."""
        mine = {a.id: a for a in self.desk.of_caller(self.caller)} if self.caller else {}
        if appointment_id not in mine:
            raise ToolError("not one of this caller's appointments: call my_appointments")
        return mine[appointment_id]

    # ---- slot ids ------------------------------------------------------------------------------
    def _slot(self, service: Service, at: dt.datetime) -> dict:
        return {"slot_id": slot_id(self.key, self.call_sid, service.name, at),
                "said": when_.spoken_slot(at.astimezone(zoneinfo.ZoneInfo(self.zone)))}

    def _read_slot(self, token: str) -> tuple[Service, dt.datetime]:
        rules = self.desk.rules
        if rules is None:
            raise ToolError(REASONS["off"])
        for service in rules.services:
            start = read_slot_id(self.key, self.call_sid, service.name, token)
            if start is not None:
                return service, start.astimezone(zoneinfo.ZoneInfo(self.zone))
        raise ToolError("unknown slot_id: use one find_free_times gave in this call")


def spread(starts: list[dt.datetime], n: int = OFFERED) -> list[dt.datetime]:
    """`n` of `starts` spread across them (the first, the last, between)."""
    if len(starts) <= n:
        return starts
    return [starts[round(i * (len(starts) - 1) / (n - 1))] for i in range(n)]


def _signature(key: bytes, call_sid: str, service: str, minute: int) -> str:
    message = f"{call_sid}|{service}|{minute}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:12]


def slot_id(key: bytes, call_sid: str, service: str, at: dt.datetime) -> str:
    """An opaque id of `service` at `at` for this call: "s" + the minute (base 36) + a
    signature; read back by any worker that has `key`."""
    minute = int(at.timestamp() // 60)
    return f"s{_base36(minute)}{_signature(key, call_sid, service, minute)}"


def read_slot_id(key: bytes, call_sid: str, service: str, token: str) -> dt.datetime | None:
    """The start `token` was made for (UTC), if it is this call's and `service`'s; else None."""
    token = (token or "").strip()
    if len(token) < 14 or not token.startswith("s"):
        return None
    try:
        minute = int(token[1:-12], 36)
    except ValueError:
        return None
    if not hmac.compare_digest(token[-12:], _signature(key, call_sid, service, minute)):
        return None
    return dt.datetime.fromtimestamp(minute * 60, dt.UTC)


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, rest = divmod(n, 36)
        out = digits[rest] + out
        if not n:
            return out
