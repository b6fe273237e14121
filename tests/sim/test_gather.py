"""The emulator's <Gather> as Twilio runs it: the caller's input stops the nested prompts
(bargeIn, default true, for speech; a key always), and what each `input` hears."""

import pytest

from ..simapp import (  # noqa: F401 - fixture_line_served, carrier_of_fixture_line: the fixtures
    carrier_of_fixture_line,
    doc,
    fixture_line_served,
)

pytestmark = pytest.mark.live  # rings whole calls through the emulator

SENTENCE = "רגע, בעצם רציתי לשאול על מחירים"
PROMPT_SEC = 6.0  # the fixture's media is a 1 s tone, played six times


def gather_doc(line, attributes: str) -> str:
    return doc(f'<Gather {attributes} language="iw-IL" action="{line.url}/gathered" '
               f'speechTimeout="auto" timeout="2"><Play loop="6">{line.url}/media/tone.mp3</Play>'
               f"</Gather>", f"<Redirect>{line.url}/nothing</Redirect>")


def answer_docs(line, attributes: str) -> None:
    line.docs["/webhook/incoming_call"] = gather_doc(line, attributes)
    line.docs["/gathered"] = doc("<Hangup/>")
    line.docs["/nothing"] = doc("<Hangup/>")


def gathered(line) -> dict | None:
    forms = [r["form"] for r in line.requests if r["path"] == "/gathered"]
    return forms[0] if forms else None


def played(result) -> float:
    return sum(h["duration"] for h in result.heard if h["kind"] == "play")


BARGE = {"steps": [{"barge_in": SENTENCE, "after": 0.5}], "end": "wait", "max_duration": 40}
KEY = {"steps": [{"dtmf": "3", "during_reply": True, "after": 0.5}], "end": "wait",
       "max_duration": 40}


def test_speech_during_the_prompt_stops_it_and_is_recognised(line, carrier):
    """No bargeIn attribute (Twilio's default, true), as the line's Gather: the prompt stops
    when the caller speaks, and the whole sentence is the SpeechResult."""
    answer_docs(line, 'input="speech dtmf"')
    result = carrier.place_call(BARGE)
    assert (gathered(line) or {}).get("SpeechResult") == SENTENCE
    spoke_at = result.said[0]["t"]
    stopped = [h for h in result.heard if h.get("stopped")]
    assert len(stopped) == 1 and stopped[0]["t"] <= spoke_at
    assert played(result) < spoke_at - result.heard[0]["t"] + 0.5 < PROMPT_SEC


def test_bargein_true_written_out_is_the_same(line, carrier):
    answer_docs(line, 'input="speech" bargeIn="true"')
    carrier.place_call(BARGE)
    assert (gathered(line) or {}).get("SpeechResult") == SENTENCE


def test_bargein_false_plays_the_prompt_whole_and_speech_in_it_is_lost(line, carrier):
    answer_docs(line, 'input="speech dtmf" bargeIn="false"')
    result = carrier.place_call(BARGE)
    assert gathered(line) is None and "/nothing" in line.paths()
    assert played(result) >= PROMPT_SEC - 0.1 and not any(h.get("stopped") for h in result.heard)


def test_a_key_during_the_prompt_stops_it_and_numdigits_ends_the_gather(line, carrier):
    answer_docs(line, 'input="speech dtmf" numDigits="1"')
    result = carrier.place_call(KEY)
    assert (gathered(line) or {}).get("Digits") == "3"
    assert played(result) < PROMPT_SEC - 1


def test_a_key_stops_the_prompt_even_with_bargein_false(line, carrier):
    answer_docs(line, 'input="dtmf" bargeIn="false" numDigits="1"')
    result = carrier.place_call(KEY)
    assert (gathered(line) or {}).get("Digits") == "3" and played(result) < PROMPT_SEC - 1


def test_input_dtmf_ignores_speech_and_plays_on(line, carrier):
    answer_docs(line, 'input="dtmf"')
    result = carrier.place_call(BARGE)
    assert gathered(line) is None and played(result) >= PROMPT_SEC - 0.1


def test_input_speech_ignores_keys_and_plays_on(line, carrier):
    answer_docs(line, 'input="speech"')
    result = carrier.place_call(KEY)
    assert gathered(line) is None and played(result) >= PROMPT_SEC - 0.1


def test_speech_begun_during_a_play_outside_the_gather_is_lost_whole(line, carrier):
    """A bare <Play> before the <Gather> (as a reply's first chunk once was): Twilio listens to
    nothing during it, so the sentence begun there is not recognised from the tail the Gather
    hears; the timeline says so."""
    line.docs["/webhook/incoming_call"] = doc(
        f'<Play loop="2">{line.url}/media/tone.mp3</Play>',
        f'<Gather input="speech" language="iw-IL" action="{line.url}/gathered" timeout="2"/>',
        f"<Redirect>{line.url}/nothing</Redirect>")
    line.docs["/gathered"] = doc("<Hangup/>")
    line.docs["/nothing"] = doc("<Hangup/>")
    result = carrier.place_call(BARGE)
    assert result.said[0]["t"] + 2.5 > result.heard[0]["t"] + 2.0  # it runs into the Gather
    assert gathered(line) is None and "/nothing" in line.paths()
    assert any(f'"{SENTENCE}" is lost' in e["text"] for e in result.timeline)
