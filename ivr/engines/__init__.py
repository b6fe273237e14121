"""Engine registry: builds the ASR, LLM and TTS chosen in Settings (cloud SDKs imported lazily)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from ..config import Settings
from .base import ASR, LLM, TTS, EngineError

__all__ = ["ASR", "LLM", "TTS", "EngineError", "Engines", "build_engine", "build_engines",
           "REGISTRY"]

# kind → engine name → "module:Class" (relative to ivr.engines)
REGISTRY: dict[str, dict[str, str]] = {
    "asr": {"fake": "fake:FakeASR", "google": "google_engines:GoogleASR",
            "openai": "openai_engines:OpenAIASR", "whisper": "local:WhisperASR"},
    "llm": {"fake": "fake:FakeLLM", "scripted": "scripted:ScriptedLLM",
            "openai": "openai_engines:OpenAILLM"},
    "tts": {"fake": "fake:FakeTTS", "google": "google_engines:GoogleTTS",
            "openai": "openai_realtime:OpenAISpeech", "espeak": "local:EspeakTTS"},
}


@dataclass
class Engines:
    """The engines of one app; `asr` is None when the line relies on Twilio's Gather."""

    asr: ASR | None
    llm: LLM | None
    tts: TTS | None


def _build(kind: str, name: str, settings: Settings):
    target = REGISTRY[kind].get(name)
    if target is None:
        return None
    module_name, class_name = target.split(":")
    module = importlib.import_module(f".{module_name}", __name__)
    cls = getattr(module, class_name)
    factory = getattr(cls, "from_settings", None)
    return factory(settings) if factory else cls()


def build_engine(kind: str, settings: Settings):
    """The one engine of `kind` ("asr", "llm" or "tts") the settings name; None for "none"."""
    return _build(kind, getattr(settings, f"{kind}_engine"), settings)


def build_engines(settings: Settings) -> Engines:
    """Instantiate the configured engines; a missing package raises EngineError naming it."""
    return Engines(asr=_build("asr", settings.asr_engine, settings),
                   llm=_build("llm", settings.llm_engine, settings),
                   tts=_build("tts", settings.tts_engine, settings))
