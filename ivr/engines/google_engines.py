"""Google engines: Speech-to-Text (he-IL, MULAW 8 kHz, streaming interim results) and TTS (MP3).

Every call carries our stage timeout and no library retries: the dialog falls back instead.
"""

from __future__ import annotations

from .. import audio
from .base import ASR, TTS, EngineError

STREAM_CHUNK_FRAMES = 5  # 100 ms of audio per streaming request


def _import(module: str):
    try:
        return __import__(module, fromlist=["*"])
    except ImportError:
        raise EngineError(f"{module} is missing: pip install -r requirements.txt") from None


class GoogleASR(ASR):
    """One utterance through streaming_recognize: interim and final results, like a live call."""

    name = "google"

    def __init__(self, client, language: str = "he-IL", timeout: float = 8.0):
        self.speech = _import("google.cloud.speech_v1")
        self.client, self.language, self.timeout = client, language, timeout

    @classmethod
    def from_settings(cls, settings) -> GoogleASR:
        speech = _import("google.cloud.speech_v1")
        options = {"api_endpoint": settings.google_speech_endpoint} \
            if settings.google_speech_endpoint else None
        return cls(speech.SpeechClient(client_options=options), settings.language,
                   settings.asr_timeout_sec)

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
        options = {"api_endpoint": settings.google_tts_endpoint} \
            if settings.google_tts_endpoint else None
        return cls(tts.TextToSpeechClient(transport="rest", client_options=options),
                   settings.google_tts_voice, settings.language, settings.tts_timeout_sec)

    def synthesize(self, text: str) -> bytes:
        response = self.client.synthesize_speech(
            input=self.tts.SynthesisInput(text=text),
            voice=self.tts.VoiceSelectionParams(language_code=self.language, name=self.voice),
            audio_config=self.tts.AudioConfig(audio_encoding=self.tts.AudioEncoding.MP3),
            retry=None, timeout=self.timeout)
        return response.audio_content
