"""Endpointing and barge-in as a pure state machine over 20 ms frames (no I/O, no clock reads).

Time is counted in frames, never read from a clock: Twilio sends a frame every 20 ms even in
silence, so "time since the last frame" is always ~20 ms and cannot end an utterance.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from ..audio import FRAME_SEC

FLOOR_SEC = 0.28  # an utterance must be longer than this (seed 000 §5)
MIN_VOICED_SEC = 0.1  # and this much of it voiced: two clicks 0.3 s apart are not speech
SHORT_UTTERANCE_SEC = 1.2  # up to this long, a shorter silence ends it
SHORT_SILENCE_FLOOR_SEC = 0.35
SHORT_SILENCE_DISCOUNT_SEC = 0.12
GREETING_WAIT_SEC = 0.8  # seed 000 §7: greet only a caller silent this long after `start`
NOISE_WINDOW_SEC = 2.0  # the line's noise floor: its quietest frame of the last 2 s
NOISE_RATIO = 3.0  # voice starts this many times louder than the floor (+9.5 dB)…
HOLD_RATIO = 2.5  # …and, once started (or just before), goes on while this many times (+8 dB)…
VOICE_MIN_RMS = 40  # …and louder than this (a line of digital silence); VAD_RMS is the ceiling
LEAD_SEC = 0.1  # the nearly voiced frames just before voice starts belong to it (its onset)
# over the line's speech, a burst of voice (begun by a frame over VAD_RMS, voiced while over
# BURST_HOLD_SHARE of it) voiced no longer than BACKCHANNEL_SEC is a backchannel ("כן", "אהה"):
# it ends after BURST_GAP_SEC without voice; voice again within BURST_KEEP_SEC continues it
# (its frames are kept and counted: an interrupter's "רגע, …" is heard whole)
BURST_GAP_SEC = 0.24
BURST_KEEP_SEC = 0.8
BURST_HOLD_SHARE = 0.6  # (a quieter caller's voice holds; the line's echo, 35 dB down, not)
WORDS_MAX_SEC = 1.2  # when the live words are all backchannels, the burst may last this long
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
    backchannel_sec: float = 0.0  # voice over the line shorter than this goes on (0: none)
    silence_sec: float = 0.0  # re-prompt a caller silent this long after the line spoke (0: never)
    line_spoke: bool = False  # the line has spoken before this stream (its silence counts at once)
    early_sec: float = 0.0  # a Pause after this much silence in an utterance (0: none)

    @classmethod
    def from_settings(cls, settings, greeting: bool = False,
                      line_spoke: bool = False) -> TurnParams:
        return cls(vad_rms=settings.vad_rms, hangover_ms=settings.vad_hangover_ms,
                   min_utt_sec=settings.min_utt_sec, max_utt_sec=settings.max_utt_sec,
                   refractory_ms=settings.reply_refractory_ms, barge_in=settings.barge_in,
                   barge_in_voice_frames=settings.barge_in_voice_frames, greeting=greeting,
                   backchannel_sec=settings.backchannel_sec,
                   silence_sec=settings.stream_silence_sec, line_spoke=line_spoke,
                   early_sec=settings.early_asr_sec)


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
class Pause:
    """The caller has been silent EARLY_ASR_SEC in an utterance that would be answered: its
    audio as the Utterance will carry it if they stay silent (worth transcribing now)."""

    pcm: bytes
    frames: int  # the kept frames (an Utterance with as many carries the same audio)


@dataclass
class Dropped:
    """Voice heard but not taken as the caller's utterance: `short` (under the floor, or too
    little of it voiced: a click, a breath), `refractory` (begun and ended inside the refractory
    after a very short reply), `thinking` (said while the line was preparing its reply),
    `stream-ended` (still being said when the stream ended)."""

    reason: str
    frames: int
    voiced_frames: int
    pcm: bytes = field(default=b"", compare=False, repr=False)  # `stream-ended` speech:
    # what was heard of it (the caller hung up saying it: it is transcribed)

    @property
    def seconds(self) -> float:
        return self.frames * FRAME_SEC


@dataclass
class BargeIn:
    """The caller talked over the line: stop speaking (send `clear`) and listen."""

    voiced_frames: int


@dataclass
class Backchannel:
    """The caller said something short over the line ("כן", "אהה") and stopped: the line goes
    on speaking; no turn."""

    frames: int
    voiced_frames: int

    @property
    def seconds(self) -> float:
        return self.frames * FRAME_SEC


@dataclass
class Greet:
    """The caller has had no turn and is not speaking GREETING_WAIT_SEC (or later, once a
    click is dropped) after the stream started: speak the greeting now."""


@dataclass
class Silence:
    """The line has spoken (its mark played) and the caller has said nothing since for
    STREAM_SILENCE_SEC: a silent turn (re-prompt, or goodbye)."""


class NoiseFloor:
    """The line's noise level: the quietest frame of the last `window` frames (a sliding
    minimum), so a quiet caller is heard over a quiet line and steady noise never is."""

    def __init__(self, window: int):
        self.window = window
        self.index = 0
        self.levels: deque[tuple[int, int]] = deque()  # (frame, level), levels increasing

    def add(self, level: int) -> int:
        """Take one frame's level; returns the floor including it."""
        self.index += 1
        levels = self.levels
        while levels and levels[-1][1] >= level:
            levels.pop()
        levels.append((self.index, level))
        if levels[0][0] <= self.index - self.window:
            levels.popleft()
        return levels[0][1]


class VoiceRun:
    """A stretch of voice being heard: its frames from the first voiced one, how many were
    voiced, and the silent frames since the last voiced one."""

    def __init__(self):
        self.frames: list[bytes] = []
        self.voiced = 0
        self.silence = 0

    def add(self, pcm: bytes, voiced: bool) -> None:
        self.frames.append(pcm)
        self.voiced += voiced
        self.silence = 0 if voiced else self.silence + 1

    @property
    def speech(self) -> int:
        """Frames from its first voiced frame to its last."""
        return len(self.frames) - self.silence


class Burst(VoiceRun):
    """Voice over the line's speech: its frames from the first voiced one (a backchannel's
    kept until the burst ends), and where its last part (after a backchannel) began."""

    def __init__(self):
        super().__init__()
        self.part_voiced = 0  # its voiced frames before its last part
        self.part = 0  # where that part began (frame index)
        self.reported = False  # its last part was reported as a backchannel
        self.words: bool | None = None  # the live words of it: all backchannels (None: none)

    def add(self, pcm: bytes, voiced: bool) -> None:
        if voiced and self.reported:
            self.reported, self.part, self.part_voiced = False, len(self.frames), self.voiced
        super().add(pcm, voiced)


class TurnDetector:
    """Feed every inbound frame with its RMS; get Utterance, Dropped, BargeIn, Backchannel,
    Greet and Silence back.

    Voice starts at a frame louder than NOISE_RATIO times the line's noise floor (at least
    VOICE_MIN_RMS), never needing more than VAD_RMS, and holds (its onset just before, its
    quieter sounds after) while frames are louder than HOLD_RATIO times the floor; barge-in,
    over the line's own audio, needs VAD_RMS. The refractory (REPLY_REFRACTORY_MS) starts
    when the reply starts going out; what is left of it when Twilio's mark says the reply has
    played keeps its frames: an answer begun inside it is whole, and only voice that also
    ended inside it is dropped. With BACKCHANNEL_SEC, voice over the line interrupts only once
    more of it is voiced (past BARGE_IN_VOICE_FRAMES when its live words say more than a
    backchannel; up to WORDS_MAX_SEC when they say only that): a shorter burst is a
    Backchannel. Silence counts the frames with no voice while listening after the line has
    spoken; any voice (even a click) starts the count again.
    """

    LISTENING, THINKING, SPEAKING = "listening", "thinking", "speaking"

    def __init__(self, params: TurnParams):
        self.p = params
        self.state = self.LISTENING
        self.floor_frames = int(FLOOR_SEC / FRAME_SEC) + 1
        self.min_voiced = frames(MIN_VOICED_SEC)
        self.max_frames = frames(params.max_utt_sec)
        self.hangover_frames = round(params.hangover_ms / 1000 / FRAME_SEC)
        self.noise = NoiseFloor(frames(NOISE_WINDOW_SEC))
        self.floor, self.voice_at = -1, (params.vad_rms, params.vad_rms)
        self.run = VoiceRun()  # the utterance being heard
        self.unheard = VoiceRun()  # voice while the line thinks (reported, never answered)
        self.lead: deque[bytes] = deque(maxlen=frames(LEAD_SEC))  # frames that held, just now
        self.refractory_left = 0
        self.voice_in_row = 0
        self.recent: deque[bytes] = deque(maxlen=max(1, params.barge_in_voice_frames))
        self.burst = Burst()  # voice over the line's speech, while it is not yet a barge-in
        self.burst_frames = frames(params.backchannel_sec) if params.backchannel_sec > 0 else 0
        self.gap_frames, self.keep_frames = frames(BURST_GAP_SEC), frames(BURST_KEEP_SEC)
        self.frames_seen = 0
        self.heard_voice = False
        self.greeted = not params.greeting
        self.silence_frames = frames(params.silence_sec) if params.silence_sec > 0 else 0
        self.end_sec: float | None = None  # live words' say on the silence that ends it
        self.early_frames = max(frames(params.early_sec), self.hangover_frames) \
            if params.early_sec > 0 else -1
        self.quiet = 0  # frames without voice since the line spoke, while `counting`
        self.counting = params.line_spoke

    @property
    def buffer(self) -> list[bytes]:
        """The frames of the utterance being heard, or while the line speaks of the burst of
        voice over it (empty when none is)."""
        return self.burst.frames if self.state == self.SPEAKING else self.run.frames

    @property
    def hearing_voice(self) -> bool:
        """Voice is being heard: an utterance, or over the line's speech a burst with
        BARGE_IN_VOICE_FRAMES voiced (a click is not worth recognising)."""
        if self.state == self.SPEAKING:
            return self.burst.voiced >= self.p.barge_in_voice_frames
        return bool(self.run.frames)

    def hear_words(self, backchannel: bool | None) -> None:
        """What live recognition heard of the burst so far: only backchannels (True), more
        (False: a barge-in at the next voiced frame), or nothing yet (None)."""
        self.burst.words = backchannel

    # ---- control from the call ------------------------------------------------------------
    def listen(self) -> None:
        """Back to listening with no refractory (a turn produced nothing to say)."""
        self.state = self.LISTENING
        self.refractory_left = 0
        self.counting, self.quiet = True, 0  # the caller's turn again: their silence counts
        self._reset()

    def take_turn(self) -> str:
        """A turn that needs no utterance (a key press, the greeting): stop listening and think.
        Returns the state before, so a key pressed while the line speaks acts as a barge-in."""
        before = self.state
        self.state = self.THINKING
        self.greeted = True  # a caller who pressed a key first is answered, not greeted
        self.counting = False  # a turn's end (its reply's mark) starts the count again
        self._reset()
        return before

    def bot_speaking(self) -> None:
        """The reply starts going out: the refractory starts now (seed 000 §5)."""
        self.state = self.SPEAKING
        self.refractory_left = round(self.p.refractory_ms / 1000 / FRAME_SEC)
        self.voice_in_row = 0
        self.recent.clear()
        self.unheard, self.burst = VoiceRun(), Burst()

    def bot_done(self) -> None:
        """The reply has played (Twilio's mark): listen, through what is left of the refractory.
        Voice begun over its end and still going on is the start of the caller's utterance."""
        burst = self.burst
        self.state = self.LISTENING
        self.counting, self.quiet = True, 0
        self._reset()
        if burst.frames and not burst.reported:
            self.run.frames, self.run.voiced = burst.frames, burst.voiced
            self.run.silence = burst.silence

    def stop(self) -> Dropped | None:
        """The stream has ended: the voice being heard, if any, is dropped (and reported)."""
        run = self.run if self.run.frames else self.unheard
        if not run.frames and self.burst.frames and not self.burst.reported:
            run = self.burst  # said over the line, and not yet known to be a backchannel
        if not run.frames:
            return None
        self._reset()
        kept = self._kept(run)
        if not self._is_speech(run):
            return Dropped("short", len(kept), run.voiced)
        if self.state == self.THINKING:
            return Dropped("thinking", len(kept), run.voiced)
        return Dropped("stream-ended", len(kept), run.voiced, b"".join(kept))

    # ---- frames -----------------------------------------------------------------------------
    def thresholds(self, floor: int) -> tuple[int, int]:
        """(where voice starts, where it holds) over this noise floor; the floor changes
        seldom, so they are kept for it."""
        if floor != self.floor:
            self.floor = floor
            self.voice_at = tuple(min(self.p.vad_rms, max(VOICE_MIN_RMS, round(ratio * floor)))
                                for ratio in (NOISE_RATIO, HOLD_RATIO))
        return self.voice_at

    def feed(self, pcm: bytes, level: int) -> list:
        self.frames_seen += 1
        floor = self.noise.add(level)
        if self.state == self.SPEAKING:
            return self._while_speaking(pcm, level)
        start_at, hold_at = self.thresholds(floor)
        starts, holds = level > start_at, level > hold_at
        if self.state == self.THINKING:
            return self._while_thinking(pcm, starts, holds)
        in_refractory = self.refractory_left > 0
        self.refractory_left -= in_refractory
        events: list = []
        if not self.greeted and not self.heard_voice and not starts and not self.run.frames \
                and self.frames_seen >= frames(GREETING_WAIT_SEC):
            self.greeted = True
            events.append(Greet())
        if self._hear(self.run, pcm, starts, holds):
            self.quiet = 0
            if self._ended(self.run):
                events.append(self._finish(in_refractory))
                self.heard_voice |= isinstance(events[-1], Utterance)
            elif self.run.silence == self.early_frames and not in_refractory \
                    and self._is_speech(self.run):
                kept = self._kept(self.run)
                events.append(Pause(b"".join(kept), len(kept)))
        elif self._silent_long(events):
            events.append(Silence())
        return events

    def _silent_long(self, events: list) -> bool:
        """One more frame without voice; True (and thinking: the silent turn is in flight)
        once the caller has been silent STREAM_SILENCE_SEC since the line spoke."""
        if not (self.counting and self.silence_frames) or events:
            return False
        self.quiet += 1
        if self.quiet < self.silence_frames:
            return False
        self.take_turn()
        return True

    def _hear(self, run: VoiceRun, pcm: bytes, starts: bool, holds: bool) -> bool:
        """The frame into `run`: once open, voiced while it holds; opened by a frame that
        starts voice, with the frames just before it that held (its onset). False while
        no run is open."""
        if run.frames:
            run.add(pcm, holds)
            return True
        if not starts:
            if holds:
                self.lead.append(pcm)
            elif self.lead:
                self.lead.clear()
            return False
        run.frames = list(self.lead)
        run.voiced = len(run.frames)
        self.lead.clear()
        run.add(pcm, True)
        return True

    def _while_speaking(self, pcm: bytes, level: int) -> list:
        self.refractory_left = max(0, self.refractory_left - 1)
        voiced = level > self.p.vad_rms
        if self.burst_frames and self.p.barge_in:
            return self._over_speech(pcm, voiced, level > self.p.vad_rms * BURST_HOLD_SHARE)
        self.recent.append(pcm)
        self.voice_in_row = self.voice_in_row + 1 if voiced else 0
        if not (self.p.barge_in and self.voice_in_row >= self.p.barge_in_voice_frames):
            return []
        heard = list(self.recent)
        return [self._barge_in(heard, len(heard), 0)]

    def _over_speech(self, pcm: bytes, voiced: bool, holds: bool) -> list:
        """BACKCHANNEL_SEC: a burst of voice over the line is a barge-in once enough of it is
        voiced, a Backchannel once it stops short of that; a backchannel's frames stay with
        the burst while the caller may go on (an interrupter's first word is not lost)."""
        burst = self.burst
        if not (burst.frames or voiced):
            return []
        burst.add(pcm, holds)
        needed = self.burst_frames
        if burst.words is False:
            needed = self.p.barge_in_voice_frames
        elif burst.words:
            needed = max(needed, frames(WORDS_MAX_SEC))
        if burst.voiced > needed:  # voice that goes on past the threshold
            return [self._barge_in(burst.frames, burst.voiced, burst.silence)]
        if burst.silence >= self.keep_frames:
            self.burst = Burst()
        elif burst.silence >= self.gap_frames and not burst.reported:
            burst.reported = True
            voiced = burst.voiced - burst.part_voiced
            if voiced >= self.p.barge_in_voice_frames:  # less is a click
                return [Backchannel(burst.speech - burst.part, voiced)]
        return []

    def _barge_in(self, heard: list[bytes], voiced: int, silence: int) -> BargeIn:
        """The caller interrupts: listen, with what was heard of them as their utterance."""
        self.state = self.LISTENING
        self.refractory_left = 0  # the caller's own voice: nothing of it is skipped
        self._reset()
        self.run.frames, self.run.voiced, self.heard_voice = list(heard), voiced, True
        self.run.silence = silence
        return BargeIn(voiced)

    def _while_thinking(self, pcm: bytes, starts: bool, holds: bool) -> list:
        """One turn at a time: voice while the line prepares its reply is not answered, but
        each stretch of it is reported when it ends."""
        run = self.unheard
        if not self._hear(run, pcm, starts, holds) or not self._ended(run):
            return []
        self.unheard = VoiceRun()
        kept = self._kept(run)
        reason = "thinking" if self._is_speech(run) else "short"
        return [Dropped(reason, len(kept), run.voiced)]

    def _ended(self, run: VoiceRun) -> bool:
        needed = self._silence_needed(run.speech)
        if run is self.run and self.end_sec is not None:
            needed = frames(max(self.end_sec, self.p.hangover_ms / 1000))
        return run.silence >= needed or len(run.frames) >= self.max_frames

    def hear_end(self, seconds: float | None) -> None:
        """Live words say how much silence ends the utterance being heard (ivr/media/
        turn_end.py: a whole sentence less, a phrase that goes on MIN_UTT_SEC); None: the
        rule by its length."""
        self.end_sec = seconds

    def _silence_needed(self, speech_frames: int) -> int:
        needed = self.p.min_utt_sec
        if speech_frames * FRAME_SEC <= SHORT_UTTERANCE_SEC:
            needed = max(SHORT_SILENCE_FLOOR_SEC, needed - SHORT_SILENCE_DISCOUNT_SEC)
        return frames(max(needed, self.p.hangover_ms / 1000))

    def _is_speech(self, run: VoiceRun) -> bool:
        return run.speech >= self.floor_frames and run.voiced >= self.min_voiced

    def _kept(self, run: VoiceRun) -> list[bytes]:
        """The run without the silence after its hangover."""
        trailing = max(0, run.silence - self.hangover_frames)
        return run.frames[:len(run.frames) - trailing]

    def _finish(self, in_refractory: bool) -> Utterance | Dropped:
        run = self.run
        kept = self._kept(run)
        self._reset()
        if not self._is_speech(run):
            return Dropped("short", len(kept), run.voiced)  # a click or a breath
        if in_refractory:
            return Dropped("refractory", len(kept), run.voiced)
        self.state = self.THINKING
        return Utterance(b"".join(kept), len(kept), run.voiced, run.silence)

    def _reset(self) -> None:
        self.run, self.unheard, self.voice_in_row = VoiceRun(), VoiceRun(), 0
        self.end_sec = None
        self.burst = Burst()
        self.lead.clear()
