"""The three engine interfaces: ASR (speech → text), LLM (text → reply), TTS (text → MP3)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from .. import threads

if TYPE_CHECKING:
    from ..facts.facts import Facts


def last_said(history: list[dict], role: str) -> str:
    """The text of the latest message of `role` ("user" or "assistant"), or ""."""
    return next((m["text"] for m in reversed(history) if m["role"] == role), "")


BOOKING_KEY = "booking"  # on the line's message in the history: the booking's next step


def booking_step(history: list[dict]) -> dict | None:
    """The booking's next step, if the line's last message asked a booking question (the
    dialog keeps it there beside the words: ivr/booking/conversation.py)."""
    last = next((m for m in reversed(history) if m["role"] == "assistant"), None)
    return last.get(BOOKING_KEY) if last else None


@dataclass(frozen=True)
class Action:
    """What the line does once the reply is said, yielded by an LLM among the reply's text."""

    kind: str  # "transfer": to the owner (in business hours); "hangup": end the call;
    # "book": the booking conversation says the reply (ivr/booking/conversation.py);
    # "unanswered": the line could not answer the caller's question (a gap for the owner)
    why: str = ""  # for "unanswered": why ("no intent", "not in the facts", …)


TRANSFER, HANG_UP, BOOK = Action("transfer"), Action("hangup"), Action("book")
UNANSWERED = Action("unanswered", "not understood")


class Tools(Protocol):
    """Functions an LLM may call, run by code (the booking tools, ivr/booking/tools.py, handed
    in by the dialog: an engine never reaches the desk itself)."""

    definitions: Sequence[tuple[str, str, dict]]  # (name, what for, its arguments' JSON schema)
    kept: list  # what the engine wants in the history of this turn (calls and results)

    def run(self, name: str, arguments: str) -> str:
        """The result of tool `name` called with JSON `arguments`, as JSON (an error too)."""


class EngineError(RuntimeError):
    """An engine failed; the dialog logs it and falls back to a sound."""


class TranscriptMismatch(EngineError):
    """A voice said other words than the text it was given (it answered it, say)."""

    def __init__(self, text: str, transcript: str):
        super().__init__(f"the voice said {clipped(transcript, 80)!r} "
                         f"instead of {clipped(text, 80)!r}")
        self.text, self.transcript = text, transcript


class ASR:
    """Speech recognition of one utterance of 8 kHz 16-bit PCM."""

    name = "asr"
    hears_live = False  # True: live() sends audio while it is spoken (worth opening early)

    def transcribe(self, pcm16_8k: bytes) -> str:
        raise NotImplementedError

    def transcribe_detailed(self, pcm16_8k: bytes) -> list[tuple[str, str]]:
        """(kind, text) results, interim ones first; engines without interim give one final."""
        return [("final", self.transcribe(pcm16_8k))]

    def recognize(self, pcm16_8k: bytes) -> str:
        """One-shot recognition of a recording (defaults to transcribe)."""
        return self.transcribe(pcm16_8k)

    def live(self) -> LiveRecognition:
        """A recognition of the next utterance, fed while it is spoken (default: buffered)."""
        return LiveRecognition(self)


class LiveRecognition:
    """One utterance fed as it is spoken; this default keeps it and transcribes it at finish."""

    def __init__(self, asr: ASR):
        self.asr = asr
        self.lock = threading.Lock()
        self.buffer = bytearray()
        self.closed = self.cancelled = False  # closed: no more audio (finished or cancelled)
        self.thread: threading.Thread | None = None
        self.results: list[tuple[str, str]] = []
        self.error: Exception | None = None
        self.partial = ""  # the words recognised so far (an engine that hears live: as they come)

    def feed(self, pcm16_8k: bytes) -> None:
        """The next audio of the utterance (20 ms a call, from the event loop: never blocks)."""
        with self.lock:
            if not self.closed:
                self.buffer += pcm16_8k

    def finish(self, timeout: float) -> list[tuple[str, str]]:
        """No more audio: (kind, text) results, interim first; TimeoutError after `timeout` s."""
        self.end_audio()
        return self.wait(timeout)

    def end_audio(self) -> None:
        """No more audio: recognition starts now, without waiting (finish then waits)."""
        with self.lock:
            if not self.closed and self.buffer:
                pcm = bytes(self.buffer)
                self.start(lambda: self.asr.transcribe_detailed(pcm))
            self.closed = True

    def cancel(self) -> None:
        """The utterance was discarded: drop it (idempotent, and harmless after finish)."""
        with self.lock:
            self.closed = self.cancelled = True
            self.buffer.clear()

    def start(self, recognize: Callable[[], list[tuple[str, str]]]) -> None:
        """Run `recognize` in a daemon thread: its results, or its error, are kept for wait."""
        def run():
            try:
                self.results += recognize()
            except Exception as exc:
                if not self.cancelled:  # a cancelled recognition's error is its cancellation
                    self.error = exc
        self.thread = threads.start("live", run, tag=self.asr.name)

    def wait(self, timeout: float) -> list[tuple[str, str]]:
        """The results once the thread is done ([] if nothing was fed); a late one is cancelled."""
        if self.thread is None:
            return []
        self.thread.join(timeout)
        if self.thread.is_alive():
            self.cancel()
            raise TimeoutError(f"recognition took longer than {timeout:.3g} s")
        if self.error is not None:
            raise self.error
        return list(self.results)


class LLM:
    """Writes the line's reply to the caller's text, given the conversation so far."""

    name = "llm"
    runs_tools = False  # True: reply_tokens takes `tools` (Tools) and runs the calls it gets

    def reply(self, history: list[dict], text: str) -> str:
        raise NotImplementedError

    def reply_tokens(self, history: list[dict], text: str) -> Iterator[str | Action]:
        """The reply as it is written, a piece at a time (engines that cannot: all at once),
        and, anywhere among the pieces, TRANSFER (the caller asks for a person) or HANG_UP."""
        yield self.reply(history, text)

    def lead(self, history: list[dict], text: str) -> dict | None:
        """A message to keep for the owner (name, phone, reason) once the caller left one."""
        return None

    def partial_lead(self, history: list[dict]) -> dict | None:
        """The parts of a message (name, phone, reason) the caller gave before the call ended
        without the rest, or None (none given, or an engine that takes no messages)."""
        return None

    def texts(self) -> list[str]:
        """Fixed sentences this engine says (worth prewarming in the TTS cache)."""
        return []

    def grounding(self) -> Facts | None:
        """The facts this engine's words are checked against, each chunk before it is spoken
        (ivr/facts/grounding.py: its figures), or None when they need no check (the scripted
        flow: its texts are the owner's own)."""
        return None

    def summarize(self, history: list[dict], lead: dict | None) -> str:
        """Two lines for the owner: what the caller said, then the message left (or none)."""
        said = " / ".join(m["text"] for m in history if m["role"] == "user" and m["text"])
        first = f"המתקשר אמר: {clipped(said, SUMMARY_LINE_CHARS)}" if said else "המתקשר לא אמר דבר"
        return f"{first}\n{lead_line(lead)}"


class TTS:
    """Synthesises a reply as MP3 bytes; `voice` is part of the cache key."""

    name = "tts"
    voice = ""
    speaks_live = False  # True: live() yields the audio while it is being synthesised

    def synthesize(self, text: str) -> bytes:
        raise NotImplementedError

    def live(self, text: str) -> Iterator[bytes]:
        """μ-law 8 kHz audio of `text` as it is synthesised, in pieces of any length (engines
        with `speaks_live`); closing the iterator early cancels the synthesis."""
        raise NotImplementedError

    def close(self) -> None:
        """Let go of what the engine keeps open (connections); most keep nothing."""


SUMMARY_LINE_CHARS = 160  # a summary line longer than this is cut with "…"
NO_MESSAGE = "לא הושארה הודעה"
INCOMPLETE_MESSAGE = "הודעה חלקית (המתקשר ניתק לפני שסיים)"


def clipped(text: str, limit: int) -> str:
    """`text` on one line, cut at a word with "…" when longer than `limit`."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + "…"


def lead_line(lead: dict | None) -> str:
    """A summary's second line: the message left (name, phone, reason), or that there is none."""
    if not lead:
        return NO_MESSAGE
    who = ", ".join(v for v in (lead.get("name"), lead.get("phone")) if v) or "ללא שם וטלפון"
    reason = lead.get("reason") or ""
    head = INCOMPLETE_MESSAGE if lead.get("incomplete") else "הודעה"
    return clipped(f"{head}: {who}" + (f" — {reason}" if reason else ""), SUMMARY_LINE_CHARS)
