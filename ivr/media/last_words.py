"""Words a caller was still saying when the call ended: the call's end waits for them."""

from __future__ import annotations

import threading
from collections.abc import Callable


class LastWords:
    """Per call, whether its cut-off utterance is still being transcribed; what handles the
    call's end (its summary, the owner's notice) runs once it is in the history."""

    def __init__(self):
        self.lock = threading.Lock()
        self.pending: dict[str, list[Callable[[], None]]] = {}

    def begin(self, call_sid: str) -> None:
        with self.lock:
            self.pending.setdefault(call_sid, [])

    def after(self, call_sid: str, then: Callable[[], None]) -> None:
        """Run `then` once the call's last words are in (now, when none are pending)."""
        with self.lock:
            waiting = self.pending.get(call_sid)
            if waiting is not None:
                waiting.append(then)
                return
        then()

    def done(self, call_sid: str) -> None:
        with self.lock:
            waiting = self.pending.pop(call_sid, [])
        for then in waiting:
            then()
