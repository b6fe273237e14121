"""The line's fixed prompts (greeting, fallback, goodbye, thinking) as always-there MP3 aliases."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import yaml

from ..chunking import speakable_chunks
from ..engines.scripted import DEFAULT_FLOW
from ..phrases import DEFAULT_GOODBYE, REPEAT_PROMPT, THINKING_TEXT
from . import BEEP, FALLBACK, GOODBYE, GREETING, THINKING, TTSCache

log = logging.getLogger("ivr")


def prompt_texts(settings, llm) -> dict[str, str]:
    """Alias file → the sentence it holds; the greeting comes from AI_GREETING_HE or the flow
    (the scripted engine's, else the flow file's: an OpenAI line greets with it too)."""
    flow = getattr(llm, "flow", None) or flow_file_texts(settings)
    return {GREETING: settings.ai_greeting_he or flow.get("greeting", ""),
            FALLBACK: REPEAT_PROMPT, GOODBYE: flow.get("goodbye") or DEFAULT_GOODBYE,
            THINKING: THINKING_TEXT}


def flow_file_texts(settings) -> dict:
    """The flow file's top level (FLOW_FILE, else the shipped one); {} when it cannot be read,
    which the owner's hours, read from the same file next, report."""
    try:
        flow = yaml.safe_load(Path(settings.flow_file or DEFAULT_FLOW).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return flow if isinstance(flow, dict) else {}


class Prompts:
    """Resolves a prompt to a file that exists: the alias, synthesised once if missing, or beep.
    `texts` may be a function: then a prompt whose text changed (the flow file edited while the
    line runs) is made again from its new text the next time it is asked for."""

    def __init__(self, cache: TTSCache, tts,
                 texts: dict[str, str] | Callable[[], dict[str, str]]):
        self.cache, self.tts = cache, tts
        self.source = texts if callable(texts) else (lambda: texts)
        self.made = dict(self.source())  # the text each alias file holds, as far as known
        self.lock = threading.Lock()

    @property
    def texts(self) -> dict[str, str]:
        return self.source()

    def has(self, alias: str) -> bool:
        return bool(self.texts.get(alias))

    def ensure(self, alias: str) -> bool:
        """Make the alias file from its text if it is missing or its text changed; False if
        there is none (a changed text that cannot be made keeps the file it had)."""
        path = self.cache.path(alias)
        text = self.texts.get(alias, "")
        if path.is_file() and self.made.get(alias, text) == text:
            return True
        if not text or self.tts is None:
            return path.is_file()
        with self.lock:
            if path.is_file() and self.made.get(alias, text) == text:
                return True
            try:
                self.cache.alias(alias, self.cache.synthesize(self.tts, text))
                self.made[alias] = text
                return True
            except Exception as exc:  # noqa: BLE001 - the beep stands in
                log.error("TTS_ERR alias=%s err=%r", alias, exc)
                return path.is_file()

    def name(self, alias: str) -> str:
        """The file to <Play> for this prompt: the alias, or the beep when it cannot be made."""
        if self.ensure(alias):
            return alias
        if alias == FALLBACK:
            self.cache.ensure_beep()
            return BEEP
        return self.name(FALLBACK)


def prewarm(cache: TTSCache, tts, llm, settings, phrases: list[str] = (),
            out=sys.stderr) -> dict[str, int]:
    """Synthesise prompts, the flow's sentences and extra phrases, each whole and as the
    chunks a reply in chunks is cut into; skip what is cached."""
    texts = prompt_texts(settings, llm)
    replies = list(llm.texts() if llm else []) + list(phrases)
    sentences = [t for t in texts.values() if t] + replies + [
        chunk for reply in replies for chunk in speakable_chunks([reply])]
    unique = list(dict.fromkeys(s.strip() for s in sentences if s.strip()))
    stats = {"total": len(unique), "cached": 0, "synthesized": 0, "failed": 0}
    for done, text in enumerate(unique, 1):
        if cache.lookup(tts, text):
            stats["cached"] += 1
        else:
            try:
                cache.synthesize(tts, text)
                stats["synthesized"] += 1
            except Exception as exc:  # noqa: BLE001 - report and go on
                stats["failed"] += 1
                print(f"\nfailed: {text[:40]}…: {exc}", file=out)
        bar = "#" * (24 * done // len(unique))
        print(f"\rprewarm [{bar:<24}] {done}/{len(unique)}", end="", file=out, flush=True)
    print("", file=out)
    for alias, text in texts.items():
        if text:
            source = cache.lookup(tts, text)
            if source is not None:
                cache.alias(alias, source)
    cache.ensure_beep()
    return stats


def read_phrases(path: str | Path | None) -> list[str]:
    """One phrase a line; blank lines and # comments ignored."""
    if not path:
        return []
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]
