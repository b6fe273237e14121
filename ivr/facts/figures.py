"""The figures a text names (prices, hours, numbers, phone numbers), each in one form whether
written or said: "80 ₪", "80 שקל" and "שמונים שקלים" are all "80"; "08:00" is "8:00"."""

from __future__ import annotations

import re

from ..booking.hebrew_numbers import WORDS
from .words import clean, fold, forms

BEFORE, AFTER = r"(?<!\d)(?<!\d[.,:])", r"(?![.,:]?\d)"  # not inside a longer figure
PHONE = re.compile(rf"{BEFORE}\+?\d(?:[\d-]*\d){{6,}}{AFTER}")  # 03-5551234, 050-1234567
TIME = re.compile(rf"{BEFORE}(\d{{1,2}}):(\d{{2}}){AFTER}")
NUMBER = re.compile(rf"{BEFORE}(?:\d{{1,3}}(?:,\d{{3}})+|\d+)(?:\.\d+)?{AFTER}")
MORE_TENS = {"שישים": 60, "שבעים": 70, "שמונים": 80, "תשעים": 90}
HUNDREDS = {"מאה": 100, "מאתיים": 200, "אלף": 1000, "אלפיים": 2000}
TIMES = {"מאות": 100, "אלפים": 1000}  # "שלוש מאות", "חמשת אלפים"
BREAKS = re.compile(r"[,.;:!?()\n]")  # a number said does not run across these
TEENS = ("עשר", "עשרה")  # after a unit: "חמש עשרה" is 15
# said alone these are seldom a figure ("יום שני", "אחד הדברים", "לפני שנים")
NOT_ALONE = {"אחד", "אחת", "שני", "שתי", "שנים", "שניים", "שתיים", "שתים"}
VALUES = {fold(w): n for w, n in {**WORDS, **MORE_TENS, **HUNDREDS}.items() if " " not in w}
VALUES.update({fold(w[:-1] + "ת"): n for w, n in WORDS.items()  # construct: שלושת, חמשת
               if w.endswith("ה") and " " not in w and n < 10})
MULTIPLIERS = {fold(w): n for w, n in TIMES.items()}


def figures(text: str) -> set[str]:
    """Every figure `text` names, written ("80 ₪", "8:00-18:00", "1,200", "03-5551234") or
    said in Hebrew words ("שמונים", "מאה וחמישים", "חמש עשרה"), as digits."""
    found: set[str] = set()
    rest = PHONE.sub(lambda m: found.add(re.sub(r"\D", "", m.group())) or " ", text)
    rest = TIME.sub(lambda m: found.add(f"{int(m[1])}:{m[2]}") or " ", rest)
    for m in NUMBER.finditer(rest):
        value = m.group().replace(",", "")
        found.add(value.rstrip("0").rstrip(".") if "." in value else str(int(value)))
    found.update(said_numbers(rest))
    return found


def _value(word: str) -> tuple[str, int] | None:
    """The number word `word` is (with a prefix glued to it: "ובשמונים"), and its value."""
    for form in forms(word):
        if form in VALUES:
            return form, VALUES[form]
        if form in MULTIPLIERS:
            return form, -MULTIPLIERS[form]
    return None


def said_numbers(text: str) -> list[str]:
    """The numbers said in Hebrew words in `text`, each run of number words as one number."""
    out: list[str] = []
    run: list[tuple[str, int]] = []
    alone = {fold(w) for w in NOT_ALONE}
    for word in [w for part in BREAKS.split(text) for w in clean(part).split() + [""]]:
        found = _value(word) if word else None
        if found:
            run.append(found)
            continue
        if run and not all(w in alone for w, _ in run):
            out.append(str(_total(run)))
        run = []
    return out


def _total(run: list[tuple[str, int]]) -> int:
    """The number a run of number words says: units, teens, tens, hundreds and thousands."""
    total = current = 0
    last = 0
    for word, value in run:
        if value < 0:  # מאות, אלפים: what came before times it
            current = (current or 1) * -value
            if -value == 1000:
                total, current = total + current, 0
        elif word in {fold(t) for t in TEENS} and 0 < last < 10:
            current += 10
        elif value >= 1000:  # אלף, אלפיים: a thousand or two, whatever came before
            total, current = total + current + value, 0
        else:
            current += value
        last = value
    return total + current
