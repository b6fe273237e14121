"""A reply being written and synthesised: its chunks in order, each playable once its MP3 exists
(or, streamed, once its first audio does)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from . import audio


class LiveAudio:
    """A chunk's μ-law while its synthesis makes it: added by the synthesis, read by the player."""

    def __init__(self):
        self.cond = threading.Condition()
        self.pieces: list[bytes] = []
        self.over = self.failed = False

    def add(self, piece: bytes) -> None:
        with self.cond:
            self.pieces.append(piece)
            self.cond.notify_all()

    def end(self, failed: bool = False) -> None:
        """No more audio (`failed`: the synthesis broke off; the rest is a fallback sound)."""
        with self.cond:
            self.over, self.failed = True, failed
            self.cond.notify_all()

    def read(self, timeout: float) -> Iterator[bytes]:
        """The audio in order as it comes, until the synthesis ends; TimeoutError when nothing
        came for `timeout` seconds."""
        index = 0
        while True:
            with self.cond:
                if not self.cond.wait_for(lambda seen=index: seen < len(self.pieces)
                                          or self.over, timeout):
                    raise TimeoutError(f"no audio for {timeout:g} s")
                new, over = self.pieces[index:], self.over
            index += len(new)
            if new:
                yield b"".join(new)
            if over and not new:
                return

    def frames(self, timeout: float) -> Iterator[list[bytes]]:
        """The audio as 20 ms frames, in batches as it comes (the last frame padded)."""
        carry = b""
        for piece in self.read(timeout):
            carry += piece
            whole = len(carry) - len(carry) % audio.FRAME_BYTES
            if whole:
                yield audio.frames_of(carry[:whole])
                carry = carry[whole:]
        if carry:
            yield audio.frames_of(carry)


@dataclass
class Chunk:
    """One speakable piece of a reply and, once synthesised, its MP3 and length; `live` while
    it is played as it is synthesised (REPLY_MODE=stream, an engine that streams)."""

    text: str
    audio: Path | None = None
    seconds: float = 0.0
    fallback: str = ""  # why this chunk is a fallback sound, not the text
    live: LiveAudio | None = None

    @property
    def name(self) -> str:
        return self.audio.name if self.audio else ""


class ReplyObserver(Protocol):
    """Told of a reply's progress, in order, under the reply's lock: it must only queue work."""

    def part(self, index: int, chunk: Chunk) -> None:
        """Chunk `index` is ready."""

    def end(self, parts: int, cancelled: bool, ending: str) -> None:
        """No chunk beyond the first `parts` will be added (`cancelled`: nor made ready);
        `ending`: what the line does after the reply ("hangup", "transfer" or "")."""


class SpokenReply:
    """Chunks are added in order by the writer and become ready (in any order) as their
    synthesis ends; players take them in order. `cancel()` stops the writer (a barge-in);
    `marks` holds the monotonic time of each stage of the turn."""

    def __init__(self, started: float | None = None):
        self.chunks: list[Chunk] = []
        self.ready: list[bool] = []
        self.done = False  # no chunk will be added any more
        self.cancelled = threading.Event()
        self.played = threading.Event()  # the first audio went out (or nobody will play it)
        self.recorded = threading.Event()  # the turn's row and history are written
        self.heard_text: str | None = None  # what the caller heard, when a barge-in cut it
        self.ending = ""  # after the reply: "hangup", "transfer" (set before it closes) or ""
        self.history_saved = False
        self.written = False  # the writer added its last chunk; it closes once the history has it
        self.cond = threading.Condition(threading.RLock())
        self.marks: dict[str, float] = {"speech_end": started or time.monotonic()}
        self.observer: ReplyObserver | None = None
        self.told_end: tuple[int, bool] | None = None  # what the observer last heard of the end

    def observe(self, observer: ReplyObserver) -> None:
        """Tell `observer` what is ready and whether the reply ended, then each change."""
        with self.cond:
            self.observer = observer
            for index, chunk in enumerate(self.chunks):
                if self.ready[index]:
                    observer.part(index, chunk)
            self.told_end = None
            self._tell_end()

    def _tell_end(self) -> None:
        """Tell the observer how the reply ends, when that changed (under the lock)."""
        state = (len(self.chunks), self.cancelled.is_set(), self.ending)
        if self.observer is not None and self.done and state != self.told_end:
            self.told_end = state
            self.observer.end(*state)

    # ---- the writer ---------------------------------------------------------------------------
    def add(self, text: str) -> int | None:
        """Append a chunk; None once the reply is closed (cancelled or cut)."""
        with self.cond:
            if self.done:
                return None
            self.chunks.append(Chunk(text))
            self.ready.append(False)
            return len(self.chunks) - 1

    def set_audio(self, index: int, audio: Path, seconds: float, fallback: str = "") -> None:
        with self.cond:
            if index >= len(self.chunks):
                return  # cut off meanwhile
            chunk = self.chunks[index]
            chunk.audio, chunk.seconds, chunk.fallback = audio, seconds, fallback
            self.ready[index] = True
            self.cond.notify_all()
            if self.observer is not None and not self.cancelled.is_set():
                self.observer.part(index, chunk)

    def set_live(self, index: int, live: LiveAudio) -> None:
        """Chunk `index` plays as it is synthesised: ready now, its MP3 comes once it is whole
        (only the stream plays it: no observer is told)."""
        with self.cond:
            if index < len(self.chunks):
                self.chunks[index].live = live
                self.ready[index] = True
                self.cond.notify_all()

    def all_added(self) -> None:
        """The writer will add no more chunks (it closes the reply once the turn's history is
        written)."""
        with self.cond:
            self.written = True
            self.cond.notify_all()

    def close(self) -> None:
        """No more chunks (the reply is complete, failed, or cancelled)."""
        with self.cond:
            self.done = True
            self.cond.notify_all()
            self._tell_end()

    def fail(self, index: int, audio: Path, seconds: float, fallback: str) -> None:
        """Chunk `index` becomes a fallback sound and the reply ends with it."""
        with self.cond:
            self.set_audio(index, audio, seconds, fallback)
            self.cut(index)

    def cut(self, index: int) -> None:
        """Drop the chunks after `index` (the reply ends there: a fallback took its place)."""
        with self.cond:
            del self.chunks[index + 1:], self.ready[index + 1:]
            self.done = True
            self.cond.notify_all()
            self._tell_end()

    def mark(self, stage: str) -> None:
        """Note when a stage first happened (later calls keep the first time)."""
        self.marks.setdefault(stage, time.monotonic())

    def ms(self) -> dict[str, int]:
        """Each stage in milliseconds after the end of the caller's speech."""
        marks = dict(self.marks)  # other threads may be marking meanwhile
        start = marks.pop("speech_end")
        return {k: round((t - start) * 1000) for k, t in marks.items()}

    def age_ms(self) -> int:
        """Milliseconds since the end of the caller's speech."""
        return round((time.monotonic() - self.marks["speech_end"]) * 1000)

    # ---- the players --------------------------------------------------------------------------
    def wait(self, index: int, timeout: float) -> Chunk | None:
        """Chunk `index` once it is ready; None when the reply ended before it.
        TimeoutError if it is still being written or synthesised after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not (index < len(self.chunks) and self.ready[index]):
                if (self.done and index >= len(self.chunks)) or self.cancelled.is_set():
                    return None
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"chunk {index + 1} not ready in {timeout:g} s")
                self.cond.wait(left)
            return self.chunks[index]

    def settle(self, index: int, timeout: float) -> None:
        """When the first `index` chunks are the whole reply and only its close is pending
        (the turn's history being written), wait for the close, `timeout` seconds at most."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.written and not self.done and index >= len(self.chunks):
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self.cond.wait(left)

    def ready_from(self, index: int) -> list[Chunk]:
        """The chunks from `index` on that are ready now, up to the first one that is not."""
        with self.cond:
            ready = []
            for i in range(index, len(self.chunks)):
                if not self.ready[i]:
                    break
                ready.append(self.chunks[i])
                if self.chunks[i].fallback:
                    break  # the reply ends with its fallback sound
            return ready

    def ends_at(self, index: int) -> bool:
        """True when no chunk will ever follow the first `index` ones."""
        with self.cond:
            return self.done and index >= len(self.chunks)

    def complete_at(self, index: int) -> bool:
        """True when the writer added its last chunk and there are no more than `index`
        (the close may still be pending)."""
        with self.cond:
            return self.written and index >= len(self.chunks)

    def audio_out(self) -> None:
        """The first audio of the reply went out to the caller."""
        self.mark("first_audio")
        self.played.set()

    def unwatched(self) -> None:
        """Nobody times this reply's delivery (its record need not wait for it)."""
        self.played.set()

    def cancel(self) -> None:
        """Stop writing it; nobody plays the rest (a barge-in, a newer turn, a hang-up): a
        chunk being heard as it is synthesised ends now (its synthesis stops soon after)."""
        with self.cond:
            self.cancelled.set()
            self.played.set()
            for chunk in self.chunks:
                if chunk.live is not None:
                    chunk.live.end()
            self.close()

    @property
    def text(self) -> str:
        with self.cond:
            return " ".join(c.text for c in self.chunks)

    @property
    def names(self) -> list[str]:
        with self.cond:
            return [c.name for c in self.chunks if c.audio]


class PendingReplies:
    """Replies whose later chunks a continuation webhook will play, by call (one per call:
    a newer turn replaces an older one); bounded, oldest dropped first. `share(call_sid, turn,
    tail)` gives each reply put here an observer that writes it through to the store, for a
    continuation that another instance answers."""

    def __init__(self, kept: int = 2000,
                 share: Callable[[str, int, str], ReplyObserver] | None = None):
        self.lock = threading.Lock()
        self.kept = kept
        self.share = share
        self.replies: OrderedDict[str, tuple[int, str, SpokenReply]] = OrderedDict()

    def put(self, call_sid: str, turn: int, tail: str, reply: SpokenReply) -> None:
        """`tail` is how the call listens once the reply is over: stream, record or gather."""
        if self.share is not None:
            reply.observe(self.share(call_sid, turn, tail))
        with self.lock:
            self.replies[call_sid] = (turn, tail, reply)
            self.replies.move_to_end(call_sid)
            while len(self.replies) > self.kept:
                self.replies.popitem(last=False)[1][2].cancel()

    def get(self, call_sid: str, turn: int) -> tuple[str, SpokenReply] | None:
        with self.lock:
            found = self.replies.get(call_sid)
        return (found[1], found[2]) if found and found[0] == turn else None

    def drop(self, call_sid: str, reply: SpokenReply | None = None) -> None:
        """Forget the call's reply (only `reply`, when given); it is cancelled."""
        with self.lock:
            found = self.replies.get(call_sid)
            if found and (reply is None or found[2] is reply):
                del self.replies[call_sid]
                found[2].cancel()

    def cancel_all(self) -> None:
        """Cancel every reply (the process is closing: whoever continues them elsewhere learns
        that no more chunks will come, and plays the fallback phrase at once)."""
        with self.lock:
            found = [entry[2] for entry in self.replies.values()]
            self.replies.clear()
        for reply in found:
            reply.cancel()
