"""End of turn from live Hebrew words: a whole sentence ends after a short silence, a phrase
that goes on waits MIN_UTT_SEC (never more)."""

import pytest

from ivr.media.turn_end import COMPLETE_SILENCE_SEC, silence_to_end

from .test_endpointing import LOUD, QUIET, feed, new_detector, utterances

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
