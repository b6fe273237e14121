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
import re
import zoneinfo
from dataclasses import dataclass

from ..engines.base import booking_step
from ..flow import FlowFileError
from .appointments import BOOKED, Appointment
from .desk import Desk
from .services import BookingRules, Service
from .when import WEEKDAYS, When, refine, resolve, said_date, spoken_slot

MAX_OFFERS = 3
TEXTS = {  # what the line says; the flow's `booking_texts:` changes any of them
    "ask_service": "לאיזה שירות? {choices}.",
    "ask_when": "לאיזה יום ובאיזו שעה?",
    "ask_day": "לאיזה יום?",
    "ask_other": "בסדר. לאיזה יום ובאיזו שעה אחרים?",
    "confirm": "יש תור פנוי ל{service} {slot}. לאשר? אמרו כן או הקישו 1.",
    "offers": "אפשר {offers}. לבחירה הקישו {keys}.",
    "no_offers": "אין תורים פנויים בימים הקרובים. אפשר לבקש להשאיר הודעה לצוות.",
    "taken": "התור {slot} כבר תפוס.",
    "taken_now": "התור הזה נתפס הרגע.",
    "day_full": "{day} אין תורים פנויים.",
    "closed_shabbat": "בשבת העסק סגור.",
    "closed_holiday": "{day} חג, והעסק סגור.",
    "closed_day": "{day} העסק סגור.",
    "hours": "העסק לא פתוח {slot}.",
    "notice": "זה קרוב מדי לקבוע עכשיו.",
    "too_far": "אפשר לקבוע עד {days} ימים מראש.",
    "ask_name": "על איזה שם לרשום?",
    "booked": "נקבע תור ל{service} {slot}, על שם {name}. אפשר לעזור במשהו נוסף?",
    "yours": "יש לך תור ל{service} {slot}. לבטל או להזיז? לביטול הקישו 1, להזזה 2, "
             "ולתור נוסף 3.",
    "confirm_cancel": "לבטל את התור {slot}? אמרו כן או הקישו 1.",
    "cancelled": "התור {slot} בוטל. אפשר לעזור במשהו נוסף?",
    "kept": "בסדר, התור נשאר {slot}.",
    "ask_move": "לאיזה יום ובאיזו שעה להזיז?",
    "confirm_move": "יש תור פנוי {slot}. להזיז אליו? אמרו כן או הקישו 1.",
    "moved": "התור הוזז. התור החדש {slot}. אפשר לעזור במשהו נוסף?",
    "gone": "התור הזה כבר לא רשום.",
    "again": "לא הבנתי.",
    "give_up": "לא הצלחתי להבין. אפשר לנסות שוב, או לבקש נציג.",
    "no_booking": "כרגע אי אפשר לקבוע תור בטלפון. אפשר לבקש להשאיר הודעה לצוות.",
}
FIELDS = {"ask_service": {"choices"}, "confirm": {"service", "slot"}, "offers": {"offers", "keys"},
          "taken": {"slot"}, "day_full": {"day"}, "closed_holiday": {"day"},
          "closed_day": {"day"}, "hours": {"slot"}, "too_far": {"days"},
          "booked": {"service", "slot", "name"}, "yours": {"service", "slot"},
          "confirm_cancel": {"slot"}, "cancelled": {"slot"}, "kept": {"slot"},
          "confirm_move": {"slot"}, "moved": {"slot"}}
YES = re.compile(r"(?<!\S)(?:כן|נכון|מאשר|מאשרת|בסדר|בטח|אוקיי|אישור|סגור|מעולה|יופי)(?!\S)")
NO = re.compile(r"(?<!\S)(?:לא|ממש לא|אחר|אחרת)(?!\S)")
CANCEL = re.compile(r"(?<!\S)(?:ו?לבטל|ביטול|תבטל|תבטלי|מבטל|מבטלת)(?!\S)")
MOVE = re.compile(r"(?<!\S)(?:ו?להזיז|להעביר|לשנות|לדחות|להקדים|הזזה|תזיז|תזיזי)(?!\S)")
ANOTHER = re.compile(r"(?<!\S)(?:נוסף|נוספת|עוד|חדש|חדשה)(?!\S)")
ORDINALS = {"הראשון": 0, "הראשונה": 0, "השני": 1, "השנייה": 1, "השניה": 1, "השלישי": 2,
            "השלישית": 2, "האחרון": -1, "האחרונה": -1}
NAME_LEAD = re.compile(r"^(?:על\s+שם|שמי|השם\s+שלי|קוראים\s+לי|זה|אני)\s+")


@dataclass(frozen=True)
class Said:
    """The line's reply and the next step kept with it (None: the booking talk is over)."""

    text: str
    state: dict | None = None


def check_texts(flow: dict) -> None:
    """The flow's `booking_texts:` can be said (FlowFileError naming the entry)."""
    texts = flow.get("booking_texts")
    if texts is None:
        return
    if not isinstance(texts, dict):
        raise FlowFileError("booking_texts: expected a text per entry, like  ask_name: \"…\"")
    for key, text in texts.items():
        if key not in TEXTS:
            raise FlowFileError(f"booking_texts: unknown entry {key}; use "
                                f"{', '.join(sorted(TEXTS))}")
        if not isinstance(text, str) or not text.strip():
            raise FlowFileError(f"booking_texts.{key}: expected a sentence in quotes")
        used = set(re.findall(r"{(\w*)}", text))
        if used - FIELDS.get(key, set()):
            known = ", ".join(f"{{{f}}}" for f in sorted(FIELDS.get(key, ()))) or "none"
            raise FlowFileError(f"booking_texts.{key}: {{{sorted(used)[0]}}} is not said "
                                f"here; it may use {known}")


def said_day(day: dt.date) -> str:
    """"ביום שלישי, השבעה עשר בנובמבר"."""
    return f"ביום {WEEKDAYS[(day.weekday() + 1) % 7]}, {said_date(day)}"


def said_offers(offers: list[dt.datetime]) -> str:
    """Slots in words, the day said once for slots of the same day, the last after "או"."""
    words = [spoken_slot(at, with_day=n == 0 or at.date() != offers[n - 1].date())
             for n, at in enumerate(offers)]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " או " + words[-1]


def said_keys(n: int) -> str:
    keys = [str(k) for k in range(1, n + 1)]
    return keys[0] if n == 1 else ", ".join(keys[:-1]) + " או " + keys[-1]


def dump_when(when: When) -> dict:
    return {"day": when.day and when.day.isoformat(),
            "days": when.days and [d.isoformat() for d in when.days],
            "time": when.time and when.time.isoformat(),
            "window": when.window and [t.isoformat() for t in when.window],
            "day_choices": [d.isoformat() for d in when.day_choices],
            "time_choices": [t.isoformat() for t in when.time_choices],
            "matched": when.matched}


def load_when(raw: dict) -> When:
    day, days, time, window = (raw.get(k) for k in ("day", "days", "time", "window"))
    return When(day=day and dt.date.fromisoformat(day),
                days=days and tuple(dt.date.fromisoformat(d) for d in days),
                time=time and dt.time.fromisoformat(time),
                window=window and tuple(dt.time.fromisoformat(t) for t in window),
                day_choices=tuple(dt.date.fromisoformat(d) for d in raw.get("day_choices", [])),
                time_choices=tuple(dt.time.fromisoformat(t) for t in raw.get("time_choices", [])),
                matched=raw.get("matched", ""))


def says_when(when: When) -> bool:
    return bool(when.day or when.days or when.time or when.window or when.ask)


def spread(free: list[dt.datetime], near: dt.datetime, apart: dt.timedelta) -> list[dt.datetime]:
    """Up to MAX_OFFERS of `free`, the nearest to `near` first, each `apart` from the others,
    in time order."""
    chosen: list[dt.datetime] = []
    for at in sorted(free, key=lambda at: abs(at - near)):
        if all(abs(at - c) >= apart for c in chosen):
            chosen.append(at)
        if len(chosen) == MAX_OFFERS:
            break
    return sorted(chosen)


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
        if when.days:
            first = dt.datetime.combine(when.days[0], when.window[0] if when.window
                                        else dt.time(0), zone)
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
            n = ORDINALS.get(word, ORDINALS.get(re.sub(r"^ו?ב?", "", word)))
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
                return self.move(state, start)
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
            self.desk.cancel(appointment)
            return Said(self.say("cancelled", slot=slot))
        if text == "2" or NO.search(text):
            return Said(self.say("kept", slot=slot))
        return None

    def move(self, state: dict, start: dt.datetime) -> Said:
        appointment = self.appointment(state)
        if appointment is None:
            return Said(self.say("gone"))
        outcome = self.desk.move(appointment, start, self.service(state))
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
