"""The three engine interfaces: ASR (speech → text), LLM (text → reply), TTS (text → MP3)."""

from __future__ import annotations

from collections.abc import Iterator


def last_said(history: list[dict], role: str) -> str:
    """The text of the latest message of `role` ("user" or "assistant"), or ""."""
    return next((m["text"] for m in reversed(history) if m["role"] == role), "")


class EngineError(RuntimeError):
    """An engine failed; the dialog logs it and falls back to a sound."""


class ASR:
    """Speech recognition of one utterance of 8 kHz 16-bit PCM."""

    name = "asr"

    def transcribe(self, pcm16_8k: bytes) -> str:
        raise NotImplementedError

    def transcribe_detailed(self, pcm16_8k: bytes) -> list[tuple[str, str]]:
        """(kind, text) results, interim ones first; engines without interim give one final."""
        return [("final", self.transcribe(pcm16_8k))]

    def recognize(self, pcm16_8k: bytes) -> str:
        """One-shot recognition of a recording (defaults to transcribe)."""
        return self.transcribe(pcm16_8k)


class LLM:
    """Writes the line's reply to the caller's text, given the conversation so far."""

    name = "llm"

    def reply(self, history: list[dict], text: str) -> str:
        raise NotImplementedError

    def reply_stream(self, history: list[dict], text: str) -> Iterator[str]:
        """The reply as it is written, a piece at a time (engines that cannot: all at once)."""
        yield self.reply(history, text)

    def lead(self, history: list[dict], text: str) -> dict | None:
        """A message to keep for the owner (name, phone, reason) once the caller left one."""
        return None

    def texts(self) -> list[str]:
        """Fixed sentences this engine says (worth prewarming in the TTS cache)."""
        return []


class TTS:
    """Synthesises a reply as MP3 bytes; `voice` is part of the cache key."""

    name = "tts"
    voice = ""

    def synthesize(self, text: str) -> bytes:
        raise NotImplementedError
