"""A caller books a haircut through the emulator with the OpenAI engines: the model (scripted, on
the local OpenAI server) calls find_free_times with the caller's words, the code resolves them and
answers in words with slot ids, the model reads the time back, and after "כן" calls book with the
slot id it was given a turn before; the appointment row exists. A taken time: the next offered."""

from __future__ import annotations

import itertools
import json
import threading

import pytest

from ivr.engines.scripted import DEFAULT_FLOW
from ivr.phrases import LLM_FALLBACK

from ..conftest import wait_until
from ..providers import (  # noqa: F401 - plain_provider: the fixture
    SPEECH_API_LAST_DAY,
    Called,
    plain_provider,
)
from .rules import at, clocks

NOW = at("2026-03-29", "09:00")  # a Sunday morning: "מחר" is Monday the 30th of March
ASKED = "אני רוצה לקבוע תור לתספורת מחר בעשר"
CALLER, OTHER = "+972501234567", "+972509999999"


def receptionist(body: dict) -> list:
    """A model that books as the system prompt says: the times from find_free_times only, read
    back, then book with the slot id once the caller said yes."""
    messages = body["messages"]
    last = messages[-1]
    results = [json.loads(m["content"]) for m in messages if m["role"] == "tool"]
    if last["role"] == "tool":
        result = results[-1]
        if "booked" in result:
            return [f"קבעתי לך תספורת {result['said']}. תודה ולהתראות!"]
        first = result["slots"][0]["said"]
        return [("השעה הזו תפוסה. " if "not_free" in result else "") + f"יש תור {first}. לקבוע?"]
    if "לתספורת" in last["content"]:
        words = last["content"].split("לתספורת", 1)[1].strip()
        return [Called("find_free_times", {"service": "תספורת", "when_words": words})]
    if last["content"].startswith("כן"):
        offered = [r for r in results if r.get("slots")][-1]["slots"][0]
        return [Called("book", {"slot_id": offered["slot_id"], "name": ""})]
    return ["במה אפשר לעזור?"]


def two_answers(line, call_sid: str) -> list[dict] | None:
    """The call's two answered turns, once both are recorded."""
    answered = [t for t in line.store.turns(call_sid) if t["user_text"]]
    return answered if len(answered) == 2 else None


@pytest.mark.parametrize("taken, booked_at", [(False, "10:00"), (True, "10:45")])
def test_a_caller_books_a_haircut_by_voice_with_the_openai_engine(phone_line, provider, taken,
                                                                 booked_at):
    provider.today = SPEECH_API_LAST_DAY
    provider.model = receptionist
    provider.transcript = itertools.chain([ASKED, "כן"], itertools.repeat(""))
    line = phone_line(asr_engine="openai", llm_engine="openai", tts_engine="openai",
                      openai_tts_model="gpt-4o-mini-tts", openai_api_key="sk-test-key-123456",
                      openai_base_url=provider.url + "/v1", turn_mode="stream",
                      resp_min_delay_ms=0, resp_max_delay_ms=0)
    desk = line.runtime.desk
    desk.clock = lambda: NOW
    if taken:  # another caller has tomorrow at ten
        desk.book(desk.service("תספורת"), at("2026-03-30", "10:00"), OTHER)
    result = line.carrier.place_call({"from_number": CALLER, "end": "hangup",
                                      "steps": [{"say": ASKED}, {"say": "כן"}]})
    assert result.error_codes == []
    offer, done = wait_until(lambda: two_answers(line, result.call_sid))
    said = "השעה הזו תפוסה. " if taken else ""
    assert offer["reply_text"].startswith(said + "יש תור ביום שני, השלושים במרץ, ")
    assert done["reply_text"].startswith("קבעתי לך תספורת ביום שני, השלושים במרץ, ")
    assert offer["fallback"] == done["fallback"] == ""
    (appointment,) = desk.of_caller(CALLER)
    assert clocks([appointment.start]) == [booked_at] and appointment.start.date() == \
        at("2026-03-30").date()
    assert appointment.call_sid == result.call_sid and appointment.service == "תספורת"
    chats = [r["json"] for r in provider.requests if r["path"] == "/v1/chat/completions"
             and r["json"].get("stream")]
    find = chats[1]["messages"][-2]["tool_calls"][0]
    assert json.loads(find["function"]["arguments"]) == {"service": "תספורת",
                                                        "when_words": "מחר בעשר"}
    assert "2026" not in chats[1]["messages"][-1]["content"]  # words and ids, no ISO date
    kept = line.runtime.calls.history(result.call_sid)  # the slot ids, for the next turn
    assert [m["role"] for m in next(m for m in kept if m.get("tools"))["tools"]] == [
        "assistant", "tool"]


@pytest.fixture
def stalled_desk_dialog(tmp_path, provider):
    """A Dialog on the OpenAI chat whose desk never answers (its database stuck), and a way out."""
    from ivr.booking.desk import Desk
    from ivr.dialog import Dialog
    from ivr.engines import Engines
    from ivr.engines.fake import FakeASR, FakeTTS
    from ivr.engines.openai_engines import OpenAILLM
    from ivr.eventlog import EventLog
    from ivr.flow import FlowFile
    from ivr.store import Store
    from ivr.tts_cache import TTSCache

    from ..conftest import make_settings
    settings = make_settings(tmp_path, openai_api_key="sk-test",
                             openai_base_url=provider.url + "/v1", llm_timeout_sec=1.0)
    store = Store(settings.database_url)
    desk = Desk.from_settings(settings, store, FlowFile(settings.flow_file or DEFAULT_FLOW),
                              clock=lambda: NOW)
    stuck = threading.Event()
    desk.offer = desk.free = lambda *args, **kwargs: stuck.wait(60) and []
    cache = TTSCache(settings.tts_dir)
    cache.ensure_beep()
    engines = Engines(asr=FakeASR([ASKED]), llm=OpenAILLM.from_settings(settings), tts=FakeTTS())
    yield Dialog(settings, store, EventLog(store), engines, cache, desk=desk), store
    stuck.set()
    store.close()


def test_a_desk_that_does_not_answer_still_ends_in_a_sound(stalled_desk_dialog, provider):
    dialog, store = stalled_desk_dialog
    provider.model = receptionist
    store.upsert_call("CA1", from_number=CALLER)
    outcome = dialog.run_turn("CA1", 1, text=ASKED)
    assert outcome.fallback == "llm-error" and outcome.reply.text == LLM_FALLBACK
    assert [e["kind"] for e in store.events("CA1")].count("LLM_ERR") == 1
