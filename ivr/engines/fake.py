"""Fake engines for tests and benchmarks: instant or slow or failing, on demand."""

from __future__ import annotations

import itertools
import threading
import time

from .. import audio
from .base import ASR, LLM, TTS, EngineError


class FakeASR(ASR):
    """Returns the next of `texts` (or describes the audio), after `delay` seconds. The same
    utterance heard again, longer (an early request the caller talked on past, EARLY_ASR_SEC),
    is the same words: its audio is longer and begins with the last request's, and takes no
    next text (the same audio again is a new utterance)."""

    name = "fake"

    def __init__(self, texts: list[str] | None = None, delay: float = 0.0, fail: bool = False):
        self.texts = itertools.cycle(texts) if texts else None
        self.delay, self.fail = delay, fail
        self.heard: list[float] = []
        self.last: tuple[bytes, str] = (b"", "")  # the last request's audio and its words
        self.lock = threading.Lock()

    def transcribe(self, pcm16_8k: bytes) -> str:
        time.sleep(self.delay)
        if self.fail:
            raise EngineError("fake ASR failure")
        seconds = audio.duration_sec(pcm16_8k)
        with self.lock:
            self.heard.append(seconds)
            if self.last[0] and len(pcm16_8k) > len(self.last[0]) \
                    and pcm16_8k.startswith(self.last[0]):
                text = self.last[1]  # the same utterance, heard on past a pause
            elif self.texts:
                text = next(self.texts)
            else:
                text = f"משפט {len(self.heard)} של {seconds:.1f} שניות"  # never two alike
            self.last = (pcm16_8k, text)
            return text


class FakeLLM(LLM):
    """Echoes the caller's text with the turn number, so tests can see history carry over."""

    name = "fake"

    def __init__(self, delay: float = 0.0, fail: bool = False):
        self.delay, self.fail = delay, fail

    def reply(self, history: list[dict], text: str) -> str:
        time.sleep(self.delay)
        if self.fail:
            raise EngineError("fake LLM failure")
        turn = sum(1 for m in history if m["role"] == "user") + 1
        return f"תשובה {turn}: שמעתי {text}"


class FakeTTS(TTS):
    """A tone MP3 whose length follows the text (0.3 s + 20 ms a character, at most 3 s)."""

    name = "fake"
    voice = "tone"

    def __init__(self, delay: float = 0.0, fail: bool = False):
        self.delay, self.fail = delay, fail
        self.calls = 0
        self.encoded: dict[int, bytes] = {}

    def synthesize(self, text: str) -> bytes:
        time.sleep(self.delay)
        self.calls += 1
        if self.fail:
            raise EngineError("fake TTS failure")
        ms = min(3000, 300 + 20 * len(text)) // 100 * 100  # a tenth of a second per bucket
        if ms not in self.encoded:  # encode each length once: instant after the first
            self.encoded[ms] = audio.pcm16_to_mp3(audio.beep_pcm16(ms, 330 + ms // 20, 4000))
        return self.encoded[ms]
