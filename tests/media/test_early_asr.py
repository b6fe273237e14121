"""EARLY_ASR_SEC: the utterance goes to the ASR in the silence after it, before the turn
ends; the turn takes that transcription, and a caller who goes on cancels it."""

import threading

import pytest

from ivr.engines.base import ASR
from ivr.media.early_asr import EarlyRecognition
from ivr.media.endpointing import Pause, Utterance

from .test_endpointing import FRAME, LOUD, QUIET, new_detector


class CountingASR(ASR):
    """Transcribes by the length of what it is given; each request noted when it starts."""

    def __init__(self):
        self.heard: list[int] = []  # bytes of each request, in order
        self.asked = threading.Event()

    def transcribe(self, pcm16_8k: bytes) -> str:
        self.heard.append(len(pcm16_8k))
        self.asked.set()
        return f"{len(pcm16_8k)} bytes"


def run(pattern, early_sec=0.2):
    """Frames through a detector and the early recognition as a stream's turns feed them:
    (the frame each transcription was asked at, the Utterance, the recognition it took)."""
    asr, detector = CountingASR(), new_detector(early_sec=early_sec)
    told = []
    early, asked_at, index, ended = EarlyRecognition(asr, lambda *end: told.append(end)), [], 0, []
    early.told_of = told
    for level, count in pattern:
        for _ in range(count):
            events = detector.feed(FRAME, level)
            taken = None
            for event in events:
                if isinstance(event, Pause):
                    early.pause(event)
                    early.pending[0].wait(5)  # the request is on its way (a thread)
                    asked_at.append(index)
                elif isinstance(event, Utterance):
                    taken = early.take(event)
                    ended.append((index, event, taken))
            if taken is None:
                early.check(detector)
            index += 1
    return asr, early, asked_at, ended


def test_the_transcription_starts_in_the_silence_and_the_turn_takes_it():
    asr, early, asked_at, ended = run([(LOUD, 70), (QUIET, 40)])  # 1.4 s of speech
    [(at, utterance, live)] = ended
    assert asked_at == [70 + 10 - 1]  # 0.2 s into the silence, 0.28 s before the turn ends
    assert at == 70 + 24 - 1  # MIN_UTT_SEC (0.48 s) of silence still ends the turn
    assert live is not None and live.finish(5) == [("final", f"{len(utterance.pcm)} bytes")]
    assert asr.heard == [len(utterance.pcm)]  # one request, of exactly the turn's audio
    assert early.dropped == 0 and early.told_of == [
        ("used", pytest.approx(len(utterance.pcm) / 16000))]  # with the seconds it carried


def test_a_caller_who_goes_on_after_the_pause_cancels_it_and_is_heard_whole():
    asr, early, asked_at, ended = run([(LOUD, 60), (QUIET, 15), (LOUD, 30), (QUIET, 40)])
    [(_, utterance, live)] = ended
    assert len(asked_at) == 2 and early.dropped == 1  # the first one thrown away
    assert [result for result, _sec in early.told_of] == ["dropped", "used"]  # its cost, told
    assert live is not None and live.finish(5) == [("final", f"{len(utterance.pcm)} bytes")]
    assert asr.heard[-1] == len(utterance.pcm) > asr.heard[0]


def test_off_when_zero():
    asr, early, asked_at, ended = run([(LOUD, 60), (QUIET, 40)], early_sec=0)
    assert asked_at == [] and ended[0][2] is None and asr.heard == []
