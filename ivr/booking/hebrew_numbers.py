"""Hebrew number words as callers say them (both genders, ordinals, "יומיים") read to ints."""

from __future__ import annotations

import re

# (feminine, masculine) forms of 1–10 and the spellings ASR writes for them
_UNITS = {
    1: ("אחת", "אחד"),
    2: ("שתיים", "שתים", "שתי", "שניים", "שנים", "שני"),
    3: ("שלוש", "שלושה", "שלש", "שלשה"),
    4: ("ארבע", "ארבעה"),
    5: ("חמש", "חמישה", "חמשה"),
    6: ("שש", "שישה", "ששה"),
    7: ("שבע", "שבעה"),
    8: ("שמונה",),
    9: ("תשע", "תשעה"),
    10: ("עשר", "עשרה"),
}
_TEN_FORMS = ("עשרה", "עשר")  # "חמש עשרה" (f), "חמישה עשר" (m), and ASR's mixes of the two
_TENS = {20: "עשרים", 30: "שלושים", 40: "ארבעים", 50: "חמישים"}
_ORDINALS = {1: "ראשון", 2: "שני", 3: "שלישי", 4: "רביעי", 5: "חמישי", 6: "שישי", 7: "שביעי",
             8: "שמיני", 9: "תשיעי", 10: "עשירי"}
DUALS = {"יומיים": ("day", 2), "שבועיים": ("week", 2), "חודשיים": ("month", 2),
         "שעתיים": ("hour", 2)}


def _phrases() -> dict[str, int]:
    words: dict[str, int] = {}
    for n, forms in _UNITS.items():
        for form in forms:
            words.setdefault(form, n)
    for n in range(1, 10):
        for unit in _UNITS[n]:
            for ten in _TEN_FORMS:
                words.setdefault(f"{unit} {ten}", 10 + n)
    for tens, word in _TENS.items():
        words[word] = tens
        for n in range(1, 10):
            for unit in _UNITS[n]:
                words.setdefault(f"{word} ו{unit}", tens + n)
                words.setdefault(f"{word} ו-{n}", tens + n)
    return words


WORDS = _phrases()
# the longest phrase first, so "חמישה עשר" wins over "חמישה"
NUMBER = "|".join(re.escape(w) for w in sorted(WORDS, key=len, reverse=True))
ORDINAL = "|".join(_ORDINALS.values())


def number(text: str) -> int | None:
    """The int a number phrase says: "חמישה עשר" → 15, "15" → 15, "עשרים ואחת" → 21, "השלישי"
    (a day of the month) → 3; None for anything else."""
    text = " ".join(text.split())
    if text.isdigit():
        return int(text)
    if text in WORDS:
        return WORDS[text]
    bare = text[1:] if text.startswith("ה") else text
    for n, word in _ORDINALS.items():
        if bare == word:
            return n
    return None
