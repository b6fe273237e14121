"""Grounded answers end to end: whole calls through the emulator to the line on the OpenAI engines
and the local stand-in (the real `openai` client), its "model" reading the facts from the
system prompt. A price is said from the facts; a question outside them is answered "I don't
know" with an offer and noted once for the owner; a price the model makes up is never heard."""

from __future__ import annotations

import time

import pytest

from eval.lines import start_line
from eval.model import INVENTED
from eval.run import records
from ivr.facts.figures import figures
from ivr.phrases import CHECK_BACK, DONT_KNOW
from ivr.sim.script import CallerScript
from tests.providers import Called

pytestmark = pytest.mark.live  # rings whole calls through the emulator


@pytest.fixture(name="line")
def openai_line():
    line = start_line("openai")
    line.gaps = []
    line.runtime.dialog.on_gap = lambda call_sid, question, why: line.gaps.append(
        (call_sid, question, why))
    yield line
    line.close()


def call(line, *said: str):
    """Ring the line, say each sentence in turn, hang up; (the call's result, its turns, what
    the line said by its history, the texts the line had synthesised: numbers in words)."""
    script = CallerScript.from_dict({"steps": [{"say": s} for s in said]})
    result = line.carrier.place_call(script)
    turns, history = records(line, result.call_sid, len(said))
    spoken = [r["json"]["input"] for r in line.provider.requests
              if r["path"] == "/v1/audio/speech"]
    return result, turns, history, spoken


def events(line, call_sid: str, kind: str) -> list[dict]:
    deadline = time.monotonic() + 10
    while True:
        found = [e for e in line.store.events(call_sid) if e["kind"] == kind]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_a_price_is_answered_from_the_facts(line):
    result, turns, history, spoken = call(line, "כמה עולה תספורת?")
    (turn,) = turns
    assert "80" in turn["reply_text"] and "80" in history[-1]
    assert any("80" in figures(text) for text in spoken)  # synthesised (in words), so heard
    prompt = next(r["json"] for r in line.provider.requests
                  if r["path"] == "/v1/chat/completions")["messages"][0]["content"]
    assert "תספורת: 80 ₪" in prompt  # the model read it there
    assert line.gaps == [] and not events(line, result.call_sid, "FIGURE_UNSUPPORTED")


def test_a_question_outside_the_facts_is_not_known_offered_and_noted_once(line):
    result, turns, history, _ = call(line, "אתם עושים גם מניקור ופדיקור?")
    (turn,) = turns
    assert "אין לי מידע" in turn["reply_text"] and "הודעה" in turn["reply_text"]
    assert line.gaps == [(result.call_sid, "אתם עושים גם מניקור ופדיקור?", "not in the facts")]


def test_a_price_the_model_makes_up_is_never_heard(line):
    result, turns, history, spoken = call(line, "שמעתי שיש אצלכם מבצע, כמה זה עולה?")
    (turn,) = turns
    assert turn["reply_text"] == CHECK_BACK and history[-1] == CHECK_BACK
    assert not any("60" in figures(text) for text in spoken)  # never synthesised: never heard
    assert not any("60" in m["text"] for m in line.store.history(result.call_sid))
    (event,) = events(line, result.call_sid, "FIGURE_UNSUPPORTED")
    assert event["detail"]["figure"] == "60" and event["detail"]["chunk"] == INVENTED
    assert line.gaps == [(result.call_sid, "שמעתי שיש אצלכם מבצע, כמה זה עולה?",
                          "unsupported figure")]


def test_a_model_that_only_calls_cannot_answer_still_says_it_does_not_know(line):
    line.provider.model = lambda body: [Called("cannot_answer", {"question": "יש מניקור?"})]
    result, turns, history, _ = call(line, "יש לכם מניקור?")
    (turn,) = turns
    assert turn["reply_text"] == DONT_KNOW and history[-1] == DONT_KNOW
    assert line.gaps == [(result.call_sid, "יש לכם מניקור?", "not in the facts")]
