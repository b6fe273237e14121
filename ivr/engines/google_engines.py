"""Google engines: Speech-to-Text (he-IL, MULAW 8 kHz, streaming interim results) and TTS (MP3).

Every call carries our stage timeout and no library retries: the dialog falls back instead.
"""

from __future__ import annotations

import warnings

from .. import audio
from .base import ASR, TTS, EngineError

STREAM_CHUNK_FRAMES = 5  # 100 ms of audio per streaming request
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

    def __init__(self, client, language: str = "he-IL", timeout: float = 8.0):
        self.speech = _import("google.cloud.speech_v1")
        self.client, self.language, self.timeout = client, language, timeout

    @classmethod
    def from_settings(cls, settings) -> GoogleASR:
        speech = _import("google.cloud.speech_v1")
        client = speech.SpeechClient(**client_arguments(settings, settings.google_speech_endpoint))
        return cls(client, settings.language, settings.asr_timeout_sec)

    def config(self):
        return self.speech.RecognitionConfig(
            encoding=self.speech.RecognitionConfig.AudioEncoding.MULAW, sample_rate_hertz=8000,
            language_code=self.language, enable_automatic_punctuation=True)

    def transcribe_detailed(self, pcm16_8k: bytes) -> list[tuple[str, str]]:
        ulaw = audio.pcm16_to_ulaw(pcm16_8k)
        chunk = audio.FRAME_BYTES * STREAM_CHUNK_FRAMES
        streaming = self.speech.StreamingRecognitionConfig(config=self.config(),
                                                           interim_results=True)
        requests = (self.speech.StreamingRecognizeRequest(audio_content=ulaw[i:i + chunk])
                    for i in range(0, len(ulaw), chunk))
        results: list[tuple[str, str]] = []
        responses = self.client.streaming_recognize(config=streaming, requests=requests,
                                                    retry=None, timeout=self.timeout)
        for response in responses:
            for result in response.results:
                if result.alternatives:
                    kind = "final" if result.is_final else "interim"
                    results.append((kind, result.alternatives[0].transcript.strip()))
        return results

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


class GoogleTTS(TTS):
    name = "google"

    def __init__(self, client, voice: str = "he-IL-Standard-A", language: str = "he-IL",
                 timeout: float = 6.0):
        self.tts = _import("google.cloud.texttospeech_v1")
        self.client, self.voice, self.language, self.timeout = client, voice, language, timeout

    @classmethod
    def from_settings(cls, settings) -> GoogleTTS:
        tts = _import("google.cloud.texttospeech_v1")
        client = tts.TextToSpeechClient(
            transport="rest", **client_arguments(settings, settings.google_tts_endpoint))
        return cls(client, settings.google_tts_voice, settings.language, settings.tts_timeout_sec)

    def synthesize(self, text: str) -> bytes:
        response = self.client.synthesize_speech(
            input=self.tts.SynthesisInput(text=text),
            voice=self.tts.VoiceSelectionParams(language_code=self.language, name=self.voice),
            audio_config=self.tts.AudioConfig(audio_encoding=self.tts.AudioEncoding.MP3),
            retry=None, timeout=self.timeout)
        return response.audio_content
