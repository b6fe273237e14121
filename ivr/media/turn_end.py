"""End of turn from live words: how much silence ends an utterance, by how its text ends."""

from __future__ import annotations

import re

from ..booking.hebrew_numbers import WORDS as NUMBER_WORDS

COMPLETE_SILENCE_SEC = 0.3  # a sentence that reads as whole ends after this much silence
# words a Hebrew phrase does not end on: and, that, so, if, because, or, also, of, with, the
# object marker, on, to, from, but, like, until, before, after, for, about, between, than
GOES_ON = frozenset("""
ו ש אז אם כי או גם של עם את על אל ב ל מ כ ה אבל ואז וגם ואם ושם ועם וכי שאני שאתה שאת שהוא
שהיא שזה כמו עד לפני אחרי בשביל כדי לגבי בין מאשר אצל אני אתה את הוא היא אנחנו רוצה צריך
יכול יכולה אפשר לקבוע לדעת לשאול לדבר להזמין מה איזה איזו כמה מתי איפה למה
""".split())
DIGITS = re.compile(r"\d")
SENTENCE_END = re.compile(r"[.?!]\s*$")
CUT_OFF = re.compile(r"[-–…,]\s*$")  # a word cut off, a list going on
NUMBERS = frozenset(w for phrase in NUMBER_WORDS for w in phrase.split()) | {"אפס"}


def last_word(text: str) -> str:
    words = re.sub(r"[^\w\s]", " ", text).split()
    return words[-1] if words else ""


def goes_on(text: str) -> bool:
    """The words so far end mid-phrase: on a joining word (ו…, ש…, אז, אם…), a cut-off word,
    or a number being dictated (digits or number words: more may follow)."""
    if CUT_OFF.search(text):
        return True
    word = last_word(text)
    bare = word[1:] if word.startswith("ו") and len(word) > 1 else word
    return word in GOES_ON or bool(DIGITS.search(word)) or word in NUMBERS or bare in NUMBERS


def silence_to_end(text: str, ceiling: float) -> float | None:
    """The silence that ends an utterance whose live words so far are `text`:
    COMPLETE_SILENCE_SEC for a sentence that reads as whole (a question or full stop, or two
    words or more that do not end mid-phrase), `ceiling` (MIN_UTT_SEC) for one that goes on;
    None for no words or one (the detector's own rule)."""
    if not text.strip():
        return None
    if SENTENCE_END.search(text):
        return min(COMPLETE_SILENCE_SEC, ceiling)
    if goes_on(text):
        return ceiling
    if len(text.split()) >= 2:
        return min(COMPLETE_SILENCE_SEC, ceiling)
    return None  # one word alone (a name, "כן"): the detector's own rule for short answers
