"""Retrieval over the facts: a Hebrew question finds the passage that answers it, with or
without its prefixes, and a question about something else finds nothing."""

import os

import pytest

from ivr.facts.facts import LiveFacts, Passage
from ivr.facts.retrieval import Lookup, Retriever

from .samples import LINES, facts_file


@pytest.fixture(scope="module")
def lookup(tmp_path_factory):
    return Lookup(LiveFacts(facts_file(tmp_path_factory.mktemp("facts"))))


@pytest.mark.parametrize("question, entry", [
    ("יש חניה?", "parking"),
    ("יש חניה ליד העסק?", "parking"),  # "the business", "near": every question's
    ("יש לכם חניון?", "parking"),
    ("ובמחירים של צבע שורשים?", "services.1"),
    ("כמה עולה תספורת גברים?", "services.0"),
    ("אפשר לבוא עם הכלב שלי?", "qa.0"),
    ("יש הנחה לחיילים?", "qa.1"),
    ("אפשר לשלם בביט?", "policies.1"),
    ("מה לגבי ביטול תור?", "policies.0"),
    ("מתי אתם פתוחים בשישי?", "hours"),
    ("מה הכתובת שלכם?", "address"),
    ("מה מזג האוויר מחר?", None),
    ("אתם מוכרים אופניים?", None),
    ("יש לכם פיצה משפחתית?", None),
    ("מי ניצח במשחק אתמול?", None),
    ("שלום, מה שלומך?", None),
    ("כן", None),
])
def test_a_question_finds_the_passage_that_answers_it_or_none(lookup, question, entry):
    found = lookup(question)
    assert (found.source if found else None) == (
        (f"facts.yaml:{LINES[entry]}" if entry != "qa.1" else "https://example.co.il/soldiers")
        if entry else None)


def test_a_word_with_prefixes_finds_the_word_without_them():
    passages = [Passage("המחירים שלנו מתעדכנים כל שנה בינואר.", "a"),
                Passage("החנות סגורה בחגים.", "b"), Passage("המשלוחים יוצאים בימי שני.", "c"),
                Passage("הצוות שלנו מקצועי ואדיב.", "d")]
    assert Retriever(passages).best("ובמחירים?") == passages[0]
    assert Retriever(passages).best("שהחנות בחגים?") == passages[1]
    assert Retriever(passages).best("ומשלוחים?") == passages[2]


def test_one_passage_alone_is_found_and_an_empty_facts_file_finds_nothing():
    only = Passage("יש חניה ברחוב.", "facts.yaml:1", "חניה")
    assert Retriever([only]).best("יש חניה?") == only
    assert Retriever([]).best("יש חניה?") is None


def test_the_lookup_follows_an_edit_of_the_facts(tmp_path):
    path = facts_file(tmp_path)
    lookup = Lookup(LiveFacts(path))
    assert lookup("אפשר להגיע עם חתול?") is None
    path.write_text(path.read_text(encoding="utf-8") + '  - q: "אפשר להגיע עם חתול?"\n'
                    '    a: "חתולים לא, סליחה."\n', encoding="utf-8")
    info = os.stat(path)
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 10**9))
    assert lookup("אפשר להגיע עם חתול?").text == "חתולים לא, סליחה."
