"""Google engines: Speech-to-Text (he-IL, MULAW 8 kHz, streaming interim results) and TTS (MP3,
and μ-law 8 kHz as it is made for a Chirp 3: HD voice).

Every call carries our stage timeout and no library retries: the dialog falls back instead.
"""

from __future__ import annotations

import queue
import warnings
from urllib.parse import urlsplit

from .. import audio, google_voices
from .base import ASR, TTS, EngineError, LiveRecognition
from .google_stream import SpeechStream

STREAM_CHUNK_FRAMES = 5  # 100 ms of audio per streaming request
CHUNK_BYTES = audio.FRAME_BYTES * STREAM_CHUNK_FRAMES
LIVE_AUDIO_SEC = 60.0  # the longest utterance MAX_UTT_SEC allows; a live call's deadline runs
                       # from its first audio, so it is this plus the ASR timeout
CLOUD_SCOPE = "https://www.googleapis.com/auth/cloud-platform"


def _import(module: str):
    try:
        return __import__(module, fromlist=["*"])
    except ImportError:
        raise EngineError(f"{module} is missing: pip install -r requirements.txt") from None


def client_arguments(settings, endpoint: str) -> dict:
    """A client's credentials, read from GOOGLE_APPLICATION_CREDENTIALS as Settings resolved it
    (the file Settings.prepare wrote from GCP_CREDENTIALS_JSON), and its endpoint if another."""
    arguments: dict = {"client_options": {"api_endpoint": endpoint} if endpoint else None}
    path = settings.google_application_credentials
    if path:
        auth = _import("google.auth")
        with warnings.catch_warnings():  # as google.auth.default() does for this variable:
            warnings.simplefilter("ignore", DeprecationWarning)  # the file is the owner's own
            try:
                arguments["credentials"], _project = auth.load_credentials_from_file(
                    path, default_scopes=[CLOUD_SCOPE])
            except auth.exceptions.GoogleAuthError as exc:
                raise EngineError(f"GOOGLE_APPLICATION_CREDENTIALS={path!r}: {exc}") from None
    return arguments


class GoogleASR(ASR):
    """One utterance through streaming_recognize: interim and final results, like a live call."""

    name = "google"
    hears_live = True

    def __init__(self, client, language: str = "he-IL", timeout: float = 8.0):
        self.speech = _import("google.cloud.speech_v1")
        self.client, self.language, self.timeout = client, language, timeout
        # streaming_recognize returns at once, not after the first response (api_core's switch,
        # as google-cloud-pubsub uses it): a live call can be cancelled before any answer
        client.transport.streaming_recognize._prefetch_first_result_ = False

    @classmethod
    def from_settings(cls, settings) -> GoogleASR:
        speech = _import("google.cloud.speech_v1")
        client = speech.SpeechClient(**client_arguments(settings, settings.google_speech_endpoint))
        return cls(client, settings.language, settings.asr_timeout_sec)

    def config(self):
        return self.speech.RecognitionConfig(
            encoding=self.speech.RecognitionConfig.AudioEncoding.MULAW, sample_rate_hertz=8000,
            language_code=self.language, enable_automatic_punctuation=True)

    def streaming_config(self):
        return self.speech.StreamingRecognitionConfig(config=self.config(), interim_results=True)

    @staticmethod
    def results_of(responses) -> list[tuple[str, str]]:
        """(kind, text) of each result of the responses, in order."""
        return [("final" if result.is_final else "interim",
                 result.alternatives[0].transcript.strip())
                for response in responses for result in response.results if result.alternatives]

    def transcribe_detailed(self, pcm16_8k: bytes) -> list[tuple[str, str]]:
        ulaw = audio.pcm16_to_ulaw(pcm16_8k)
        requests = (self.speech.StreamingRecognizeRequest(audio_content=ulaw[i:i + CHUNK_BYTES])
                    for i in range(0, len(ulaw), CHUNK_BYTES))
        return self.results_of(self.client.streaming_recognize(
            config=self.streaming_config(), requests=requests, retry=None, timeout=self.timeout))

    def live(self) -> GoogleLiveRecognition:
        return GoogleLiveRecognition(self)

    def transcribe(self, pcm16_8k: bytes) -> str:
        return " ".join(t for kind, t in self.transcribe_detailed(pcm16_8k) if kind == "final")

    def recognize(self, pcm16_8k: bytes) -> str:
        """One-shot recognition (recordings)."""
        response = self.client.recognize(
            config=self.config(),
            audio=self.speech.RecognitionAudio(content=audio.pcm16_to_ulaw(pcm16_8k)),
            retry=None, timeout=self.timeout)
        return " ".join(r.alternatives[0].transcript.strip() for r in response.results
                        if r.alternatives)


class GoogleLiveRecognition(LiveRecognition):
    """streaming_recognize fed while the caller speaks: the final result comes at the end."""

    def __init__(self, asr: GoogleASR):
        super().__init__(asr)
        self.chunks: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()  # None: no more
        self.responses = None  # the call, once the thread started it

    def feed(self, pcm16_8k: bytes) -> None:
        """Queue the audio as μ-law, 100 ms a request; the first audio starts the call."""
        with self.lock:
            if self.closed:
                return
            self.buffer += audio.pcm16_to_ulaw(pcm16_8k)
            while len(self.buffer) >= CHUNK_BYTES:
                self.chunks.put(bytes(self.buffer[:CHUNK_BYTES]))
                del self.buffer[:CHUNK_BYTES]
            if self.thread is None:
                self.start(self.stream)

    def finish(self, timeout: float) -> list[tuple[str, str]]:
        with self.lock:
            if not self.closed:
                if self.buffer:
                    self.chunks.put(bytes(self.buffer))
                self.chunks.put(None)
                self.closed = True
        return self.wait(timeout)

    def cancel(self) -> None:
        with self.lock:
            was_open, responses = not self.closed, self.responses
            self.closed = self.cancelled = True
            self.buffer.clear()
        if responses is not None:  # first, so the recognizer is not told the utterance ended
            responses.cancel()  # the thread's error is then CANCELLED, which it drops
        if was_open:
            self.chunks.put(None)  # gRPC's thread stops waiting for audio

    def requests(self):
        """The queued audio as requests until finish or cancel (read by gRPC's own thread)."""
        while (chunk := self.chunks.get()) is not None:
            yield self.asr.speech.StreamingRecognizeRequest(audio_content=chunk)

    def stream(self) -> list[tuple[str, str]]:
        """The call, in the recognition's thread: its results once the recognizer is done."""
        asr = self.asr
        responses = asr.client.streaming_recognize(
            config=asr.streaming_config(), requests=self.requests(), retry=None,
            timeout=asr.timeout + LIVE_AUDIO_SEC)
        with self.lock:
            self.responses = responses
            cancelled = self.cancelled
        if cancelled:
            responses.cancel()
        results: list[tuple[str, str]] = []
        for response in responses:  # the words so far: the finals, then the latest interim
            results += asr.results_of([response])
            finals = [text for kind, text in results if kind == "final"]
            self.partial = " ".join(finals + [text for kind, text in results[-1:]
                                              if kind == "interim"])
        return results


class GoogleTTS(TTS):
    """synthesize_speech to MP3 (the cache's file, for every voice); a Chirp 3: HD voice also
    streams: μ-law 8 kHz through streaming_synthesize, which only gRPC carries (Standard voices
    keep the REST transport)."""

    name = "google"

    def __init__(self, client, voice: str = "he-IL-Standard-A", language: str = "he-IL",
                 timeout: float = 6.0):
        self.tts = _import("google.cloud.texttospeech_v1")
        self.errors = _import("google.api_core.exceptions")
        self.client, self.voice, self.language, self.timeout = client, voice, language, timeout
        self.speaks_live = google_voices.streams(voice)
        if self.speaks_live:
            if client.transport.kind != "grpc":
                raise EngineError(f"{voice} streams over gRPC, not {client.transport.kind}")
            # the call returns at once, not after the first audio: it can be cancelled before
            client.transport.streaming_synthesize._prefetch_first_result_ = False

    @classmethod
    def from_settings(cls, settings) -> GoogleTTS:
        tts = _import("google.cloud.texttospeech_v1")
        endpoint, voice = settings.google_tts_endpoint, settings.google_tts_voice
        if google_voices.streams(voice):  # gRPC names a host[:port], not a URL
            client = tts.TextToSpeechClient(transport="grpc", **client_arguments(
                settings, urlsplit(endpoint).netloc if "://" in endpoint else endpoint))
        else:
            client = tts.TextToSpeechClient(
                transport="rest", **client_arguments(settings, endpoint))
        return cls(client, voice, settings.language, settings.tts_timeout_sec)

    def voice_params(self):
        return self.tts.VoiceSelectionParams(language_code=self.language, name=self.voice)

    def synthesize(self, text: str) -> bytes:
        try:
            response = self.client.synthesize_speech(
                input=self.tts.SynthesisInput(text=text), voice=self.voice_params(),
                audio_config=self.tts.AudioConfig(audio_encoding=self.tts.AudioEncoding.MP3),
                retry=None, timeout=self.timeout)
        except self.errors.GoogleAPIError as exc:
            raise EngineError(f"google TTS {self.voice}: {exc}") from exc
        return response.audio_content

    def live(self, text: str) -> SpeechStream:
        """The audio of `text` as it is synthesised (a Chirp 3: HD voice); see SpeechStream."""
        if not self.speaks_live:
            raise EngineError(f"{self.voice} cannot stream: only Chirp 3: HD voices do")
        return SpeechStream(self, text)
