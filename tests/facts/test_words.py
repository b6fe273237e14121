"""Hebrew words as the facts are matched: niqqud and punctuation gone, final letters folded,
the prefixes ו/ה/ב/ל/מ/ש/כ (and their pairs) taken off, words that say nothing dropped."""

import pytest

from ivr.facts.words import clean, content_words, forms, is_stopword, match_forms


def test_niqqud_and_punctuation_go_and_acronyms_stay_whole():
    assert clean("שָׁלוֹם, מָה הַמְּחִירִים?!") == "שלום מה המחירים"
    assert clean('80 ש"ח (כולל מע"מ)') == '80 ש"ח כולל מע"מ'


@pytest.mark.parametrize("word, form", [
    ("ובמחירים", "מחירימ"),  # ו + ב
    ("שהתור", "תור"),  # ש + ה
    ("מהבית", "בית"),  # מ + ה
    ("וכשהגעתי", "הגעתי"),  # ו + כש
    ("לתספורת", "תספורת"),
    ("כשעה", "שעה"),
    ("חניון", "חניונ"),  # the final letter folded
])
def test_a_word_is_also_found_without_its_prefixes(word, form):
    assert form in forms(word)


@pytest.mark.parametrize("word", ["בית", "לכם", "מים", "שם"])
def test_a_short_word_keeps_its_first_letter(word):
    assert forms(word) == [word.replace("ם", "מ")]


def test_a_plural_is_also_found_as_the_singular():
    assert "כלב" in match_forms("הכלבים") and "מחיר" in match_forms("מחירים")
    assert "שע" not in match_forms("שעות")  # too short to be a word


def test_words_that_say_nothing_are_dropped_also_with_a_prefix():
    assert is_stopword("ויש") and is_stopword("שלכם") and is_stopword("כמה")
    assert content_words("יש לכם חניה?") == [["חניה"]]
