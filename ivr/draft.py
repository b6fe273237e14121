"""A reply's LLM begun on the caller's words before their turn has surely ended: read and kept,
never acted on, until the turn takes it (the same words, the same history) or throws it away."""

from __future__ import annotations

import queue
import re
import threading
from collections.abc import Callable, Iterator

from .booking.tools import BookingTools

END = object()  # the LLM's stream is over
CHANGES = frozenset({"book", "cancel", "move"})  # booking tools that change the desk
HELD_SEC = 120.0  # longest a draft's change of the desk waits to be taken or dropped


class Reading:
    """An LLM's reply read on a thread of its own into a queue, so that the reader of the queue
    can time a stalled stream out; once `stopped()` says so it stops reading (closing the
    generator closes the engine's HTTP stream)."""

    def __init__(self, stopped: Callable[[], bool]):
        self.stopped = stopped
        self.pieces: queue.Queue = queue.Queue()
        self.chars = 0  # the text the LLM has written so far
        self.over = threading.Event()  # the reader has stopped reading

    def read(self, deltas: Callable[[], Iterator]) -> None:
        """On the reading thread: each delta into the queue, then END (or the error)."""
        try:
            stream = deltas()
            try:
                for delta in stream:
                    if self.stopped():
                        break
                    self.chars += len(delta) if isinstance(delta, str) else 0
                    self.pieces.put(delta)
            finally:
                close = getattr(stream, "close", None)
                if close is not None:
                    close()
            self.pieces.put(END)
        except Exception as exc:  # noqa: BLE001 - handed to the queue's reader
            self.pieces.put(exc)
        finally:
            self.over.set()

    def next(self, timeout: float):
        """The next delta, END, or the reader's error; queue.Empty after `timeout` s."""
        return self.pieces.get(timeout=timeout)


class Draft:
    """The reply begun on `text` (the caller's words so far, read as a whole sentence): its
    deltas and Actions are kept, not acted on, until the turn decides (once): used, or
    dropped (its reader stops)."""

    def __init__(self, call_sid: str, text: str):
        self.call_sid, self.text = call_sid, text
        self.history: list[dict] | None = None  # the call's history it was begun on
        self.tools: DraftTools | None = None  # the booking tools handed to the LLM
        self.ready = threading.Event()  # the history read and the LLM asked (or failed)
        self.decided = threading.Event()
        self.used = False
        self.reply_done: Callable[[], bool] = lambda: False  # once used: the turn's reply's
        self.reading = Reading(lambda: (self.decided.is_set() and not self.used)
                               or self.reply_done())

    def decide(self, used: bool, reply_done: Callable[[], bool] | None = None) -> bool:
        """Used (by the turn whose reply is `reply_done`) or dropped; False if it was already
        decided."""
        if self.decided.is_set():
            return False
        self.used = used
        if reply_done is not None:
            self.reply_done = reply_done
        self.decided.set()
        return True

    def same_text(self, text: str) -> bool:
        return words(self.text) == words(text)


class DraftTools(BookingTools):
    """A draft's booking tools: looking up runs at once; a change of the desk (book, cancel,
    move) waits until the draft is taken by its turn, and is never run for a dropped one."""

    draft: Draft | None = None

    @classmethod
    def of(cls, tools: BookingTools, draft: Draft) -> DraftTools:
        held = cls(tools.desk, tools.call_sid, tools.caller, tools.key, tools.zone)
        held.draft = draft
        return held

    def run(self, name: str, arguments: str) -> str:
        if name in CHANGES and self.draft is not None:
            self.draft.decided.wait(HELD_SEC)
            if not self.draft.used:
                raise DraftDropped(f"{name} not run: the draft was not used")
        return super().run(name, arguments)


class DraftDropped(Exception):
    """A dropped draft's LLM asked to change the desk: the reading ends there."""


def words(text: str) -> list[str]:
    """The words of `text` without punctuation (a partial and its final transcript differ in
    their marks)."""
    return re.sub(r"[^\w\s]", " ", text).split()
