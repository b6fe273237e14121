"""Keys and speech on a `<Gather>` line, end to end through the emulator: a menu key answers
at once, a phone number is keyed to `#`, and every part of a reply plays inside a Gather."""

import threading
import xml.etree.ElementTree as ET

from ivr.chunking import speakable_chunks
from ivr.engines.scripted import ScriptedLLM
from ivr.speakable import speakable

from .livehelpers import wait_until


def pressed_at(result, keys: str) -> float:
    return next(e["t"] for e in result.timeline
                if e["who"] == "caller" and e["text"] == f"presses {keys}")


def answered(result, path: str) -> list[dict]:
    return [r for r in result.requests_to(path) if r.get("direction") == "out"]


def plays_outside_a_gather(body: str) -> list[str]:
    """The URLs a TwiML document plays where the caller's speech and keys are not heard."""
    root = ET.fromstring(body)
    return [p.text for p in root.findall("Play")]


def test_press_1_is_answered_as_it_is_pressed_not_after_5_s(phone_line):
    line = phone_line(local=True)
    assert line.runtime.settings.turn_mode == "gather"
    result = line.carrier.place_call({"steps": [{"dtmf": "1"}], "end": "hangup"})
    assert result.error_codes == []
    gather = answered(result, "/webhook/handle_gather")[0]
    assert gather["params"]["Digits"] == "1"
    assert gather["t"] - pressed_at(result, "1") < 1.0  # the emulator's clock (it was 5 s)
    first = ET.fromstring(answered(result, "/webhook/incoming_call")[0]["body"])
    assert first.find("Gather").get("numDigits") == "1"


def test_a_phone_number_is_keyed_to_the_hash_after_the_line_asks_for_it(phone_line):
    line = phone_line(local=True)
    result = line.carrier.place_call({"steps": [
        {"dtmf": "0"}, {"say": "דנה כהן"}, {"dtmf": "0529876543#"},
        {"say": "אני רוצה לקבוע פגישה"}], "end": "hangup"})
    assert result.error_codes == []
    gathers = answered(result, "/webhook/handle_gather")
    asked = ET.fromstring(gathers[1]["body"]).find("Gather")  # after the name: the number
    assert asked.get("numDigits") is None and asked.get("finishOnKey") == "#"
    assert gathers[2]["params"]["Digits"] == "0529876543"
    (lead,) = line.store.leads()
    assert (lead["name"], lead["phone"]) == ("דנה כהן", "0529876543")


def test_a_reply_whose_end_comes_late_plays_every_part_inside_a_gather(phone_line):
    """The hours answer is two parts; the second is synthesised only once the first was sent,
    so the caller hears the first while the line waits for the second (a continuation)."""
    line = phone_line(local=True)
    rt = line.runtime
    first, second = [speakable(c) for c in speakable_chunks([ScriptedLLM().reply([], "1")])]
    tts, synthesize = rt.engines.tts, rt.engines.tts.synthesize
    sent = threading.Event()

    def late_second(text: str) -> bytes:
        if text == second:
            wait_until(lambda: rt.replies.replies, 30)  # the first part went out alone
            sent.set()
        return synthesize(text)
    tts.synthesize = late_second
    result = line.carrier.place_call({"steps": [{"dtmf": "1"}], "end": "wait",
                                      "max_duration": 45})
    assert result.error_codes == [] and sent.is_set()
    answer = answered(result, "/webhook/handle_gather")[0]["body"]
    continued = answered(result, "/webhook/reply_continue")
    assert continued, result.timeline_text()
    for body in [answer] + [r["body"] for r in continued]:
        assert plays_outside_a_gather(body) == [], body
    heard = [h["url"].rsplit("/", 1)[-1] for h in result.heard if h["kind"] == "play"]
    names = [rt.cache.name_of(tts, text) for text in (first, second)]
    assert heard[:3] == ["greeting_he.mp3"] + names
