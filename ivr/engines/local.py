"""Local engines with no key: espeak-ng TTS (Hebrew voice → MP3) and faster-whisper ASR."""

from __future__ import annotations

from .. import audio
from .base import ASR, TTS, EngineError


class EspeakTTS(TTS):
    name = "espeak"

    def __init__(self, voice: str = "he", speed: int = 160):
        self.espeak_voice, self.speed = voice, speed
        self.voice = f"{voice}-s{speed}"

    @classmethod
    def from_settings(cls, settings) -> EspeakTTS:
        return cls(settings.espeak_voice, settings.espeak_speed)

    def synthesize(self, text: str) -> bytes:
        pcm = audio.espeak_pcm16(text, self.espeak_voice, self.speed, rate=16000)
        return audio.pcm16_to_mp3(pcm, rate=16000)


class WhisperASR(ASR):
    """faster-whisper on the CPU; the model is a name or a local path (WHISPER_MODEL)."""

    name = "whisper"

    def __init__(self, model_name: str = "tiny", language: str = "he"):
        try:
            from faster_whisper import WhisperModel
        except ImportError:
            raise EngineError("ASR_ENGINE=whisper needs faster-whisper: "
                              "pip install -r requirements-local.txt") from None
        self.model = WhisperModel(model_name, device="cpu", compute_type="int8")
        self.language = language

    @classmethod
    def from_settings(cls, settings) -> WhisperASR:
        return cls(settings.whisper_model, settings.language.split("-")[0])

    def transcribe(self, pcm16_8k: bytes) -> str:
        import numpy as np
        pcm16k = audio.resample(pcm16_8k, audio.RATE, 16000)
        samples = np.frombuffer(pcm16k, dtype=np.int16).astype(np.float32) / 32768.0
        segments, _info = self.model.transcribe(samples, language=self.language, beam_size=1)
        return " ".join(segment.text.strip() for segment in segments).strip()
