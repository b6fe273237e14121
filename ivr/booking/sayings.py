"""What the booking conversation says and hears: the flow's `booking_texts:` (their defaults
and their check), the caller's yes, no, cancel and move, slots and offers said in words, and the
question a `When` left open, kept in the history as plain data."""

from __future__ import annotations

import datetime as dt
import re

from ..flow import FlowFileError
from .when import WEEKDAYS, When, said_date, spoken_slot

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


def ordinal(word: str) -> int | None:
    """The offer "הראשון"/"השני"/"השלישי"/"האחרון" names (0, 1, 2, -1), with ו/ב glued on."""
    return ORDINALS.get(word, ORDINALS.get(re.sub(r"^ו?ב?", "", word)))


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
