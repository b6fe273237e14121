"""The booking conversation turn by turn: its step kept in the call's history in the store (a
turn on another worker goes on from it), several services asked by key, an ambiguous hour asked
back, an offer chosen by voice, and the flow's booking_texts checked and shipped whole."""

from __future__ import annotations

import shutil

import pytest
import yaml

from ivr.booking.conversation import Conversation
from ivr.booking.desk import Desk
from ivr.booking.sayings import TEXTS, check_texts, said_offers
from ivr.booking.when import spoken_slot
from ivr.config import Settings
from ivr.dialog import Dialog
from ivr.engines import Engines
from ivr.engines.base import BOOK, booking_step
from ivr.engines.fake import FakeTTS
from ivr.engines.scripted import DEFAULT_FLOW, ScriptedLLM
from ivr.eventlog import EventLog
from ivr.flow import FlowFile, FlowFileError
from ivr.phrases import REPEAT_PROMPT
from ivr.store import Store
from ivr.tts_cache import TTSCache

from ..conftest import make_settings
from .rules import FLOW, at

SID = "CA" + "5" * 32
CALLER = "+972501112233"
NOW = at("2026-11-01", "09:00")  # a Sunday


def worker(tmp_path, n: int):
    """One worker's dialog on the shared database, with its own desk (the shipped flow)."""
    settings = make_settings(tmp_path).replace(flow_file=str(DEFAULT_FLOW))
    store = Store(settings.database_url)
    store.ensure_call(SID, from_number=CALLER)
    desk = Desk.from_settings(settings, store, FlowFile(DEFAULT_FLOW), clock=lambda: NOW)
    engines = Engines(asr=None, llm=ScriptedLLM(DEFAULT_FLOW), tts=FakeTTS())
    return Dialog(settings, store, EventLog(store), engines,
                  TTSCache(tmp_path / f"tts{n}"), desk=desk), store


def test_each_turn_may_land_on_another_worker_the_step_is_in_the_store(tmp_path):
    (a, store_a), (b, store_b) = worker(tmp_path, 1), worker(tmp_path, 2)
    slot = spoken_slot(at("2026-11-02", "10:00"))
    first = a.run_turn(SID, 1, text="אני רוצה לקבוע תור לתספורת מחר בעשר")
    assert first.reply_text == TEXTS["confirm"].format(service="תספורת", slot=slot)
    assert booking_step(store_b.history(SID))["step"] == "confirm"
    assert b.run_turn(SID, 2, text="").reply_text == REPEAT_PROMPT  # nothing heard: asked
    assert b.run_turn(SID, 3, text="כן").reply_text == TEXTS["ask_name"]  # …and still waits
    third = a.run_turn(SID, 4, text="דנה כהן")
    assert third.reply_text == TEXTS["booked"].format(service="תספורת", slot=slot,
                                                      name="דנה כהן")
    assert booking_step(store_a.history(SID)) is None  # the talk is over
    (booked,) = b.booking.desk.of_caller(CALLER)
    assert (booked.name, booked.call_sid) == ("דנה כהן", SID)
    for store in (store_a, store_b):
        store.close()


@pytest.fixture
def barber(tmp_path):
    """The conversation on the test barber's flow (a haircut and a colour) at NOW."""
    path = tmp_path / "flow.yaml"
    path.write_text(FLOW, encoding="utf-8")
    store = Store(f"sqlite:///{tmp_path}/line.sqlite3")
    yield Conversation(Desk.from_settings(Settings.from_env({}), store, FlowFile(path),
                                          clock=lambda: NOW))
    store.close()


def talk(conversation: Conversation, *texts: str) -> list[str]:
    """The line's replies to `texts` in turn, each step kept in the history as the dialog does."""
    history, said = [], []
    for text in texts:
        reply = conversation.turn(history, text, CALLER, SID)
        said.append(reply.text)
        history += [{"role": "user", "text": text},
                    {"role": "assistant", "text": reply.text,
                     **({"booking": reply.state} if reply.state else {})}]
    return said


def test_several_services_are_asked_by_key_and_the_request_kept(barber):
    said = talk(barber, "אני רוצה לקבוע תור מחר בעשר", "2")
    assert said[0] == TEXTS["ask_service"].format(choices="לתספורת הקישו 1, לצבע הקישו 2")
    assert said[1] == TEXTS["confirm"].format(service="צבע",
                                              slot=spoken_slot(at("2026-11-02", "10:00")))


def test_an_hour_of_morning_or_evening_is_asked_back_then_read(barber):
    said = talk(barber, "תור לתספורת ביום שלישי בשמונה", "בבוקר")
    assert said[0] == "בשמונה בבוקר או בערב?"  # when.resolve's question, asked as it is
    assert said[1] == TEXTS["confirm"].format(service="תספורת",
                                              slot=spoken_slot(at("2026-11-03", "08:00")))


def test_a_day_without_a_time_offers_its_times_and_one_is_chosen_by_voice(barber):
    said = talk(barber, "תור לתספורת ביום שלישי אחרי הצהריים", "השני")
    offered = [at("2026-11-03", t) for t in ("14:00", "14:30", "15:00")]
    assert said[0] == TEXTS["offers"].format(offers=said_offers(offered), keys="1, 2 או 3")
    assert said[1] == TEXTS["confirm"].format(service="תספורת", slot=spoken_slot(offered[1]))


def test_an_answer_not_understood_is_asked_again_once_then_the_talk_ends(barber):
    said = talk(barber, "תור לתספורת", "מה?", "בננה")
    assert said == [TEXTS["ask_when"], f"{TEXTS['again']} {TEXTS['ask_when']}",
                    TEXTS["give_up"]]


def test_the_scripted_flow_hands_booking_turns_to_the_conversation():
    flow = ScriptedLLM(DEFAULT_FLOW)
    assert list(flow.reply_tokens([], "אני רוצה לקבוע תור")) == [BOOK, ""]
    assert list(flow.reply_tokens([], "4")) == [BOOK, ""]  # the menu's key
    asked = [{"role": "assistant", "text": "לאיזה יום?", "booking": {"step": "when"}}]
    assert list(flow.reply_tokens(asked, "מחר")) == [BOOK, ""]
    assert list(flow.reply_tokens(asked, "0"))[-1] == flow.lead_texts["ask_name"]  # a person
    assert flow.reply([], "מה שעות הפתיחה?").startswith("אנחנו פתוחים")
    assert TEXTS["ask_name"] in flow.texts()  # prewarmed: said as it is
    summary = flow.summarize(asked, None).splitlines()[0]
    assert summary == "פנייה בנושא: קביעת תור"  # the owner's summary names the booking


def test_the_shipped_flow_holds_every_booking_text_and_a_wrong_one_is_named(tmp_path):
    shipped = yaml.safe_load(DEFAULT_FLOW.read_text(encoding="utf-8"))
    assert shipped["booking_texts"] == TEXTS
    with pytest.raises(FlowFileError, match="booking_texts: unknown entry confirmed"):
        check_texts({"booking_texts": {"confirmed": "כן"}})
    with pytest.raises(FlowFileError, match=r"booking_texts.booked: \{time\} is not said here"):
        check_texts({"booking_texts": {"booked": "נקבע {time}"}})
    edited = tmp_path / "flow.yaml"
    shutil.copy(DEFAULT_FLOW, edited)
    text = edited.read_text(encoding="utf-8").replace('ask_name: "על איזה שם לרשום?"',
                                                      'ask_name: "ומה השם?"')
    edited.write_text(text, encoding="utf-8")
    store = Store(f"sqlite:///{tmp_path}/line.sqlite3")
    conversation = Conversation(Desk.from_settings(Settings.from_env({}), store,
                                                   FlowFile(edited), clock=lambda: NOW))
    assert talk(conversation, "תור מחר בעשר", "כן")[-1] == "ומה השם?"
    store.close()


def test_a_day_beyond_the_days_ahead_says_how_far_and_offers_the_soonest(barber):
    (said,) = talk(barber, "תור לתספורת בעוד חודשיים")
    soonest = [at("2026-11-01", t) for t in ("10:00", "10:30", "11:00")]  # an hour's notice
    assert said == TEXTS["too_far"].format(days=30) + " " + TEXTS["offers"].format(
        offers=said_offers(soonest), keys="1, 2 או 3")
