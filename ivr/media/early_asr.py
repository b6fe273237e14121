"""Transcription begun in the silence after an utterance, before the turn is sure to end."""

from __future__ import annotations

from collections.abc import Callable

from .. import threads
from ..audio import FRAME_SEC
from ..engines.base import ASR, LiveRecognition
from .endpointing import Pause, TurnDetector, Utterance


class EarlyRecognition:
    """At a Pause (EARLY_ASR_SEC of silence) the utterance's audio goes to the ASR at once,
    so its text is on its way while the rest of the end-of-speech silence is waited out; the
    Utterance that follows with the same audio takes it, and a caller who goes on (or audio
    that was not answered after all) cancels it. `dropped` counts the transcriptions thrown
    away (what this costs); `told(result, seconds)` hears of each one's end ("used" or
    "dropped", with the seconds of audio it carried); `heard(live, text)` is given its words
    as soon as they come, on the recognition's watcher thread (DRAFT_REPLY begins the reply on
    them while the turn is not over yet)."""

    WATCH_SEC = 30.0  # a watcher outlives no recognition longer than this

    def __init__(self, asr: ASR, told: Callable[[str, float], None] = lambda *_: None,
                 heard: Callable[[LiveRecognition, str], None] | None = None):
        self.asr, self.told, self.heard = asr, told, heard
        self.pending: tuple[LiveRecognition, int] | None = None  # (recognition, its frames)
        self.started = self.dropped = 0

    def pause(self, event: Pause) -> None:
        """The caller paused: transcribe what they said so far (without waiting)."""
        self.cancel()
        live = self.asr.live()
        live.feed(event.pcm)
        live.end_audio()
        self.pending, self.started = (live, event.frames), self.started + 1
        if self.heard is not None and live.thread is not None:
            threads.start("live", self._watch, live, tag=self.asr.name)

    def _watch(self, live: LiveRecognition) -> None:
        live.thread.join(self.WATCH_SEC)
        if live.thread.is_alive() or live.cancelled or live.error is not None:
            return
        text = " ".join(t for kind, t in live.results if kind == "final" and t).strip()
        if text:
            self.heard(live, text)

    def take(self, utterance: Utterance) -> LiveRecognition | None:
        """The recognition of this utterance if it was begun on the same audio (else None)."""
        if self.pending is not None and self.pending[1] == utterance.frames:
            (live, frames), self.pending = self.pending, None
            self.told("used", frames * FRAME_SEC)
            return live
        self.cancel()
        return None

    def check(self, detector: TurnDetector) -> None:
        """After a frame: the caller went on (voice again) or the utterance was dropped."""
        if self.pending is not None and detector.run.silence < detector.early_frames:
            self.cancel()

    def cancel(self) -> None:
        if self.pending is not None:
            (live, frames), self.pending = self.pending, None
            live.cancel()
            self.dropped += 1
            self.told("dropped", frames * FRAME_SEC)
