"""The reply begun before the caller's turn ended (DRAFT_REPLY): used when the turn's words and
the history are those it was begun on (the LLM asked once), else thrown away (its reading
stops); nothing of a draft is done, synthesised or said before its turn takes it."""

import json
import queue
import threading

from ivr.booking.tools import BookingTools
from ivr.draft import Draft, DraftDropped, DraftTools
from ivr.engines.base import LLM, UNANSWERED
from ivr.engines.fake import FakeASR, FakeTTS

from . import test_dialog
from .booking import test_tools
from .booking.test_tools import CALLER, KEY
from .conftest import wait_until
from .test_dialog import PCM, SID

make_dialog, desks = test_dialog.make_dialog, test_tools.desks  # their fixtures

WORDS = "מה שעות הפתיחה"  # the live words so far
SAID = "מה שעות הפתיחה?"  # the final transcript: the same words


class QueuedLLM(LLM):
    """Writes what the test puts in each request's queue (None ends it); keeps the text each
    request was asked with, and which requests were closed before their end."""

    def __init__(self):
        self.asked: list[str] = []
        self.feeds: list[queue.Queue] = []
        self.closed: list[int] = []

    def reply_tokens(self, history, text):
        feed: queue.Queue = queue.Queue()
        self.feeds.append(feed)
        self.asked.append(text)
        number = len(self.asked) - 1
        try:
            while (piece := feed.get(timeout=120)) is not None:
                yield piece
        except GeneratorExit:
            self.closed.append(number)
            raise


def draft_events(store):
    return [{k: e["detail"].get(k) for k in ("result", "why", "text", "chars")}
            for e in store.events(SID) if e["kind"] == "DRAFT"]


def finish(outcome):
    outcome.reply.unwatched()
    assert outcome.reply.recorded.wait(120)
    return outcome


def test_a_draft_on_the_same_words_is_the_reply_and_the_llm_is_asked_once(make_dialog):
    llm, tts = QueuedLLM(), FakeTTS()
    dialog, store = make_dialog(asr=FakeASR([SAID]), llm=llm, tts=tts)
    draft = dialog.begin_draft(SID, WORDS)
    wait_until(lambda: llm.asked == [WORDS])
    llm.feeds[0].put("פתוח ")
    wait_until(lambda: draft.reading.chars == 5)
    assert tts.calls == 0  # nothing synthesised before the turn ends
    outcome = dialog.start_turn(SID, 1, pcm=PCM)
    llm.feeds[0].put("עד שמונה בערב.")
    llm.feeds[0].put(None)
    finish(outcome)
    assert llm.asked == [WORDS]  # not asked again
    assert outcome.user_text == SAID and outcome.reply_text == "פתוח עד שמונה בערב."
    assert outcome.fallback == "" and outcome.audio.is_file()
    assert draft_events(store) == [{"result": "used", "why": None, "text": WORDS, "chars": 5}]
    assert outcome.ms["llm_first"] >= outcome.ms["asr"]  # the first delta taken after the ASR


def test_other_words_drop_the_draft_its_reading_stops_and_the_llm_is_asked_again(make_dialog):
    llm = QueuedLLM()
    dialog, store = make_dialog(asr=FakeASR(["מה שעות הפתיחה ביום שישי?"]), llm=llm)
    draft = dialog.begin_draft(SID, WORDS)
    wait_until(lambda: len(llm.asked) == 1)
    outcome = dialog.start_turn(SID, 1, pcm=PCM)
    wait_until(lambda: len(llm.asked) == 2)
    assert llm.asked[1] == "מה שעות הפתיחה ביום שישי?"
    llm.feeds[0].put("פתוח עד שמונה.")  # the dropped draft's next delta: its reader stops
    wait_until(lambda: llm.closed == [0])
    assert draft.reading.over.is_set() and draft.reading.chars == 0
    llm.feeds[1].put("ביום שישי עד שתיים.")
    llm.feeds[1].put(None)
    assert finish(outcome).reply_text == "ביום שישי עד שתיים."
    assert draft_events(store) == [
        {"result": "dropped", "why": "other-words", "text": WORDS, "chars": 0}]


def test_a_draft_begun_before_the_history_moved_is_dropped(make_dialog):
    llm = QueuedLLM()
    dialog, store = make_dialog(asr=FakeASR([SAID]), llm=llm)
    dialog.begin_draft(SID, WORDS)
    wait_until(lambda: len(llm.asked) == 1)
    dialog.note_said(SID, "הבעלים לא ענה")  # the line said something meanwhile
    outcome = dialog.start_turn(SID, 1, pcm=PCM)
    wait_until(lambda: len(llm.asked) == 2)
    llm.feeds[1].put("פתוח עד שמונה.")
    llm.feeds[1].put(None)
    assert finish(outcome).reply_text == "פתוח עד שמונה."
    assert [e["why"] for e in draft_events(store)] == ["history-moved"]


def test_a_drafts_actions_wait_for_its_turn_and_a_dropped_ones_are_never_done(make_dialog):
    gaps = []
    llm = QueuedLLM()
    dialog, store = make_dialog(asr=FakeASR([SAID]), llm=llm,
                                on_gap=lambda *gap: gaps.append(gap))
    dropped = dialog.begin_draft(SID, "מתי אתם פתוחים")
    wait_until(lambda: len(llm.asked) == 1)
    for piece in (UNANSWERED, "אין לי תשובה לזה.", None):
        llm.feeds[-1].put(piece)
    wait_until(dropped.reading.over.is_set)
    taken = dialog.begin_draft(SID, WORDS)  # the words changed: the first draft is dropped
    wait_until(lambda: len(llm.asked) == 2)
    for piece in (UNANSWERED, "אין לי תשובה לזה.", None):
        llm.feeds[-1].put(piece)
    wait_until(taken.reading.over.is_set)
    assert gaps == [] and store.turns(SID) == []  # nothing done for either yet
    outcome = finish(dialog.start_turn(SID, 1, pcm=PCM))
    assert outcome.reply_text == "אין לי תשובה לזה."
    assert gaps == [(SID, SAID, "not understood")]  # the used draft's action, once
    assert [(e["result"], e["why"]) for e in draft_events(store)] == [
        ("dropped", "other-words"), ("used", None)]


def test_a_drafts_change_of_the_desk_waits_for_its_turn(desks):
    desk = desks[0]

    def book(draft):
        tools = DraftTools.of(BookingTools(desk, SID, CALLER, KEY), draft)
        found = json.loads(tools.run("find_free_times", json.dumps(
            {"service": "תספורת", "when_words": "מחר בעשר"})))  # looking up: at once
        (slot,) = found["slots"]
        result = []

        def run():
            try:
                result.append(json.loads(tools.run("book", json.dumps(
                    {"slot_id": slot["slot_id"], "name": "דני"}))))
            except DraftDropped as exc:
                result.append(exc)
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread, result

    dropped = Draft(SID, WORDS)
    thread, result = book(dropped)
    thread.join(0.2)
    assert result == [] and desk.of_caller(CALLER) == []  # held while the draft is undecided
    dropped.decide(False)
    thread.join(60)
    assert isinstance(result[0], DraftDropped) and desk.of_caller(CALLER) == []
    used = Draft(SID, WORDS)
    thread, result = book(used)
    used.decide(True)
    thread.join(60)
    assert result[0]["booked"] is True and len(desk.of_caller(CALLER)) == 1
