"""The shipped `barge_in` caller script against the real line: the question said over a reply
is answered (stream and gather modes), a line that loses it fails the script; `make call
SCRIPT=… FAULT=…` rings a running line and prints the line's words, not MP3 names."""

import os
import subprocess
import sys
import time
from urllib.parse import urlsplit

import pytest

from ivr import audio
from ivr.chunking import speakable_chunks
from ivr.engines.scripted import ScriptedLLM
from ivr.sim.linewords import line_turns, replies
from ivr.sim.script import CallerScript, ScriptError, unmet_expectations, voice_ulaw
from ivr.speakable import speakable

from ..livehelpers import ROOT

pytestmark = pytest.mark.live  # rings whole calls through the emulator

SCRIPT = CallerScript.load("barge_in")
SENTENCES = [step.value for step in SCRIPT.steps if step.action in ("say", "barge_in")]
PRICES = "תספורת עולה 80"  # how the default flow's prices answer begins


def loudness(pcm: bytes) -> list[int]:
    return [audio.rms(pcm[i:i + 320]) for i in range(0, len(pcm) - 319, 320)]


def likeness(a: list[int], b: list[int]) -> float:
    """The best cosine of two loudness envelopes over every shift of one against the other."""
    norm = (sum(x * x for x in a) * sum(y * y for y in b)) ** 0.5 or 1.0
    return max(sum(a[i] * b[i - lag] for i in range(max(0, lag), min(len(a), lag + len(b))))
               for lag in range(-len(b) + 1, len(a))) / norm


class CallersVoices:
    """An ASR for the line that knows the emulator caller's sentences: it names the one whose
    loudness envelope the utterance matches best, so a lost sentence is not recognised in the
    place of the next one (a fake ASR's list would be)."""

    def __init__(self, sentences: list[str]):
        self.known = {s: loudness(audio.ulaw_to_pcm16(voice_ulaw(s))) for s in sentences}

    def __call__(self, pcm16_8k: bytes) -> str:
        heard = loudness(pcm16_8k)
        return max(self.known, key=lambda s: likeness(heard, self.known[s]))


def asr_line(phone_line, **changes):
    line = phone_line(asr_engine="fake", **changes)
    line.runtime.engines.asr.transcribe = CallersVoices(SENTENCES)
    return line


def later_chunks_slow(tts, seconds: float) -> None:
    """Make `tts` take `seconds` over every chunk of the flow's answers but the first (as a
    cloud TTS does while an LLM still writes the rest): a reply's first chunk is ready, and
    answered with, before its next ones, every time."""
    firsts = {speakable(next(speakable_chunks([text]))) for text in ScriptedLLM().texts()}
    synthesize = tts.synthesize

    def slow(text: str) -> bytes:
        if text not in firsts:
            time.sleep(seconds)
        return synthesize(text)
    tts.synthesize = slow


def answers(line, call_sid: str) -> list[str]:
    """The line's answers, once it has recorded as many as the script's steps."""
    return replies(line_turns(line.runtime.settings.database_url, call_sid, SCRIPT.answered))


def test_barge_in_script_is_answered_in_stream_mode(phone_line):
    line = asr_line(phone_line, turn_mode="stream", reply_mode="stream")
    result = line.carrier.place_call(SCRIPT)
    said = answers(line, result.call_sid)
    assert result.streams[0]["clears"] >= 1  # the reply was stopped for the caller
    assert unmet_expectations(SCRIPT, said) == [] and said[1].startswith(PRICES), said


def test_barge_in_script_is_answered_in_play_mode(phone_line):
    """REPLY_MODE=play: the reply is <Play>s by calls.update; a fork hears the caller over
    them, and the question said there is answered."""
    line = asr_line(phone_line, turn_mode="stream", reply_mode="play")
    result = line.carrier.place_call(SCRIPT)
    said = answers(line, result.call_sid)
    assert any(s["fork"] for s in result.streams)  # the caller was heard over the Plays
    assert unmet_expectations(SCRIPT, said) == [] and said[1].startswith(PRICES), said


def test_barge_in_script_is_answered_in_gather_mode(phone_line):
    line = phone_line()  # the default line: no ASR key, so Twilio's <Gather> hears the caller
    later_chunks_slow(line.runtime.engines.tts, seconds=2.0)
    result = line.carrier.place_call(SCRIPT)
    said = answers(line, result.call_sid)
    assert unmet_expectations(SCRIPT, said) == [], said


def make_call(line, tmp_path, *variables: str) -> subprocess.CompletedProcess:
    """`make call VARIABLE=…` as an owner runs it beside `make run` (this test's line and
    carrier), with the test's python (the Makefile's own venv is not rebuilt)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "OPENAI_"))}
    env.update(VAR_DIR=str(tmp_path / "var"), PUBLIC_BASE_URL=line.url,
               TWILIO_API_BASE_URL=line.carrier.url,
               DATABASE_URL=line.runtime.settings.database_url)
    return subprocess.run(
        ["make", "--no-print-directory", "-o", ".venv/.installed", "call", f"PY={sys.executable}",
         f"PORT={urlsplit(line.url).port}", "SPEED=10", *variables],
        cwd=ROOT, env=env, text=True, capture_output=True, timeout=300)


def test_make_call_barge_in_fails_on_a_line_that_loses_the_question(phone_line, tmp_path):
    """In record mode the reply is a <Play> before the <Record>: the question said over it is
    lost, as on Twilio. The script says so and `make call` fails; the printout shows words."""
    line = asr_line(phone_line, local=True, turn_mode="record")
    proc = make_call(line, tmp_path, "SCRIPT=barge_in")
    out = proc.stdout
    assert proc.returncode != 0, out + proc.stderr
    assert "EXPECTED: step 2 (barge_in 'רגע, בעצם רציתי לשאול על מחירים')" in out
    assert "the caller's \"רגע, בעצם רציתי לשאול על מחירים\" is lost, as on Twilio" in out
    timeline = out.split("what the line heard and said")[0]
    assert 'line    plays "אנחנו פתוחים בימים ראשון עד חמישי' in timeline
    assert "plays k_" not in timeline  # a reply's file is named by its words, so is a prompt's
    assert 'line    plays "שלום, הגעתם לעסק שלנו. במה אפשר לעזור?"' in timeline
    assert "  line    אנחנו פתוחים" in out and "  caller  תודה רבה" in out
    assert (tmp_path / "var" / "last_call.wav").stat().st_size > 8000


def test_make_call_passes_its_faults_and_exits_0_when_all_is_well(phone_line, tmp_path):
    line = phone_line(local=True)
    well = make_call(line, tmp_path, "SCRIPT=dtmf")
    assert well.returncode == 0, well.stdout + well.stderr
    assert "caller  presses 1" in well.stdout and 'plays "אנחנו פתוחים' in well.stdout
    faulty = make_call(line, tmp_path, "SCRIPT=dtmf", "FAULT=gather_lists=he-IL,slow_rest=0.1")
    assert faulty.returncode != 0 and "13331" in faulty.stdout, faulty.stdout + faulty.stderr


def test_make_call_with_an_unknown_script_lists_the_shipped_ones(tmp_path):
    proc = subprocess.run(
        ["make", "--no-print-directory", "-o", ".venv/.installed", "call", f"PY={sys.executable}",
         "SCRIPT=barge"], cwd=ROOT, env={**os.environ, "VAR_DIR": str(tmp_path)}, text=True,
        capture_output=True, timeout=120)
    assert proc.returncode != 0
    assert "no caller script 'barge'" in proc.stderr
    assert "barge_in, dtmf, silent, talk_to_person, three_turns" in proc.stderr


def test_expect_belongs_to_a_spoken_step_and_is_met_by_a_later_answer():
    with pytest.raises(ScriptError, match="step 1: expect goes with a say"):
        CallerScript.load({"steps": [{"silence": 1, "expect": "x"}]})
    with pytest.raises(ScriptError, match="step 1: expect needs a word"):
        CallerScript.load({"steps": [{"say": "שלום", "expect": []}]})
    script = CallerScript.load({"steps": [{"say": "א", "expect": "שלום"}, {"say": "ב"},
                                          {"dtmf": "3", "expect": ["₪", "שקל"]}]})
    assert unmet_expectations(script, ["שלום לך", "", "150 ₪"]) == []
    assert unmet_expectations(script, ["", "שלום", "לא"]) == [
        "step 3 (dtmf '3'): the line never answered it with '₪' or 'שקל'"]
