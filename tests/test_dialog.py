"""One turn: fallbacks for every failing stage, dedup of caller and reply, timings, leads."""

import json

import pytest

from ivr.dialog import Dialog
from ivr.engines import Engines
from ivr.engines.base import HANG_UP, LLM, TRANSFER
from ivr.engines.fake import FakeASR, FakeLLM, FakeTTS
from ivr.engines.scripted import ScriptedLLM
from ivr.eventlog import EventLog
from ivr.owner import BusinessHours, Owner
from ivr.phrases import DEDUP_REPLY, LLM_FALLBACK, REPEAT_PROMPT
from ivr.store import Store
from ivr.tts_cache import TTSCache

from .conftest import make_settings, wait_until

SID = "CA" + "7" * 32
PCM = b"\x00\x10" * 4000


ROOMY_SEC = 30.0  # a stage timeout no healthy fake engine meets, however loaded the machine
QUICK_SEC = 0.5  # the timeout of a stage a test stalls for good


@pytest.fixture
def make_dialog(tmp_path):
    def build(timeouts: dict | None = None, owner: Owner | None = None, on_lead=None,
              on_late_turn=None, on_gap=None, **engines):
        limits = {"asr_timeout_sec": ROOMY_SEC, "llm_timeout_sec": ROOMY_SEC,
                  "tts_timeout_sec": ROOMY_SEC, **(timeouts or {})}
        settings = make_settings(tmp_path).replace(dedup_window_sec=14, **limits)
        store = Store(settings.database_url)
        store.ensure_call(SID, from_number="+972501112233")
        parts = {"asr": FakeASR(["מה שעות הפתיחה?"]), "llm": FakeLLM(), "tts": FakeTTS(),
                 **engines}
        cache = TTSCache(settings.tts_dir)
        return Dialog(settings, store, EventLog(store), Engines(**parts), cache, owner,
                      on_lead, on_late_turn, on_gap=on_gap), store
    return build


def kinds(store):
    return [e["kind"] for e in store.events(SID)]


def test_a_turn_records_texts_audio_and_stage_milliseconds(make_dialog):
    dialog, store = make_dialog()
    outcome = dialog.run_turn(SID, 1, pcm=PCM)
    assert outcome.user_text == "מה שעות הפתיחה?" and outcome.reply_text.startswith("תשובה 1")
    assert outcome.audio.is_file() and outcome.fallback == ""
    row = store.turns(SID)[0]
    assert row["user_text"] == "מה שעות הפתיחה?" and row["audio_url"] == outcome.audio_name
    assert row["utterance_ms"] == 500 and row["total_ms"] >= row["tts_ms"] >= 0
    assert {"ASR_TEXT", "HEBREW_SPEECH", "TURN"} <= set(kinds(store))


@pytest.mark.parametrize("engine,expected,event", [
    ("asr", REPEAT_PROMPT, "ASR_ERR"), ("llm", LLM_FALLBACK, "LLM_ERR")])
@pytest.mark.parametrize("how", ["fail", "timeout"])
def test_a_failing_or_slow_stage_gives_the_fallback_phrase(make_dialog, stall, engine,
                                                           expected, event, how):
    broken = {"asr": FakeASR(fail=how == "fail"), "llm": FakeLLM(fail=how == "fail")}[engine]
    if how == "timeout":
        stall(broken, engine)  # never answers: only the stage timeout can end the wait
    dialog, store = make_dialog({f"{engine}_timeout_sec": QUICK_SEC}, **{engine: broken})
    outcome = dialog.run_turn(SID, 1, pcm=PCM)
    assert stall.answered == 0  # the turn came back while the engine was still busy
    assert stall.entered == (1 if how == "timeout" else 0)
    assert outcome.reply_text == expected and outcome.audio.is_file()
    assert outcome.fallback == f"{engine}-error" and event in kinds(store)
    if how == "timeout":
        err = [e for e in store.events(SID) if e["kind"] == event][0]["detail"]["err"]
        assert f"{engine} took longer than {QUICK_SEC:g} s" in err


def test_tts_timeout_plays_the_beep(make_dialog, stall):
    dialog, store = make_dialog({"tts_timeout_sec": QUICK_SEC}, tts=stall(FakeTTS(), "tts"))
    outcome = dialog.run_turn(SID, 1, pcm=PCM)
    assert stall.entered == 1 and stall.answered == 0
    assert outcome.audio.name == "beep.mp3" and "TTS_ERR" in kinds(store)


def test_empty_transcript_asks_to_repeat(make_dialog):
    dialog, _ = make_dialog(asr=FakeASR([""]))
    assert dialog.run_turn(SID, 1, pcm=PCM).reply_text == REPEAT_PROMPT


def test_no_asr_engine_asks_to_repeat(make_dialog):
    dialog, _ = make_dialog(asr=None)
    outcome = dialog.run_turn(SID, 1, pcm=PCM)
    assert outcome.reply_text == REPEAT_PROMPT and outcome.fallback == "no-asr-engine"


def test_the_same_caller_text_within_the_window_is_ignored(make_dialog):
    dialog, store = make_dialog(asr=FakeASR(["אותו דבר"]))
    assert not dialog.run_turn(SID, 1, pcm=PCM).skipped
    assert dialog.run_turn(SID, 2, pcm=PCM).skipped
    assert [e["detail"]["kind"] for e in store.events(SID) if e["kind"] == "DEDUP"] == ["user"]
    dialog.s = dialog.s.replace(dedup_window_sec=0)
    assert not dialog.run_turn(SID, 3, pcm=PCM).skipped


def test_a_repeated_reply_is_replaced(make_dialog):
    class SameReply(FakeLLM):
        def reply(self, history, text):
            return "אותה תשובה"
    dialog, store = make_dialog(asr=FakeASR(["א", "ב", "ג"]), llm=SameReply())
    replies = [dialog.run_turn(SID, n, pcm=PCM).reply_text for n in (1, 2, 3)]
    assert replies == ["אותה תשובה", DEDUP_REPLY, "אותה תשובה"]
    assert "DEDUP" in kinds(store)


def test_history_carries_over_between_turns(make_dialog):
    dialog, store = make_dialog(asr=FakeASR(["א", "ב"]))
    dialog.run_turn(SID, 1, pcm=PCM)
    second = dialog.run_turn(SID, 2, pcm=PCM)
    assert second.reply_text.startswith("תשובה 2")
    assert [m["role"] for m in store.history(SID)] == ["user", "assistant"] * 2


def test_a_turn_is_in_the_history_before_its_reply_can_end(make_dialog):
    """A fast caller (a Gather client answering at once) may start the next turn the moment the
    reply's last answer can be made, before the line notes that it played: that turn reads a
    history holding the turn before, and the message left across the turns is kept."""
    dialog, store = make_dialog(llm=ScriptedLLM())
    outcomes = []
    for turn, text in enumerate(("אני רוצה לדבר עם נציג", "יוסי לוי", "0541234567",
                                 "בעיה בהזמנה"), start=1):
        outcome = dialog.start_turn(SID, turn, text=text, source="gather")
        outcomes.append(outcome)
        reply = outcome.reply
        wait_until(lambda r=reply: r.ends_at(len(r.ready_from(0))))  # its last answer: ready
        history = store.history(SID)
        assert [m["text"] for m in history[-2:]] == [text, reply.text]
    for outcome in outcomes:
        outcome.reply.audio_out()  # played (the webhook notes it after answering)
        outcome.reply.recorded.wait(ROOMY_SEC)
    (lead,) = store.leads()
    assert (lead["name"], lead["phone"]) == ("יוסי לוי", "0541234567")
    assert [m["role"] for m in store.history(SID)] == ["user", "assistant"] * 4


def test_a_message_for_a_person_is_saved_as_a_lead(make_dialog):
    dialog, store = make_dialog(llm=ScriptedLLM())
    for text in ("אני רוצה לדבר עם נציג", "יוסי לוי", "0541234567", "בעיה בהזמנה"):
        dialog.run_turn(SID, 1, text=text, source="gather")
    (lead,) = store.leads()
    assert (lead["name"], lead["phone"], lead["reason"], lead["caller"]) == (
        "יוסי לוי", "0541234567", "בעיה בהזמנה", "+972501112233")
    assert "LEAD" in kinds(store)


OPEN = Owner(phone="+972501234567", hours=BusinessHours())  # no hours in the flow: any time
CLOSED = Owner(phone="+972501234567", hours=BusinessHours(week={n: [] for n in range(7)}))


def test_asking_for_a_person_in_hours_says_so_and_ends_the_reply_in_a_transfer(make_dialog):
    dialog, store = make_dialog(llm=ScriptedLLM(), owner=OPEN)
    outcome = dialog.run_turn(SID, 1, text="0", source="gather")  # the person intent's key
    assert outcome.reply_text == OPEN.transferring and outcome.reply.ending == "transfer"
    (turn,) = [e for e in store.events(SID) if e["kind"] == "TURN"]
    assert turn["detail"]["ending"] == "transfer"


@pytest.mark.parametrize("owner", [CLOSED, Owner()], ids=["out-of-hours", "no-owner-phone"])
def test_asking_for_a_person_out_of_hours_takes_a_message_instead(make_dialog, owner):
    dialog, store = make_dialog(llm=ScriptedLLM(), owner=owner)
    outcome = dialog.run_turn(SID, 1, text="אני רוצה לדבר עם נציג", source="gather")
    assert outcome.reply_text == "בשמחה, אשאיר הודעה לצוות. מה השם שלך?"
    assert outcome.reply.ending == "" and "TRANSFER_DECLINED" in kinds(store)


def test_a_goodbye_is_said_then_the_reply_ends_the_call(make_dialog):
    dialog, _ = make_dialog(llm=ScriptedLLM(), owner=OPEN)
    outcome = dialog.run_turn(SID, 1, text="תודה רבה, להתראות", source="gather")
    assert outcome.reply_text == "תודה שהתקשרתם, יום טוב!" and outcome.reply.ending == "hangup"


class ActionOnly(LLM):
    """An LLM that only calls a tool, writing no text (the dialog speaks for it)."""

    def __init__(self, action):
        self.action = action

    def reply_tokens(self, history, text):
        yield self.action


@pytest.mark.parametrize("action, owner, said, ending", [
    (HANG_UP, OPEN, OPEN.goodbye, "hangup"),
    (TRANSFER, OPEN, OPEN.transferring, "transfer"),
    (TRANSFER, CLOSED, CLOSED.take_message, "")])
def test_an_action_without_words_gets_the_lines_own_sentence(make_dialog, action, owner, said,
                                                             ending):
    dialog, _ = make_dialog(llm=ActionOnly(action), owner=owner)
    outcome = dialog.run_turn(SID, 1, text="מה?", source="gather")
    assert (outcome.reply_text, outcome.reply.ending, outcome.fallback) == (said, ending, "")


def test_each_message_left_is_handed_to_the_owners_notifications(make_dialog):
    told = []
    dialog, _ = make_dialog(llm=ScriptedLLM(), on_lead=lambda sid, lead: told.append((sid, lead)))
    for text in ("אני רוצה לדבר עם נציג", "יוסי לוי", "0541234567", "בעיה בהזמנה"):
        dialog.run_turn(SID, 1, text=text, source="gather")
    assert told == [(SID, {"name": "יוסי לוי", "phone": "0541234567", "reason": "בעיה בהזמנה"})]


def test_a_message_s_answer_kept_after_the_call_ended_has_the_owner_told_again(make_dialog):
    """The caller gave their name and hung up while it was heard: call_status came first."""
    told = []
    flow = ScriptedLLM()
    dialog, store = make_dialog(llm=flow, on_late_turn=told.append)
    store.update_call(SID, history=json.dumps([{"role": "assistant",
                                                "text": flow.lead_texts["ask_name"]}]))
    dialog.run_turn(SID, 2, text="מה שעות הפתיחה?", source="gather")  # the call goes on: not told
    dialog.calls.end(SID, "completed", 20)
    store.update_call(SID, history=json.dumps([{"role": "assistant",
                                                "text": flow.lead_texts["ask_name"]}]))
    dialog.run_turn(SID, 3, text="דנה כהן", source="gather")
    assert told == [SID]
    assert flow.partial_lead(store.history(SID)) == {"name": "דנה כהן", "phone": "",
                                                     "reason": ""}


def test_a_question_the_line_cannot_answer_is_handed_to_the_owners_inbox(make_dialog):
    told = []
    dialog, _ = make_dialog(llm=ScriptedLLM(), on_gap=lambda *gap: told.append(gap))
    dialog.run_turn(SID, 1, text="מה שעות הפתיחה?", source="gather")  # answered: no gap
    outcome = dialog.run_turn(SID, 2, text="אתם מוכרים כרטיסי מתנה לחתונה?", source="gather")
    assert outcome.reply_text == ScriptedLLM().flow["clarify"]
    assert told == [(SID, "אתם מוכרים כרטיסי מתנה לחתונה?", "not understood")]


def test_a_failed_answer_is_a_gap_and_a_failing_inbox_does_not_stop_the_call(make_dialog):
    def broken_inbox(*gap):
        raise OSError("disk full")
    dialog, store = make_dialog(llm=FakeLLM(fail=True), on_gap=broken_inbox)
    outcome = dialog.run_turn(SID, 1, text="כמה עולה תספורת?", source="gather")
    assert outcome.fallback == "llm-error" and outcome.audio.is_file()
    assert "GAP_ERR" in kinds(store)
