"""Whole calls on the embedded defaults (no keys): espeak replies from the scripted flow, leads."""

from pathlib import Path

import pytest

from ivr.chunking import speakable_chunks
from ivr.engines.local import EspeakTTS
from ivr.engines.scripted import ScriptedLLM
from ivr.speakable import speakable

pytestmark = pytest.mark.live  # starts processes


def test_embedded_defaults_answer_from_the_flow_in_espeak(phone_line):
    line = phone_line(local=True)
    assert line.runtime.settings.turn_mode == "gather"
    result = line.carrier.place_call("three_turns")
    assert result.error_codes == []
    plays = [h["url"].rsplit("/", 1)[-1] for h in result.heard if h["kind"] == "play"]
    flow, tts = ScriptedLLM(), EspeakTTS()
    expected = [flow.reply([], text) for text in
                ("שלום, מה שעות הפתיחה שלכם?", "איפה אתם נמצאים?", "כמה זה עולה?")]
    assert plays[0] == "greeting_he.mp3"
    chunks = [chunk for reply in expected for chunk in speakable_chunks([reply])]
    assert len(chunks) > len(expected)  # each reply is played as its sentences and clauses
    cache = line.runtime.cache
    assert plays[1:] == [cache.name_of(tts, speakable(text)) for text in chunks]
    assert all(h["duration"] > 1.0 for h in result.heard)


def test_a_reply_mp3_cannot_be_found_by_hashing_a_guessed_text(phone_line):
    """The reply's file answers under its keyed name; the sha256 of engine|voice|text (the
    name it had before, computable by anyone who guesses the text, e.g. a caller's name)
    answers 404, even where an old cache still holds a file of that name."""
    import hashlib

    import requests
    line = phone_line(local=True)
    result = line.carrier.place_call({"steps": [{"dtmf": "1"}], "end": "hangup"})
    assert result.error_codes == []
    tts = line.runtime.engines.tts
    said = speakable(next(iter(speakable_chunks([ScriptedLLM().reply([], "1")]))))
    real = line.runtime.cache.name_of(tts, said)
    assert real in [h["url"].rsplit("/", 1)[-1] for h in result.heard if h["kind"] == "play"]
    guessed = hashlib.sha256(f"{tts.name}|{tts.voice}|{said}".encode()).hexdigest() + ".mp3"
    tts_dir = Path(line.runtime.settings.tts_dir)
    (tts_dir / guessed).write_bytes((tts_dir / real).read_bytes())  # as an old cache left it
    answered = requests.get(f"{line.url}/static/tts/{real}", timeout=10)
    assert answered.status_code == 200 and answered.headers["Content-Type"] == "audio/mpeg"
    assert requests.get(f"{line.url}/static/tts/{guessed}", timeout=10).status_code == 404


def test_the_hours_written_in_digits_are_said_and_cached_in_words(phone_line):
    line = phone_line(local=True)
    result = line.carrier.place_call({"steps": [{"dtmf": "1"}], "end": "hangup"})
    assert result.error_codes == []
    tts, answer = line.runtime.engines.tts, ScriptedLLM().reply([], "1")
    assert "8:00-18:00" in answer  # the owner writes digits
    chunks = list(speakable_chunks([answer]))
    said = [speakable(chunk) for chunk in chunks]
    assert " ".join(said) == speakable(answer) == (
        "אנחנו פתוחים בימים ראשון עד חמישי שמונה בבוקר עד שש בערב, "
        "וביום שישי שמונה בבוקר עד אחת אחר הצהריים.")
    names = [line.runtime.cache.name_of(tts, text) for text in said]
    plays = [h["url"].rsplit("/", 1)[-1] for h in result.heard if h["kind"] == "play"]
    assert plays == ["greeting_he.mp3"] + names
    cached = {p.name for p in Path(line.runtime.settings.tts_dir).glob("*.mp3")}
    assert set(names) <= cached
    raw = [line.runtime.cache.name_of(tts, text) for text in chunks + [answer]]
    assert cached.isdisjoint(raw)  # nothing was ever made from the digits


def test_talk_to_a_person_leaves_a_lead(phone_line):
    line = phone_line(local=True)
    result = line.carrier.place_call("talk_to_person")
    assert result.error_codes == []
    (lead,) = line.store.leads()
    assert (lead["name"], lead["phone"], lead["caller"]) == ("דנה כהן", "0529876543",
                                                             "+972529876543")
    assert lead["reason"] == "אני רוצה לקבוע פגישה לשבוע הבא"
    heard = [h["url"].rsplit("/", 1)[-1] for h in result.heard if h["kind"] == "play"]
    replies = [t["audio_url"].split() for t in line.store.turns(lead["call_sid"])]
    assert len(replies) == 4 and heard == ["greeting_he.mp3"] + sum(replies, [])
