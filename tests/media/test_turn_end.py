"""End of turn from live Hebrew words: a whole sentence ends after a short silence, a phrase
that goes on waits MIN_UTT_SEC (never more)."""

import pytest

from ivr import audio
from ivr.engines.google_engines import GoogleASR
from ivr.media.turn_end import COMPLETE_SILENCE_SEC, silence_to_end
from ivr.media.turns import StreamTurns

from ..conftest import wait_until
from ..providers import fake_google_speech  # noqa: F401 - the google_speech fixture
from .test_endpointing import FRAME, LOUD, QUIET, feed, new_detector, utterances
from .test_turns import RecordingChannel

SID = "CA" + "6" * 32
VOICE = audio.beep_pcm16(20, 300.0, 3000)  # one frame of loud voice

CEILING = 0.48  # MIN_UTT_SEC
SHORT, FULL, OWN = COMPLETE_SILENCE_SEC, CEILING, None


@pytest.mark.parametrize(("partial", "silence"), [
    ("מה שעות הפתיחה שלכם", SHORT),
    ("מה שעות הפתיחה שלכם?", SHORT),
    ("אני רוצה לקבוע תור למחר בעשר.", SHORT),
    ("אפשר לקבוע תור למחר", SHORT),
    ("כמה עולה תספורת", SHORT),
    ("איפה אתם נמצאים", SHORT),
    ("ומה עם יום שישי", SHORT),
    ("אני רוצה לקבוע תור ו", FULL),  # "and…"
    ("רציתי לשאול ש", FULL),  # "that…"
    ("אני רוצה לבוא אבל", FULL),
    ("אם", FULL),
    ("אז", FULL),
    ("אני אגיע אם", FULL),
    ("טוב אז", FULL),
    ("אני רוצה", FULL),  # wants what?
    ("אפשר לקבוע", FULL),
    ("תור ל", FULL),
    ("יש לכם משהו ביום", SHORT),
    ("המספר שלי הוא 052", FULL),  # a number being dictated
    ("המספר שלי הוא אפס חמש שתיים", FULL),
    ("הטלפון שלי שבע שמונה ושש", FULL),
    ("תור בשעה עשר", FULL),  # "ten…" may go on ("ten thirty")
    ("השם שלי דני לוי", SHORT),
    ("אני רוצה להזמין תור-", FULL),
    ("תספורת, צבע,", FULL),
    ("כן", OWN),  # one word: the detector's own short-answer rule
    ("דני", OWN),
    ("", OWN),
])
def test_the_silence_that_ends_a_hebrew_partial(partial, silence):
    assert silence_to_end(partial, CEILING) == silence


def test_never_more_than_min_utt_sec():
    assert silence_to_end("מה השעות", 0.2) == 0.2
    assert silence_to_end("אני רוצה ו", 0.2) == 0.2


def words_heard(text):
    """A detector hearing 1.4 s of speech whose live words are `text`, then silence: the frame
    index of the end of the utterance."""
    detector = new_detector()
    detector.hear_end(silence_to_end(text, CEILING))
    events = feed(detector, [(LOUD, 70), (QUIET, 40)], listen_after=False)
    [(at, _)] = [(i, e) for i, e in events if e in utterances(events)]
    return at - 70 + 1  # silent frames before the turn ended


def test_a_whole_sentence_ends_sooner_and_a_phrase_that_goes_on_waits():
    assert words_heard("מה שעות הפתיחה שלכם") == 15  # 0.3 s
    assert words_heard("המספר שלי הוא אפס חמש") == 24  # MIN_UTT_SEC, as without words
    assert words_heard("") == 24


@pytest.mark.parametrize(("partial", "silent_frames"), [
    ("מה שעות הפתיחה שלכם", 15),  # 0.3 s
    ("המספר שלי הוא אפס חמש", 24),  # MIN_UTT_SEC
])
def test_a_streams_live_words_end_its_turn(runtime, google_speech, partial, silent_frames):
    """On a stream with Google's streaming recognition, the partial words so far set the
    silence that ends the caller's turn."""
    google_speech.INTERIM_BYTES = 1600  # an interim result every 0.2 s of audio
    google_speech.interim = partial
    runtime.calls.answer(SID, "stream", "stream", "in-progress")
    turns = StreamTurns(runtime, RecordingChannel(), SID, 2)
    turns.live_asr = GoogleASR(google_speech.client(), timeout=10)
    for _ in range(70):  # 1.4 s of speech
        turns.feed(VOICE)
    live = turns.live
    wait_until(lambda: live.partial == partial)
    ended = None
    for frame in range(1, 30):
        turns.feed(FRAME)
        if any(e["kind"] == "UTTERANCE" for e in runtime.store.events(SID)):
            ended = frame
            break
    assert ended == silent_frames
