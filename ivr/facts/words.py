"""Hebrew words as the facts are matched: no niqqud or punctuation, final letters folded, and
each word also without the one-letter prefixes (ו, ה, ב, ל, מ, ש, כ) glued to it."""

from __future__ import annotations

import re

NIQQUD = re.compile(r"[\u0591-\u05c7]")  # cantillation and vowel points, maqaf included
FINALS = str.maketrans("ךםןףץ", "כמנפצ")
WORD = re.compile(r"[^\W_]+(?:[\"'״׳][^\W_]+)*")  # a word, an acronym (ש"ח, סופ"ש) whole
# the letters Hebrew glues before a word, in the order it glues them: ו, then ש or כש, then one
# of ב/ל/כ/מ, then ה ("ובמחירים", "שהתור", "מהבית", "וכשהגעתי")
PREFIXES = sorted({a + b + c + d for a in ("", "ו") for b in ("", "ש", "כש")
                   for c in ("", "ב", "ל", "כ", "מ") for d in ("", "ה")} - {""}, key=len)
MIN_STEM = 3  # what is left after a prefix: shorter is a word of its own ("בית", "לכם")
PLURALS = ("ימ", "ות")  # folded: "מחירים" is also "מחיר", "ילדים" "ילד" (not "שעות": too short)
# words that say nothing about a business (and verbs any question has): a question made of
# them alone finds nothing
STOPWORDS = frozenset(w.translate(FINALS) for w in """
של את על עם אל יש אינ אינכמ אני אנחנו אתה אתמ אתנ הוא היא המ הנ זה זאת זו אלה
מה מי איכ כמה מתי איפה האמ למה גמ רק כל או אבל אמ כי לא כנ אפשר רוצה רציתי רוצים לשאול
שאלה שלכמ שלכ שלי שלנו לכמ לכ לי לנו לו לה אצלכמ אצלכ אותו אותה הזה הזאת פה כאנ שמ
עד אחרי לפני בבקשה תודה שלומ היי טוב מאוד יותר פחות אז עוד כבר גמ היה יהיה הייתי
תגיד תגידי תגידו אפשרי צריכ צריכה משהו איזה איזו יכול יכולה יכולים לגבי בקשר
לבוא בא באה באים להביא לקבל לעשות עושים לקחת לדעת לבדוק לברר
עסק ליד
""".split())


def clean(text: str) -> str:
    """Lower case, no niqqud, no punctuation between words, single spaces."""
    text = NIQQUD.sub("", text.lower())
    return " ".join(m.group() for m in WORD.finditer(text))


def fold(word: str) -> str:
    """The word with its final letters as the ordinary ones (ם→מ…) and no quotation marks."""
    return re.sub("[\"'״׳]", "", word).translate(FINALS)


def forms(word: str) -> list[str]:
    """A folded word, then each form of it without one of PREFIXES that leaves MIN_STEM letters
    or more: "ובמחירים" → ובמחירימ, במחירימ, מחירימ (and without the plural ending, מחיר)."""
    word = fold(word)
    out = [word]
    for prefix in PREFIXES:
        rest = word[len(prefix):]
        if word.startswith(prefix) and len(rest) >= MIN_STEM and rest not in out:
            out.append(rest)
    return out


def match_forms(word: str) -> list[str]:
    """`forms(word)`, and each of them without a plural ending (ים, ות) that leaves MIN_STEM
    letters: the forms a word is indexed and searched by."""
    out = forms(word)
    for form in list(out):
        if form[-2:] in PLURALS and len(form) - 2 >= MIN_STEM and form[:-2] not in out:
            out.append(form[:-2])
    return out


def is_stopword(word: str) -> bool:
    """A word that says nothing about the business, also with a prefix ("בשבילכם"; a short
    one after ו or ש only: "ויש", "שיש", but "בעל" is not ב+על)."""
    folded = fold(word)
    return any(form in STOPWORDS for form in forms(word)) \
        or folded[:1] in ("ו", "ש") and folded[1:] in STOPWORDS


def content_words(text: str) -> list[list[str]]:
    """Each word of `text` that is not a stopword, as its match_forms (the word first)."""
    return [match_forms(w) for w in clean(text).split() if not is_stopword(w)]
