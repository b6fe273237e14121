"""The scripted line's booking conversation: the service, the day and time, the desk's answer,
the read-back and confirmation, the name; a caller who calls again cancels or moves. Each
reply's next step is kept with it in the call's history (any worker reads it), never in memory.

A caller whose number has a coming appointment hears it ("יש לך תור…; לבטל או להזיז?") as
soon as they speak of booking (the flow's booking intent: a booking word or its key), not in
the greeting, as a receptionist looks the caller up once they say why they call: the greeting
is one sound made before the call, a shared phone's other users would hear the appointment, and
most callers who call again ask something else.

The days and times are the code's (`when.resolve`/`refine` read the caller, the desk decides,
`spoken_slot` says them); the sentences are the flow's `booking_texts:` (TEXTS by default)."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass

from ..engines.base import booking_step
from .appointments import BOOKED, Appointment
from .desk import Desk
from .sayings import (
    ANOTHER,
    CANCEL,
    MAX_OFFERS,
    MOVE,
    NAME_LEAD,
    NO,
    TEXTS,
    YES,
    check_texts,
    dump_when,
    load_when,
    ordinal,
    said_day,
    said_keys,
    said_offers,
    says_when,
    spread,
)
from .services import BookingRules, Service
from .when import When, refine, resolve, spoken_slot


@dataclass(frozen=True)
class Said:
    """The line's reply and the next step kept with it (None: the booking talk is over)."""

    text: str
    state: dict | None = None


class Conversation:
    """Answers a booking turn of the scripted line from the desk (its `clock` is "now") and
    the step the history holds; the caller is their From number."""

    def __init__(self, desk: Desk):
        self.desk = desk
        desk.live.flow.add_check(check_texts)

    @property
    def texts(self) -> dict[str, str]:
        return {**TEXTS, **(self.desk.live.flow.current().get("booking_texts") or {})}

    def say(self, key: str, **fields) -> str:
        return self.texts[key].format(**fields)

    def turn(self, history: list[dict], text: str, caller: str, call_sid: str) -> Said:
        """The line's reply to the caller's `text`: the step the history holds answered, or a
        booking begun (the caller's own appointment first, if they have one)."""
        rules = self.desk.rules
        if rules is None:
            return Said(self.say("no_booking"))
        state = booking_step(history)
        if state is None:
            return self.begin(text, caller, rules)
        answer = getattr(self, f"on_{state.get('step')}", None)
        if answer is None:
            return self.begin(text, caller, rules)
        state = dict(state)
        missed_before = state.pop("missed", False)
        said = answer(dict(state), " ".join(text.split()), caller, call_sid)
        if said is None:  # not understood
            return self.missed({**state, "missed": missed_before}, history)
        return said

    # ---- the beginning -------------------------------------------------------------------
    def begin(self, text: str, caller: str, rules: BookingRules) -> Said:
        mine = self.desk.of_caller(caller)
        if mine:
            appointment = mine[0]
            wants = "cancel" if CANCEL.search(text) else "move" if MOVE.search(text) else ""
            if wants:
                return self.manage(appointment, wants, text)
            return Said(self.say("yours", service=appointment.service,
                                 slot=spoken_slot(appointment.start)),
                        {"step": "manage", "appointment": appointment.id})
        return self.choose_service({"step": "when", "mode": "book"}, text, rules)

    def choose_service(self, state: dict, text: str, rules: BookingRules) -> Said:
        service = rules.service(text) if len(rules.services) > 1 else rules.services[0]
        if service is None:
            choices = ", ".join(f"ל{s.name} הקישו {n}" for n, s in enumerate(rules.services, 1))
            return Said(self.say("ask_service", choices=choices),
                        {**state, "step": "service", "request": text})
        return self.seek({**state, "service": service.name}, self.resolve(text))

    def on_service(self, state: dict, text: str, caller: str, call_sid: str) -> Said | None:
        services = self.desk.rules.services
        service = services[int(text) - 1] if text.isdigit() and 0 < int(text) <= len(
            services) else self.desk.service(text)
        if service is None:
            return None
        request = state.pop("request", "")
        return self.seek({**state, "step": "when", "service": service.name},
                         self.resolve(f"{request} {text}" if not text.isdigit() else request))

    # ---- the day and time ----------------------------------------------------------------
    def resolve(self, text: str) -> When:
        return resolve(text, self.desk.clock(), self.desk.rules.zone)

    def seek(self, state: dict, when: When) -> Said:
        """The desk's answer to what the caller said about when, or the question it needs."""
        state.pop("asked", None)
        if when.ask:
            return Said(when.ask, {**state, "step": "when", "asked": dump_when(when)})
        service = self.service(state)
        zone = zoneinfo.ZoneInfo(self.desk.rules.zone)
        if when.day and when.time:
            return self.attempt(state, service, when.start(self.desk.rules.zone))
        if when.day:
            return self.day(state, service, when.day, when.window)
        if when.days:  # "שבוע הבא (בעשר)": the first free times from its start
            at = when.time or (when.window[0] if when.window else dt.time(0))
            first = dt.datetime.combine(when.days[0], at, zone)
            return self.offer(state, "", self.desk.offer(service, first, MAX_OFFERS))
        key = "ask_day" if when.time or when.window else (
            "ask_move" if state.get("mode") == "move" else "ask_when")
        return Said(self.say(key), {**state, "step": "when", "asked": dump_when(when)})

    def on_when(self, state: dict, text: str, caller: str, call_sid: str) -> Said | None:
        asked = state.get("asked")
        when = refine(load_when(asked), text, self.desk.clock(), self.desk.rules.zone) \
            if asked else self.resolve(text)
        return self.seek(state, when) if says_when(when) else None

    def service(self, state: dict) -> Service:
        rules = self.desk.rules
        return rules.service(state.get("service", "")) or rules.services[0]

    def attempt(self, state: dict, service: Service, start: dt.datetime) -> Said:
        """A day and a time: read back to confirm when free, else why not and the nearest."""
        why = self.desk.check(service, start, but=state.get("appointment", ""))
        if why:
            return self.refused(state, service, start, why)
        key = "confirm_move" if state.get("mode") == "move" else "confirm"
        return Said(self.say(key, service=service.name, slot=spoken_slot(start)),
                    {**state, "step": "confirm", "start": start.isoformat()})

    def day(self, state: dict, service: Service, day: dt.date,
            window: tuple[dt.time, dt.time] | None) -> Said:
        """A day with no time: its free times (in the part of the day said), else why not."""
        free = [at for at in self.desk.free(service, day, day)
                if window is None or window[0] <= at.time() <= window[1]]
        apart = dt.timedelta(minutes=service.minutes)
        if free:
            return self.offer(state, "", spread(free, free[0], apart))
        zone = zoneinfo.ZoneInfo(self.desk.rules.zone)
        start = dt.datetime.combine(day, window[0] if window else dt.time(0), zone)
        if (day - self.desk.clock().astimezone(zone).date()).days > self.desk.rules.max_days_ahead:
            return self.refused(state, service, start, "too_far")
        closed = self.desk.rules.closed_because(day)
        why = self.closed(day, closed) if closed else self.say("day_full", day=said_day(day))
        return self.offer(state, why, self.desk.offer(service, start, MAX_OFFERS))

    def refused(self, state: dict, service: Service, start: dt.datetime, why: str) -> Said:
        """Why `start` cannot be booked, in one sentence, and the nearest free times."""
        if why in ("taken", "busy"):
            near = spread(self.desk.free(service, start.date(), start.date()), start,
                          dt.timedelta(minutes=service.minutes))
            offers = near if len(near) > 1 else self.desk.offer(service, start, MAX_OFFERS)
            return self.offer(state, self.say("taken", slot=spoken_slot(start)), offers)
        after = max(start, self.desk.clock()) if why != "too_far" else self.desk.clock()
        return self.offer(state, self.reason(why, start),
                          self.desk.offer(service, after, MAX_OFFERS))

    def reason(self, why: str, start: dt.datetime) -> str:
        if why == "closed":
            return self.closed(start.date(), self.desk.rules.closed_because(start.date()))
        if why == "hours":
            return self.say("hours", slot=spoken_slot(start))
        if why == "notice":
            return self.say("notice")
        if why == "too_far":
            return self.say("too_far", days=self.desk.rules.max_days_ahead)
        return self.say("taken", slot=spoken_slot(start))

    def closed(self, day: dt.date, because: str) -> str:
        if because == "shabbat":
            return self.say("closed_shabbat")
        if because in ("holiday", "closed"):
            return self.say("closed_day", day=said_day(day))
        return self.say("closed_holiday", day=said_day(day))  # hdate's holiday

    def offer(self, state: dict, why: str, offers: list[dt.datetime] | tuple) -> Said:
        """`why` (may be "") then the free times to choose from by key or by voice."""
        offers = list(offers)[:MAX_OFFERS]
        if not offers:
            return Said(f"{why} {self.say('no_offers')}".strip())
        said = self.say("offers", offers=said_offers(offers), keys=said_keys(len(offers)))
        return Said(f"{why} {said}".strip(), {**state, "step": "offers",
                                              "offers": [at.isoformat() for at in offers]})

    def on_offers(self, state: dict, text: str, caller: str, call_sid: str) -> Said | None:
        zone = zoneinfo.ZoneInfo(self.desk.rules.zone)
        offers = [dt.datetime.fromisoformat(at).astimezone(zone) for at in state["offers"]]
        picked = self.picked(text, offers)
        if picked is not None:
            return self.attempt(state, self.service(state), picked)
        when = self.resolve(text)
        return self.seek(state, when) if says_when(when) else None

    def picked(self, text: str, offers: list[dt.datetime]) -> dt.datetime | None:
        """The offer the caller chose: its key, "הראשון"/"השני"…, or its time said alone."""
        if text.isdigit():
            return offers[int(text) - 1] if 0 < int(text) <= len(offers) else None
        for word in text.split():
            n = ordinal(word)
            if n is not None:
                return offers[n] if -len(offers) <= n < len(offers) else None
        when = self.resolve(text)
        if when.day is not None or when.days is not None:
            return None  # another day: a new request
        times = [when.time] if when.time else list(when.time_choices)
        fit = [at for at in offers if at.time() in times]
        return fit[0] if len(fit) == 1 else None

    # ---- confirmation, the name, the booking -----------------------------------------------
    def on_confirm(self, state: dict, text: str, caller: str, call_sid: str) -> Said | None:
        zone = zoneinfo.ZoneInfo(self.desk.rules.zone)
        start = dt.datetime.fromisoformat(state["start"]).astimezone(zone)
        if text == "1" or (YES.search(text) and not NO.search(text)):
            if state.get("mode") == "move":
                return self.move(state, start, call_sid)
            name = state.get("name") or self.known_name(caller)
            if not name:
                return Said(self.say("ask_name"), {**state, "step": "name"})
            return self.book(state, start, caller, call_sid, name)
        when = self.resolve(text)
        if says_when(when):
            return self.seek(state, when)
        if text == "2" or NO.search(text):
            return Said(self.say("ask_other"), {**state, "step": "when"})
        return None

    def on_name(self, state: dict, text: str, caller: str, call_sid: str) -> Said | None:
        name = NAME_LEAD.sub("", text.strip(" .,!?")).strip(" .,!?")
        if not name or name.isdigit():
            return None
        zone = zoneinfo.ZoneInfo(self.desk.rules.zone)
        start = dt.datetime.fromisoformat(state["start"]).astimezone(zone)
        return self.book({**state, "name": name}, start, caller, call_sid, name)

    def known_name(self, caller: str) -> str:
        """The name the caller booked under before, if any."""
        return next((a.name for a in self.desk.of_caller(caller) if a.name), "")

    def book(self, state: dict, start: dt.datetime, caller: str, call_sid: str,
             name: str) -> Said:
        service = self.service(state)
        outcome = self.desk.book(service, start, caller=caller, name=name, call_sid=call_sid)
        if outcome.appointment is not None:
            return Said(self.say("booked", service=service.name, name=name,
                                 slot=spoken_slot(outcome.appointment.start)))
        state = {**state, "name": name}
        why = self.say("taken_now") if outcome.refused in ("taken", "busy") \
            else self.reason(outcome.refused, start)
        return self.offer(state, why, outcome.offers)

    # ---- the caller's own appointment ------------------------------------------------------
    def appointment(self, state: dict) -> Appointment | None:
        found = self.desk.appointments.get(state.get("appointment", ""))
        return found if found is not None and found.status == BOOKED else None

    def manage(self, appointment: Appointment, wants: str, text: str = "") -> Said:
        if wants == "cancel":
            return Said(self.say("confirm_cancel", slot=spoken_slot(appointment.start)),
                        {"step": "cancel", "appointment": appointment.id})
        state = {"step": "when", "mode": "move", "appointment": appointment.id,
                 "service": appointment.service}
        when = self.resolve(text)
        return self.seek(state, when) if says_when(when) else Said(self.say("ask_move"), state)

    def on_manage(self, state: dict, text: str, caller: str, call_sid: str) -> Said | None:
        appointment = self.appointment(state)
        if appointment is None:
            return Said(self.say("gone"))
        if text == "1" or CANCEL.search(text):
            return self.manage(appointment, "cancel")
        if text == "2" or MOVE.search(text):
            return self.manage(appointment, "move", text)
        if text == "3" or ANOTHER.search(text):
            return self.choose_service({"step": "when", "mode": "book"},
                                       "" if text == "3" else text, self.desk.rules)
        return None

    def on_cancel(self, state: dict, text: str, caller: str, call_sid: str) -> Said | None:
        appointment = self.appointment(state)
        if appointment is None:
            return Said(self.say("gone"))
        slot = spoken_slot(appointment.start)
        if text == "1" or (YES.search(text) and not NO.search(text)):
            self.desk.cancel(appointment, call_sid)
            return Said(self.say("cancelled", slot=slot))
        if text == "2" or NO.search(text):
            return Said(self.say("kept", slot=slot))
        return None

    def move(self, state: dict, start: dt.datetime, call_sid: str) -> Said:
        appointment = self.appointment(state)
        if appointment is None:
            return Said(self.say("gone"))
        outcome = self.desk.move(appointment, start, self.service(state), call_sid=call_sid)
        if outcome.appointment is not None:
            return Said(self.say("moved", slot=spoken_slot(outcome.appointment.start)))
        if outcome.refused == "gone":
            return Said(self.say("gone"))
        why = self.say("taken_now") if outcome.refused in ("taken", "busy") \
            else self.reason(outcome.refused, start)
        return self.offer(state, why, outcome.offers)

    def missed(self, state: dict, history: list[dict]) -> Said:
        """An answer not understood: the question again, once; then the booking talk ends."""
        if state.get("missed"):
            return Said(self.say("give_up"))
        asked = next((m["text"] for m in reversed(history) if m["role"] == "assistant"), "")
        return Said(f"{self.say('again')} {asked}".strip(), {**state, "missed": True})
