"""DRAFT_REPLY on a stream with Google's streaming recognition: the LLM is asked at the pause
after a whole sentence, before the turn ends, and its reply is the turn's; a caller who goes
on after the pause throws the draft away and hears only the reply to all they said."""

from ivr import audio
from ivr.engines.fake import FakeTTS
from ivr.engines.google_engines import GoogleASR
from ivr.media.turns import StreamTurns

from ..conftest import wait_until
from ..providers import fake_google_speech  # noqa: F401 - the google_speech fixture
from ..test_draft import QueuedLLM
from .test_endpointing import FRAME
from .test_turns import RecordingChannel

SID = "CA" + "8" * 32
VOICE = audio.beep_pcm16(20, 300.0, 3000)  # one frame of loud voice
PAUSE_FRAMES = 10  # EARLY_ASR_SEC: the detector's Pause
QUESTION = "מה שעות הפתיחה שלכם"
MORE = "מה שעות הפתיחה שלכם ביום שישי"


class HeardTTS(FakeTTS):
    """The fake TTS, keeping each text it was asked to say."""

    def __init__(self):
        super().__init__()
        self.texts: list[str] = []

    def synthesize(self, text: str) -> bytes:
        self.texts.append(text)
        return super().synthesize(text)


def line(runtime, google_speech, llm, tts):
    google_speech.INTERIM_BYTES = 1600  # an interim result every 0.2 s of audio
    assert runtime.dialog.engines is runtime.engines
    runtime.engines.llm, runtime.engines.tts = llm, tts
    runtime.calls.answer(SID, "stream", "stream", "in-progress")
    turns = StreamTurns(runtime, RecordingChannel(), SID, 2)
    turns.live_asr = GoogleASR(google_speech.client(), timeout=10)
    turns.early = None  # (made for the fake ASR: a line that hears live has none)
    return turns


def speak(turns, frames: int, partial: str) -> None:
    for _ in range(frames):
        turns.feed(VOICE)
    live = turns.live
    wait_until(lambda: live.partial == partial)


def kinds(runtime):
    return [e["kind"] for e in runtime.store.events(SID)]


def until_utterance(turns, runtime) -> int:
    """Silent frames until the turn ends; the number fed."""
    for frame in range(1, 60):
        turns.feed(FRAME)
        if "UTTERANCE" in kinds(runtime):
            return frame
    raise AssertionError("the turn never ended")


def drafts(runtime):
    return [(e["detail"]["result"], e["detail"].get("why"), e["detail"]["text"])
            for e in runtime.store.events(SID) if e["kind"] == "DRAFT"]


def heard_reply(runtime):
    wait_until(lambda: "STREAM_REPLY" in kinds(runtime) and "TURN" in kinds(runtime))
    (turn,) = [e["detail"] for e in runtime.store.events(SID) if e["kind"] == "TURN"]
    return turn


def test_the_reply_is_begun_at_the_pause_before_the_turn_ends(runtime, google_speech):
    llm, tts = QueuedLLM(), HeardTTS()
    google_speech.interim, google_speech.final = QUESTION, QUESTION + "?"
    turns = line(runtime, google_speech, llm, tts)
    speak(turns, 70, QUESTION)  # 1.4 s of speech
    for _ in range(PAUSE_FRAMES):
        turns.feed(FRAME)
    wait_until(lambda: llm.asked == [QUESTION])  # asked at the pause
    for piece in ("פתוח עד שמונה בערב.", None):
        llm.feeds[0].put(piece)
    wait_until(runtime.dialog.drafts[SID].reading.over.is_set)
    assert "UTTERANCE" not in kinds(runtime)  # the LLM wrote it before the turn ended
    assert tts.texts == []  # and nothing of it was synthesised
    assert PAUSE_FRAMES + until_utterance(turns, runtime) == 15  # COMPLETE_SILENCE_SEC
    turn = heard_reply(runtime)
    assert turn["user"] == QUESTION + "?" and turn["reply"] == "פתוח עד שמונה בערב."
    assert llm.asked == [QUESTION]  # once
    assert tts.texts == ["פתוח עד שמונה בערב."]
    assert drafts(runtime) == [("used", None, QUESTION)]


def test_a_caller_who_goes_on_after_the_pause_hears_only_the_reply_to_all_of_it(
        runtime, google_speech):
    llm, tts = QueuedLLM(), HeardTTS()
    google_speech.interim, google_speech.final = QUESTION, MORE + "?"
    turns = line(runtime, google_speech, llm, tts)
    speak(turns, 70, QUESTION)
    for _ in range(PAUSE_FRAMES + 2):  # a pause, not yet the turn's end
        turns.feed(FRAME)
    wait_until(lambda: llm.asked == [QUESTION])
    llm.feeds[0].put("פתוח עד שמונה בערב.")  # the draft's reply, kept
    wait_until(lambda: runtime.dialog.drafts[SID].reading.chars > 0)
    google_speech.interim = MORE
    speak(turns, 40, MORE)  # the caller goes on: the draft is thrown away
    assert drafts(runtime) == [("dropped", "went-on", QUESTION)]
    llm.feeds[0].put(" ובשישי עד שתיים.")  # its next delta: its reader stops reading
    wait_until(lambda: llm.closed == [0])
    for _ in range(PAUSE_FRAMES):
        turns.feed(FRAME)
    wait_until(lambda: llm.asked == [QUESTION, MORE])  # asked again, with all the words
    for piece in ("ביום שישי עד שתיים.", None):
        llm.feeds[1].put(piece)
    until_utterance(turns, runtime)
    turn = heard_reply(runtime)
    assert turn["user"] == MORE + "?" and turn["reply"] == "ביום שישי עד שתיים."
    assert tts.texts == ["ביום שישי עד שתיים."]  # nothing of the draft was ever synthesised
    assert drafts(runtime) == [("dropped", "went-on", QUESTION), ("used", None, MORE)]


def test_without_live_words_the_reply_is_begun_on_the_early_transcription(runtime):
    """An ASR that does not hear live (OpenAI's): the transcription sent at the pause
    (EARLY_ASR_SEC) comes back while the caller is still silent, before MIN_UTT_SEC ends the
    turn: the LLM is asked on its words at once, and the turn, whose words these are, takes it."""
    llm, tts = QueuedLLM(), HeardTTS()
    runtime.engines.llm, runtime.engines.tts = llm, tts
    runtime.calls.answer(SID, "stream", "stream", "in-progress")
    turns = StreamTurns(runtime, RecordingChannel(), SID, 2)
    assert turns.early is not None and not runtime.engines.asr.hears_live
    for _ in range(70):
        turns.feed(VOICE)
    for _ in range(PAUSE_FRAMES):
        turns.feed(FRAME)
    wait_until(lambda: len(llm.asked) == 1)  # asked on the early transcription's words
    assert "UTTERANCE" not in kinds(runtime) and tts.texts == []
    for piece in ("פתוח עד שמונה בערב.", None):
        llm.feeds[0].put(piece)
    until_utterance(turns, runtime)
    turn = heard_reply(runtime)
    assert llm.asked == [turn["user"]]  # once: the turn took the draft
    assert turn["reply"] == "פתוח עד שמונה בערב." and tts.texts == ["פתוח עד שמונה בערב."]
    assert drafts(runtime) == [("used", None, turn["user"])]
    assert [e["detail"]["result"] for e in runtime.store.events(SID)
            if e["kind"] == "EARLY_ASR"] == ["used"]
