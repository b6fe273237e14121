"""The owner's inbox on SQLite and PostgreSQL: questions grouped by their Hebrew words, one row
per call and group even across instances, no row for words that ask nothing, and the owner's
answer in the facts of the next look on any instance."""

from __future__ import annotations

import threading

import pytest

from ivr.cli import facts_line
from ivr.eventlog import EventLog
from ivr.facts.facts import LiveFacts
from ivr.facts.gaps import MIN_SIMILARITY, Inbox, is_question, question_words, similarity
from ivr.facts.retrieval import Lookup
from ivr.store import Store

from ..conftest import database_url, make_settings
from .samples import facts_file

CALL_A, CALL_B, CALL_C = ("CA" + c * 32 for c in "abc")

SAME = [  # paraphrases a caller may use: one question for the owner
    ("אתם עושים החלקה יפנית?", "יש אצלכם החלקה יפנית?"),
    ("אתם עושים החלקה יפנית?", "שאלתי אם יש אצלכם החלקה יפנית"),
    ("עושים אצלכם החלקת שיער?", "אתם עושים החלקה?"),  # construct state: החלקת/החלקה
    ("יש לכם שוברי מתנה?", "אפשר לקנות אצלכם שובר מתנה?"),  # שוברי/שובר
    ("יש לכם הנחה לסטודנטים?", "מגיעה הנחה לסטודנטים?"),
    ("יש לכם חניה?", "ואיפה החניה?"),  # a prefix: ו, ה
    ("אפשר להגיע עם כלבים?", "מותר להגיע עם כלב?"),  # the plural: כלבים/כלב
]
DIFFERENT = [  # questions an answer to one would answer the other wrongly
    ("יש לכם הנחה לסטודנטים?", "יש לכם הנחה לחיילים?"),
    ("אתם עושים החלקה יפנית?", "אתם עושים תספורת לכלבים?"),  # only the verb in common
    ("כמה עולה משלוח לאילת?", "כמה עולה החלקה יפנית?"),
    ("יש לכם וויפיי?", "יש לכם מזגן?"),
    ("אתם מוכרים כרטיסי מתנה?", "אתם מוכרים מוצרי שיער?"),
    ("יש לכם חניה?", "יש לכם הנחה לחיילים?"),
]
NOT_QUESTIONS = ["כן", "אה", "אממ...", "לא", "אוקיי", "0521234567", "1 2 3", "...", "בסדר תודה",
                 "uh", ""]


@pytest.mark.parametrize("first,second", SAME)
def test_paraphrases_are_one_question(first, second):
    score = similarity(question_words(first), question_words(second))
    assert score >= MIN_SIMILARITY, (first, second, score)


@pytest.mark.parametrize("first,second", DIFFERENT)
def test_different_questions_stay_apart(first, second):
    score = similarity(question_words(first), question_words(second))
    assert score < MIN_SIMILARITY, (first, second, score)


@pytest.mark.parametrize("words", NOT_QUESTIONS)
def test_words_that_ask_nothing_are_no_question(words):
    assert not is_question(words)


@pytest.fixture
def store(tmp_path):
    opened = Store(database_url(tmp_path))
    yield opened
    opened.close()


@pytest.mark.usefixtures("database")
class TestTheInbox:
    def test_questions_are_grouped_and_counted_once_per_call(self, store):
        inbox = Inbox(store, EventLog(store))
        first = inbox.record(CALL_A, "אתם עושים החלקה יפנית?", "not understood")
        assert first is not None
        assert inbox.record(CALL_A, "שאלתי אם יש אצלכם החלקה יפנית", "not understood") is None
        assert inbox.record(CALL_B, "יש אצלכם החלקה יפנית?", "not understood") == first
        other = inbox.record(CALL_B, "יש לכם הנחה לחיילים?", "the line failed to answer")
        assert other not in (None, first)
        for words in NOT_QUESTIONS:
            assert inbox.record(CALL_C, words, "not understood") is None
        groups = inbox.groups()
        assert [(g.id, g.calls) for g in groups] == [(other, 1), (first, 2)]  # newest first
        assert groups[1].examples == ["יש אצלכם החלקה יפנית?", "אתם עושים החלקה יפנית?"]
        assert groups[1].call_sids == [CALL_B, CALL_A]
        assert groups[0].why == "the line failed to answer"
        assert [(e["kind"], e["detail"]) for e in store.events(CALL_A)] == [
            ("GAP", {"group": first, "why": "not understood"})]  # in the call's timeline

    def test_instances_asking_at_once_keep_one_row_per_call_and_one_group(self, tmp_path,
                                                                           database):
        """Four instances (a store each) record the same call's question, and other calls'
        paraphrases, at the same moment: one group, one row per call."""
        if database == "sqlite":
            pytest.skip("several instances share PostgreSQL; SQLite serves one process")
        stores = [Store(database_url(tmp_path)) for _ in range(4)]
        gate = threading.Barrier(8)
        asked = [(CALL_A, "אתם עושים החלקה יפנית?"), (CALL_A, "יש אצלכם החלקה יפנית?")] * 2 \
            + [(CALL_B, "יש אצלכם החלקה יפנית?"), (CALL_C, "עושים החלקה יפנית?")] * 2

        def ask(n: int) -> None:
            gate.wait()
            Inbox(stores[n % 4]).record(*asked[n], "not understood")
        workers = [threading.Thread(target=ask, args=(n,)) for n in range(8)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        (group,) = Inbox(stores[0]).groups()
        assert group.calls == 3 and sorted(group.call_sids) == [CALL_A, CALL_B, CALL_C]
        for opened in stores:
            opened.close()

    def test_the_owners_answer_is_in_the_facts_of_the_next_look_on_any_instance(
            self, tmp_path, store):
        settings = make_settings(tmp_path, facts_file=str(facts_file(tmp_path)))
        facts = LiveFacts.from_settings(settings)  # another instance's: its own connection
        lookup = Lookup(facts)
        before = facts.current()
        assert facts.current() is before  # nothing changed: nothing rebuilt
        assert lookup("אתם עושים החלקה יפנית?") is None
        inbox = Inbox(store)
        group = inbox.record(CALL_A, "אתם עושים החלקה יפנית?", "not understood")
        inbox.record(CALL_B, "יש אצלכם החלקה יפנית?", "not understood")
        assert facts.current() is before  # a question without an answer is no fact
        answer = "כן, החלקה יפנית ב-600 ש\"ח, כשלוש שעות."
        assert inbox.answer(group, answer)
        now = facts.current()
        assert now is not before and now.from_inbox == 1 and "600" in now.figures
        assert facts_line(facts).endswith("passages from " + settings.facts_file
                                          + ", 1 answer from the inbox")  # `check` says so
        passage = lookup("עושים אצלכם החלקה יפנית?")
        assert (passage.text, passage.source) == (answer, f"inbox:{group}")
        assert passage.title == "אתם עושים החלקה יפנית? / יש אצלכם החלקה יפנית?"
        assert facts.current() is now
        inbox.answer(group, "")  # removed: no longer a fact
        assert facts.current().from_inbox == 0 and lookup("אתם עושים החלקה יפנית?") is None
        inbox.answer(group, "כן, 650 ש\"ח.")
        assert lookup("אתם עושים החלקה יפנית?").text == "כן, 650 ש\"ח."
        assert inbox.delete(group) and facts.current().from_inbox == 0
        assert inbox.groups() == []

    def test_unanswered_groups_asked_in_a_day_most_asked_first(self, store):
        inbox = Inbox(store)
        import time
        start = time.time()
        one = inbox.record(CALL_A, "יש לכם וויפיי?", "not understood")
        two = inbox.record(CALL_A, "אתם עושים החלקה יפנית?", "not understood")
        inbox.record(CALL_B, "יש אצלכם החלקה יפנית?", "not understood")
        three = inbox.record(CALL_C, "יש לכם מזגן?", "not understood")
        inbox.answer(three, "כן, בכל החדרים.")
        asked = inbox.asked_between(start, time.time() + 1)
        assert [(g.id, n) for g, n in asked] == [(two, 2), (one, 1)]
        assert inbox.asked_between(time.time() + 1, time.time() + 2) == []
