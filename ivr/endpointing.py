"""Endpointing and barge-in as a pure state machine over 20 ms frames (no I/O, no clock reads).

Time is counted in frames, never read from a clock: Twilio sends a frame every 20 ms even in
silence, so "time since the last frame" is always ~20 ms and cannot end an utterance.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from .audio import FRAME_SEC

FLOOR_SEC = 0.28  # an utterance must be longer than this (seed 000 §5)
SHORT_UTTERANCE_SEC = 1.2  # up to this long, a shorter silence ends it
SHORT_SILENCE_FLOOR_SEC = 0.35
SHORT_SILENCE_DISCOUNT_SEC = 0.12
GREETING_WAIT_SEC = 0.8  # seed 000 §7: greet only a caller silent this long after `start`


def frames(seconds: float) -> int:
    return max(1, round(seconds / FRAME_SEC))


@dataclass(frozen=True)
class TurnParams:
    """The seed's listening parameters (DESIGN §5), read from any settings-like object."""

    vad_rms: int
    hangover_ms: int
    min_utt_sec: float
    max_utt_sec: float
    refractory_ms: int
    barge_in: bool
    barge_in_voice_frames: int
    greeting: bool = False

    @classmethod
    def from_settings(cls, settings, greeting: bool = False) -> TurnParams:
        return cls(vad_rms=settings.vad_rms, hangover_ms=settings.vad_hangover_ms,
                   min_utt_sec=settings.min_utt_sec, max_utt_sec=settings.max_utt_sec,
                   refractory_ms=settings.reply_refractory_ms, barge_in=settings.barge_in,
                   barge_in_voice_frames=settings.barge_in_voice_frames, greeting=greeting)


@dataclass
class Utterance:
    """A finished utterance: PCM16 8 kHz without leading silence."""

    pcm: bytes
    frames: int
    voiced_frames: int
    silence_frames: int = 0  # silent frames heard since its end (the caller stopped then)

    @property
    def seconds(self) -> float:
        return self.frames * FRAME_SEC


@dataclass
class BargeIn:
    """The caller talked over the line: stop speaking (send `clear`) and listen."""

    voiced_frames: int


@dataclass
class Greet:
    """The caller has been silent since the stream started: speak the greeting now."""


class TurnDetector:
    """Feed every inbound frame with its RMS; get Utterance, BargeIn and Greet events back."""

    LISTENING, THINKING, SPEAKING = "listening", "thinking", "speaking"

    def __init__(self, params: TurnParams):
        self.p = params
        self.state = self.LISTENING
        self.floor_frames = int(FLOOR_SEC / FRAME_SEC) + 1
        self.max_frames = frames(params.max_utt_sec)
        self.hangover_frames = round(params.hangover_ms / 1000 / FRAME_SEC)
        self.buffer: list[bytes] = []
        self.voiced = 0
        self.silence_run = 0
        self.refractory_left = 0
        self.voice_in_row = 0
        self.recent: deque[bytes] = deque(maxlen=max(1, params.barge_in_voice_frames))
        self.frames_seen = 0
        self.heard_voice = False
        self.greeted = not params.greeting

    # ---- control from the call ------------------------------------------------------------
    def listen(self) -> None:
        """Back to listening with no refractory (a turn produced nothing to say)."""
        self.state = self.LISTENING
        self._reset()

    def take_turn(self) -> str:
        """A turn that needs no utterance (a key press, the greeting): stop listening and think.
        Returns the state before, so a key pressed while the line speaks acts as a barge-in."""
        before = self.state
        self.state = self.THINKING
        self._reset()
        return before

    def bot_speaking(self) -> None:
        self.state = self.SPEAKING
        self.voice_in_row = 0
        self.recent.clear()

    def bot_done(self) -> None:
        """The line finished speaking: listen again after the refractory period."""
        self.state = self.LISTENING
        self.refractory_left = round(self.p.refractory_ms / 1000 / FRAME_SEC)
        self._reset()

    # ---- frames -----------------------------------------------------------------------------
    def feed(self, pcm: bytes, level: int) -> list:
        self.frames_seen += 1
        voiced = level > self.p.vad_rms
        if self.state == self.SPEAKING:
            return self._while_speaking(pcm, voiced)
        if self.state == self.THINKING:
            return []
        if self.refractory_left > 0:
            self.refractory_left -= 1
            return []
        events: list = []
        if voiced:
            self.heard_voice = True
        elif not self.greeted and not self.heard_voice \
                and self.frames_seen >= frames(GREETING_WAIT_SEC):
            self.greeted = True
            events.append(Greet())
        if not self.buffer:
            if voiced:
                self.buffer, self.voiced, self.silence_run = [pcm], 1, 0
            return events
        self.buffer.append(pcm)
        if voiced:
            self.voiced += 1
            self.silence_run = 0
        else:
            self.silence_run += 1
        speech = len(self.buffer) - self.silence_run
        if self.silence_run >= self._silence_needed(speech) or len(self.buffer) >= self.max_frames:
            events.extend(self._finish())
        return events

    def _while_speaking(self, pcm: bytes, voiced: bool) -> list:
        self.recent.append(pcm)
        self.voice_in_row = self.voice_in_row + 1 if voiced else 0
        if not (self.p.barge_in and self.voice_in_row >= self.p.barge_in_voice_frames):
            return []
        heard = list(self.recent)
        self.state = self.LISTENING
        self._reset()
        self.buffer, self.voiced, self.heard_voice = heard, len(heard), True
        return [BargeIn(len(heard))]

    def _silence_needed(self, speech_frames: int) -> int:
        needed = self.p.min_utt_sec
        if speech_frames * FRAME_SEC <= SHORT_UTTERANCE_SEC:
            needed = max(SHORT_SILENCE_FLOOR_SEC, needed - SHORT_SILENCE_DISCOUNT_SEC)
        return frames(max(needed, self.p.hangover_ms / 1000))

    def _finish(self) -> list:
        speech = len(self.buffer) - self.silence_run
        trailing = max(0, self.silence_run - self.hangover_frames)
        kept = self.buffer[:len(self.buffer) - trailing]
        voiced, silence = self.voiced, self.silence_run
        self._reset()
        if speech < self.floor_frames:
            return []  # a click or a breath, not speech
        self.state = self.THINKING
        return [Utterance(b"".join(kept), len(kept), voiced, silence)]

    def _reset(self) -> None:
        self.buffer, self.voiced, self.silence_run, self.voice_in_row = [], 0, 0, 0
