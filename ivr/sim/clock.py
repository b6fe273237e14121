"""Call time (scaled by the emulator's speed), the caller's mic and the tape of everything said."""

from __future__ import annotations

import threading
import time
from collections import deque

from .. import audio

SERVE_POLL_SEC = 0.05  # a serving loop looks for its shutdown this often (socketserver: 0.5 s)
SAMPLE_BYTES = 2


class CallClock:
    """Call seconds since the call started; `speed` > 1 runs the call faster than real time."""

    def __init__(self, speed: float = 1.0):
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self.t0 = time.monotonic()

    def now(self) -> float:
        return (time.monotonic() - self.t0) * self.speed

    def real(self, call_seconds: float) -> float:
        return call_seconds / self.speed

    def sleep_until(self, call_time: float, stop: threading.Event | None = None) -> bool:
        """Sleep until a call time; True if `stop` was set first."""
        delay = self.real(call_time - self.now())
        if delay <= 0:
            return bool(stop and stop.is_set())
        if stop is None:
            time.sleep(delay)
            return False
        return stop.wait(delay)


class Mic:
    """The caller's mouth: queued speech frames and keys, read one 20 ms frame per tick."""

    SILENCE = audio.silence_ulaw(1)

    def __init__(self):
        self.queue: deque[tuple[bytes, str | None, str | None]] = deque()
        self.lock = threading.Lock()

    def speak(self, ulaw: bytes, text: str) -> None:
        with self.lock:
            self.queue.extend((frame, text, None) for frame in audio.frames_of(ulaw))

    def press(self, keys: str) -> None:
        with self.lock:
            self.queue.extend((self.SILENCE, None, key) for key in keys)

    def read(self) -> tuple[bytes, str | None, str | None]:
        """(frame, text being said or None, key pressed or None)."""
        with self.lock:
            return self.queue.popleft() if self.queue else (self.SILENCE, None, None)

    def idle(self) -> bool:
        with self.lock:
            return not self.queue

    def clear(self) -> None:
        with self.lock:
            self.queue.clear()


class Tape:
    """Caller (left) and line (right) PCM16 at 8 kHz, placed by call time."""

    def __init__(self):
        self.tracks = {"caller": bytearray(), "line": bytearray()}
        self.lock = threading.Lock()

    def put(self, track: str, call_time: float, pcm: bytes) -> None:
        offset = int(call_time * audio.RATE) * SAMPLE_BYTES
        with self.lock:
            data = self.tracks[track]
            if len(data) < offset + len(pcm):
                data.extend(b"\0" * (offset + len(pcm) - len(data)))
            data[offset:offset + len(pcm)] = pcm

    def stereo_wav(self) -> bytes:
        with self.lock:
            left, right = bytes(self.tracks["caller"]), bytes(self.tracks["line"])
        return audio.wav_bytes(audio.stereo(left, right), channels=2)
