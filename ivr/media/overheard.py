"""What a fork heard of a caller who spoke over the line's Plays, for the call's next stream."""

from __future__ import annotations

import threading

MAX_FRAMES = 1500  # 30 s of 20 ms frames: more than any utterance (MAX_UTT_SEC)
MAX_CALLS = 1000  # calls whose carried audio waits for their stream; the oldest goes first


class Overheard:
    """Per call, the frames of an utterance a fork began to hear (from the barge-in on) until
    the call's next stream takes them: so the question said over a reply is heard whole."""

    def __init__(self):
        self.lock = threading.Lock()
        self.calls: dict[str, list[bytes]] = {}

    def begin(self, call_sid: str, frames: list[bytes]) -> None:
        with self.lock:
            self.calls.pop(call_sid, None)
            while len(self.calls) >= MAX_CALLS:
                self.calls.pop(next(iter(self.calls)))
            self.calls[call_sid] = list(frames[:MAX_FRAMES])

    def add(self, call_sid: str, frame: bytes) -> bool:
        """One more frame; False once the next stream took them (or none were begun)."""
        with self.lock:
            frames = self.calls.get(call_sid)
            if frames is None:
                return False
            if len(frames) < MAX_FRAMES:
                frames.append(frame)
            return True

    def take(self, call_sid: str) -> list[bytes]:
        """The frames heard so far (none: []); later ones are not kept."""
        with self.lock:
            return self.calls.pop(call_sid, [])
