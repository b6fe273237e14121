"""One Chirp 3: HD synthesis through streaming_synthesize: μ-law 8 kHz pieces as they arrive."""

from __future__ import annotations

import struct
import threading

from .. import audio
from .base import EngineError

SPOKEN_CHARS_PER_SEC = 8.0  # a slow reading: the stream may last as long as its text is said
WAV_HEADER_MAX = 4096  # the most a WAV header may take before the audio starts
WAVE_FORMAT_MULAW = 7


class SpeechStream:
    """The audio of one text as Google synthesises it: an iterator of μ-law 8 kHz pieces.

    The call sends the config (MULAW at 8000 Hz, the telephone's own format: nothing to
    convert), then the text as one input. Its first audio must come within the TTS timeout (a
    timer cancels it otherwise) and all of it within that plus the text's slow reading time; no
    retries. `close()`, from any thread, cancels the call and the iteration ends quietly; the
    service's errors, a late first audio and a stream without audio are EngineError.
    """

    def __init__(self, tts, text: str):
        self.tts, self.text = tts, text
        self.lock = threading.Lock()
        self.closed = self.late = self.heard = False
        self.start: bytearray | None = bytearray()  # the first bytes, until known not a header
        try:
            self.responses = tts.client.streaming_synthesize(
                requests=iter(self.requests()), retry=None,
                timeout=tts.timeout + len(text) / SPOKEN_CHARS_PER_SEC)
        except tts.errors.GoogleAPIError as exc:
            raise EngineError(f"google TTS {tts.voice}: {exc}") from None
        self.first_audio = threading.Timer(tts.timeout, self.too_late)
        self.first_audio.daemon = True
        self.first_audio.start()

    def requests(self) -> list:
        types = self.tts.tts
        config = types.StreamingSynthesizeConfig(
            voice=self.tts.voice_params(),
            streaming_audio_config=types.StreamingAudioConfig(
                audio_encoding=types.AudioEncoding.MULAW, sample_rate_hertz=audio.RATE))
        return [types.StreamingSynthesizeRequest(streaming_config=config),
                types.StreamingSynthesizeRequest(
                    input=types.StreamingSynthesisInput(text=self.text))]

    def __iter__(self) -> SpeechStream:
        return self

    def __next__(self) -> bytes:
        while not self.closed:
            try:
                response = next(self.responses)
            except StopIteration:
                self.end()
                if not self.heard:
                    raise EngineError(f"google TTS {self.tts.voice}: no audio") from None
                raise
            except self.tts.errors.GoogleAPIError as exc:
                cancelled, late = self.end(), self.late
                if late:
                    raise EngineError(f"google TTS {self.tts.voice}: no audio within "
                                      f"{self.tts.timeout:.3g} s") from None
                if cancelled:
                    break
                raise EngineError(f"google TTS {self.tts.voice}: {exc}") from None
            try:
                piece = self.audio_of(response.audio_content)
            except EngineError:
                self.close()  # audio the line cannot play: no use synthesising the rest
                raise
            if piece:
                with self.lock:
                    self.heard = True
                self.first_audio.cancel()
                return piece
        raise StopIteration

    def audio_of(self, data: bytes) -> bytes:
        """The μ-law in `data`; a WAV header the stream may begin with is checked and dropped
        (the documents do not say whether a streamed MULAW has one: both are handled)."""
        if self.start is None:
            return data
        self.start += data
        head = bytes(self.start)
        if b"RIFF".startswith(head):
            return b""  # too short to tell yet
        if not head.startswith(b"RIFF"):
            self.start = None
            return head
        payload = wav_payload(head)
        if payload is None:
            if len(head) > WAV_HEADER_MAX:
                raise EngineError(f"google TTS {self.tts.voice}: an unreadable WAV header")
            return b""
        self.start = None
        return payload

    def too_late(self) -> None:
        """The timer: no audio yet within the TTS timeout, so the call is cancelled."""
        with self.lock:
            if self.heard or self.closed:
                return
            self.late = True
        self.responses.cancel()

    def end(self) -> bool:
        """The call is over: no more pieces. Whether it was closed (cancelled) by the caller."""
        self.first_audio.cancel()
        with self.lock:
            closed, self.closed = self.closed, True
        return closed

    def close(self) -> None:
        """Cancel the synthesis (idempotent; harmless once the call ended)."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
        self.first_audio.cancel()
        self.responses.cancel()

    def __enter__(self) -> SpeechStream:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def __del__(self) -> None:  # like a generator's: one dropped unfinished is cancelled
        if hasattr(self, "first_audio"):
            self.close()


def wav_payload(head: bytes) -> bytes | None:
    """The audio after the WAV header `head` begins with (which must say μ-law, mono, 8 kHz:
    else EngineError), or None while the header is not complete."""
    if len(head) >= 12 and head[8:12] != b"WAVE":
        raise EngineError("google TTS: a RIFF stream that is not WAVE")
    at, fmt = 12, None
    while at + 8 <= len(head):
        kind, size = head[at:at + 4], struct.unpack_from("<I", head, at + 4)[0]
        if kind == b"data":
            if fmt != (WAVE_FORMAT_MULAW, 1, audio.RATE):
                raise EngineError(f"google TTS: WAV (format, channels, rate) {fmt}, "
                                  f"not μ-law mono {audio.RATE} Hz")
            return head[at + 8:]
        if kind == b"fmt ":
            if at + 16 > len(head):
                return None
            fmt = struct.unpack_from("<HHI", head, at + 8)
        at += 8 + size + (size & 1)
    return None
