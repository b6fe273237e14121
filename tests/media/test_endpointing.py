"""Endpointing and barge-in on synthetic frame levels, plus property tests of the seed's rules."""

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from ivr.config import Settings
from ivr.media.endpointing import (
    BargeIn,
    Dropped,
    Greet,
    Silence,
    TurnDetector,
    TurnParams,
    Utterance,
)

LOUD, QUIET = 2000, 20
SOFT = 100  # a quiet caller: under VAD_RMS (210), well over a quiet line's noise
FRAME = b"\x00\x00" * 160


def new_detector(**changes) -> TurnDetector:
    """A detector on the configured defaults, with some parameters changed."""
    return TurnDetector(replace(TurnParams.from_settings(Settings()), **changes))


def feed(detector, pattern, listen_after=True):
    """pattern: a list of (level, count); returns every event with the frame index it came at."""
    out, index = [], 0
    for level, count in pattern:
        for _ in range(count):
            for event in detector.feed(FRAME, level):
                out.append((index, event))
                if isinstance(event, Utterance) and listen_after:
                    detector.listen()
            index += 1
    return out


def utterances(events):
    return [e for _, e in events if isinstance(e, Utterance)]


def dropped(events):
    return [e for _, e in events if isinstance(e, Dropped)]


def after_a_reply(playback_frames: int, **changes) -> TurnDetector:
    """A detector whose reply went out and played for `playback_frames` until Twilio's mark."""
    detector = new_detector(**changes)
    detector.bot_speaking()
    feed(detector, [(QUIET, playback_frames)])
    detector.bot_done()
    return detector


def test_an_utterance_ends_after_the_silence_even_though_frames_keep_coming():
    events = feed(new_detector(), [(QUIET, 50), (LOUD, 100), (QUIET, 100)])
    (index, utt), = [(i, e) for i, e in events if isinstance(e, Utterance)]
    assert index == 150 + 23  # 2 s of speech then 0.48 s (24 frames) of silence
    assert utt.frames == 100 + 7  # leading silence out, 140 ms of hangover kept
    assert utt.voiced_frames == 100 and len(utt.pcm) == utt.frames * 320


def test_a_short_utterance_ends_after_a_shorter_silence():
    events = feed(new_detector(), [(LOUD, 40), (QUIET, 40)])
    assert [i for i, e in events if isinstance(e, Utterance)] == [40 + 17]  # 0.36 s


def test_noise_shorter_than_the_floor_is_not_an_utterance():
    assert utterances(feed(new_detector(), [(LOUD, 14), (QUIET, 60)])) == []
    assert len(utterances(feed(new_detector(), [(LOUD, 15), (QUIET, 60)]))) == 1


def test_max_utterance_length_cuts_a_monologue():
    events = feed(new_detector(), [(LOUD, 400), (QUIET, 40)])
    lengths = [u.frames for u in utterances(events)]
    assert lengths[0] == 350 and max(lengths) <= 350


def test_pauses_within_a_sentence_do_not_split_it():
    pattern = [(LOUD, 30), (QUIET, 10), (LOUD, 30), (QUIET, 15), (LOUD, 30), (QUIET, 40)]
    assert len(utterances(feed(new_detector(), pattern))) == 1


def test_thinking_ignores_the_caller_until_told_to_listen():
    detector = new_detector()
    events = feed(detector, [(LOUD, 40), (QUIET, 30), (LOUD, 40), (QUIET, 30)], listen_after=False)
    assert len(utterances(events)) == 1 and detector.state == "thinking"


def test_barge_in_after_three_voiced_frames_and_the_caller_is_heard():
    detector = new_detector(backchannel_sec=0)  # no backchannels: any voice interrupts
    detector.bot_speaking()
    events = feed(detector, [(QUIET, 20), (LOUD, 2), (QUIET, 1), (LOUD, 3), (LOUD, 40),
                             (QUIET, 30)])
    barge = [(i, e) for i, e in events if isinstance(e, BargeIn)]
    assert [i for i, _ in barge] == [25]  # the third voiced frame in a row
    (utt,) = utterances(events)
    assert utt.voiced_frames == 43  # the three barge-in frames are part of what was heard


def test_no_barge_in_when_disabled():
    detector = new_detector(barge_in=False)
    detector.bot_speaking()
    assert feed(detector, [(LOUD, 50)]) == [] and detector.state == "speaking"


def test_an_answer_right_after_the_mark_is_heard_whole():
    detector = after_a_reply(100)  # a 2 s reply: the refractory was over while it played
    (utt,) = utterances(feed(detector, [(LOUD, 20), (QUIET, 40)]))  # "כן", 0.4 s, at once
    assert utt.voiced_frames == 20 and utt.frames == 20 + 7


def test_an_answer_begun_in_what_is_left_of_the_refractory_is_whole():
    detector = after_a_reply(10)  # a 0.2 s reply: 0.55 s of the refractory are left
    (utt,) = utterances(feed(detector, [(LOUD, 40), (QUIET, 40)]))
    assert utt.voiced_frames == 40 and utt.frames == 40 + 7


def test_voice_begun_and_ended_in_the_refractory_of_a_very_short_reply_is_dropped_as_echo():
    detector = after_a_reply(1)
    events = feed(detector, [(LOUD, 15), (QUIET, 18)])
    assert utterances(events) == [] and dropped(events) == [Dropped("refractory", 22, 15)]
    assert len(utterances(feed(detector, [(QUIET, 10), (LOUD, 30), (QUIET, 30)]))) == 1


def test_a_barge_in_is_heard_whatever_the_refractory():
    detector = new_detector()
    detector.bot_speaking()
    events = feed(detector, [(QUIET, 5), (LOUD, 40), (QUIET, 30)])  # longer than a backchannel
    assert len([e for _, e in events if isinstance(e, BargeIn)]) == 1
    (utt,) = utterances(events)
    assert utt.voiced_frames == 40


def test_a_quiet_caller_is_heard_over_a_quiet_line():
    events = feed(new_detector(), [(QUIET, 50), (SOFT, 25), (QUIET, 40)])  # 0.5 s at −26 dB
    (utt,) = utterances(events)
    assert utt.voiced_frames == 25 and utt.frames == 25 + 7


def test_a_quiet_caller_is_heard_right_after_the_mark():
    (utt,) = utterances(feed(after_a_reply(100), [(SOFT, 25), (QUIET, 40)]))
    assert utt.voiced_frames == 25


def test_the_voice_threshold_never_goes_above_vad_rms_nor_below_the_lines_noise():
    detector = new_detector()
    noisy = [(150, 100), (400, 30), (150, 40)]  # noise at 150, under VAD_RMS: a voice over it
    assert len(utterances(feed(detector, noisy))) == 1  # …is heard at VAD_RMS, as always
    noisy = [(150, 100), (190, 30), (150, 40)]  # a voice under VAD_RMS, not 3× the noise
    assert feed(new_detector(), noisy) == []


def test_line_noise_and_clicks_are_never_an_utterance():
    detector = new_detector()
    hiss = [(QUIET + (i * 7) % 9, 1) for i in range(150)]  # a line's noise, 3 s
    click, pair = [(LOUD, 1), (QUIET, 30)], [(LOUD, 1), (QUIET, 15), (LOUD, 1), (QUIET, 30)]
    events = feed(detector, hiss + click + hiss + pair + hiss + pair * 3 + hiss)
    assert utterances(events) == []
    assert {e.reason for e in dropped(events)} == {"short"}


def test_voice_under_the_floor_is_dropped_with_its_length():
    events = feed(new_detector(), [(QUIET, 20), (LOUD, 10), (QUIET, 40)])
    assert utterances(events) == [] and dropped(events) == [Dropped("short", 10 + 7, 10)]


def test_voice_while_the_line_thinks_is_reported_not_answered():
    detector = new_detector()
    events = feed(detector, [(LOUD, 40), (QUIET, 30), (LOUD, 30), (QUIET, 30), (LOUD, 5),
                             (QUIET, 30)], listen_after=False)
    assert len(utterances(events)) == 1 and detector.state == "thinking"
    assert dropped(events) == [Dropped("thinking", 30 + 7, 30), Dropped("short", 5 + 7, 5)]


def test_greeting_only_for_a_caller_silent_for_0_8_s():
    silent = new_detector(greeting=True)
    assert [i for i, e in feed(silent, [(QUIET, 100)]) if isinstance(e, Greet)] == [39]
    talker = new_detector(greeting=True)
    events = feed(talker, [(QUIET, 10), (LOUD, 40), (QUIET, 100)])
    assert not any(isinstance(e, Greet) for _, e in events)


def test_a_click_before_0_8_s_does_not_cost_the_caller_the_greeting():
    clicked = new_detector(greeting=True)
    events = feed(clicked, [(QUIET, 10), (LOUD, 3), (QUIET, 100)])
    assert dropped(events) == [Dropped("short", 3 + 7, 3)]
    greets = [i for i, e in events if isinstance(e, Greet)]
    assert len(greets) == 1 and greets[0] >= 39  # once the click is dropped, not over it


def test_a_caller_who_pressed_a_key_first_is_not_greeted_after_the_answer():
    keyed = new_detector(greeting=True)
    feed(keyed, [(QUIET, 10)])
    keyed.take_turn()  # the key's turn
    keyed.bot_speaking()
    feed(keyed, [(QUIET, 50)])
    keyed.bot_done()
    assert not any(isinstance(e, Greet) for _, e in feed(keyed, [(QUIET, 100)]))


speech = st.integers(min_value=15, max_value=330)
noise = st.integers(min_value=1, max_value=14)
gap = st.integers(min_value=25, max_value=80)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.one_of(speech, noise), gap), min_size=1, max_size=12),
       st.integers(min_value=0, max_value=50))
def test_every_voiced_run_ends_in_exactly_one_utterance_within_floor_and_max(runs, lead):
    pattern = [(QUIET, lead)]
    for voiced, silence in runs:
        pattern += [(LOUD, voiced), (QUIET, silence)]
    found = utterances(feed(new_detector(), pattern))
    assert len(found) == sum(1 for voiced, _ in runs if voiced >= 15)
    assert all(0.28 < u.seconds <= 7.0 for u in found)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(1, 60)), min_size=1, max_size=40))
def test_no_utterance_is_ever_shorter_than_the_floor_or_longer_than_the_maximum(pattern):
    found = utterances(feed(new_detector(),
                            [(LOUD if loud else QUIET, n) for loud, n in pattern]))
    assert all(0.28 < u.seconds <= 7.0 for u in found)


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=0, max_value=180), st.lists(st.integers(20, 120), max_size=10),
       st.randoms(use_true_random=False))
def test_steady_noise_under_vad_rms_with_lone_clicks_is_never_an_utterance(noise, gaps, rnd):
    """Any steady line noise (±15 % from frame to frame, under VAD_RMS) with clicks at least
    0.4 s apart: however low the threshold adapts, no utterance."""
    def hiss(count):
        return [(round(noise * rnd.uniform(0.85, 1.15)), 1) for _ in range(count)]
    pattern = hiss(50)
    for gap in gaps:
        pattern += [(LOUD, 1)] + hiss(gap)
    assert utterances(feed(new_detector(), pattern)) == []


def test_a_quiet_callers_soft_start_and_end_are_part_of_the_utterance():
    """Voice starts at 3× the line's noise floor; the softer sounds just before and after
    (2.5× the floor) belong to it, so a quiet word is not cut under the floor."""
    onset, tail = [(55, 3)], [(55, 5)]
    events = feed(new_detector(), [(QUIET, 50), *onset, (SOFT, 10), *tail, (QUIET, 40)])
    (utt,) = utterances(events)
    assert utt.voiced_frames == 3 + 10 + 5 and utt.frames == 18 + 7


def test_voice_still_being_said_when_the_stream_ends_is_reported():
    detector = new_detector()
    feed(detector, [(QUIET, 10), (LOUD, 30), (QUIET, 3)])
    assert detector.stop() == Dropped("stream-ended", 33, 30) and detector.stop() is None
    feed(detector, [(LOUD, 30), (QUIET, 30), (LOUD, 20)], listen_after=False)  # then thinks
    assert detector.stop() == Dropped("thinking", 20, 20)


def silences(events):
    return [i for i, e in events if isinstance(e, Silence)]


def test_a_caller_silent_after_the_line_spoke_gets_one_silent_turn_at_the_set_time():
    detector = after_a_reply(50, silence_sec=2.0, refractory_ms=0)
    events = feed(detector, [(QUIET, 300)])
    assert silences(events) == [99]  # the 100th silent frame after the mark: 2 s
    assert detector.state == detector.THINKING  # one turn in flight: the re-prompt
    detector.bot_speaking()
    feed(detector, [(QUIET, 50)])  # nothing counts while the line speaks
    detector.bot_done()
    assert silences(feed(detector, [(QUIET, 150)])) == [99]  # counted again from its mark


def test_voice_starts_the_count_again():
    detector = after_a_reply(50, silence_sec=2.0, refractory_ms=0)
    events = feed(detector, [(QUIET, 80), (LOUD, 2), (QUIET, 80)], listen_after=False)
    assert silences(events) == [] and [e.reason for e in dropped(events)] == ["short"]
    (ended, _), = [(i, e) for i, e in events if isinstance(e, Dropped)]
    assert ended == 82 + 17  # the click is over after 0.36 s of silence
    events = feed(detector, [(QUIET, 100)])
    assert silences(events) == [ended + 100 - 162]  # 2 s of silence counted from its end


def test_no_silent_turn_before_the_line_spoke_or_while_it_thinks_or_when_off():
    assert silences(feed(new_detector(silence_sec=0.5), [(QUIET, 200)])) == []  # no greeting
    thinking = after_a_reply(10, silence_sec=0.5)
    thinking.take_turn()
    assert silences(feed(thinking, [(QUIET, 200)])) == []
    off = after_a_reply(10, silence_sec=0.0)
    assert silences(feed(off, [(QUIET, 500)])) == []
    spoke_before = new_detector(silence_sec=0.5, line_spoke=True)  # after the reply's Plays
    assert silences(feed(spoke_before, [(QUIET, 60)])) == [24]
