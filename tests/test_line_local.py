"""Whole calls on the embedded defaults (no keys): espeak replies from the scripted flow, leads."""

from ivr.chunking import speakable_chunks
from ivr.engines.local import EspeakTTS
from ivr.engines.scripted import ScriptedLLM
from ivr.tts_cache import cache_key


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
    assert plays[1:] == [cache_key("espeak", tts.voice, text) + ".mp3" for text in chunks]
    assert all(h["duration"] > 1.0 for h in result.heard)


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
