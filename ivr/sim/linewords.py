"""What the line said on a call, from its own records: Twilio sees only MP3 URLs and streamed
audio, so `python -m ivr call` reads the call's turns where the line keeps them (its
DATABASE_URL; locally the same as `make run`'s) to print words and check a script's `expect`."""

from __future__ import annotations

import time
from pathlib import Path

from ..chunking import speakable_chunks
from ..engines.scripted import ScriptedLLM
from ..store import Store
from ..tts_cache.prompts import prompt_texts


def line_turns(database_url: str, call_sid: str, answered: int = 0,
               wait_sec: float = 10.0) -> list[dict]:
    """The call's turns as the line recorded them: what it heard ("caller"), what it answered
    ("line") and the MP3 files it answered with ("names"); [] when the line keeps its records
    elsewhere. The line records a turn once its reply is whole, which may be after the call
    ended: until `answered` turns with the caller's words are there, read again for up to
    `wait_sec` (a line that lost some of them has fewer, and the wait runs out)."""
    if database_url.startswith("sqlite:///") and not Path(database_url[10:]).is_file():
        return []  # no line keeps its records here: make none
    store = Store(database_url)
    deadline = time.monotonic() + wait_sec
    try:
        while True:
            turns = [{"caller": row["user_text"] or "", "line": row["reply_text"] or "",
                      "names": (row["audio_url"] or "").split()}
                     for row in store.turns(call_sid)]
            if len(replies(turns)) >= answered or time.monotonic() >= deadline:
                return turns
            time.sleep(0.1)
    finally:
        store.close()


def words_of_files(turns: list[dict]) -> dict[str, str]:
    """MP3 file name → the words it holds: a reply's chunks as the line cuts them, one file
    each; when they do not pair up, the first file stands for the whole reply."""
    words: dict[str, str] = {}
    for turn in turns:
        names = turn["names"]
        chunks = list(speakable_chunks([turn["line"]])) if turn["line"] else []
        if len(chunks) != len(names):
            chunks = [turn["line"]] + ["…"] * (len(names) - 1)
        words.update(zip(names, chunks, strict=False))
    return words


def prompt_words(settings) -> dict[str, str]:
    """The line's fixed prompts' files (greeting_he.mp3, …) → their words, from the same
    settings and flow file the line reads; {} when the flow does not load."""
    try:
        texts = prompt_texts(settings, ScriptedLLM.from_settings(settings))
    except (OSError, ValueError):
        return {}
    return {name: text for name, text in texts.items() if text}


def replies(turns: list[dict]) -> list[str]:
    """The line's answers to what the caller said (turns it heard nothing in left out)."""
    return [turn["line"] for turn in turns if turn["caller"].strip()]


def conversation(turns: list[dict]) -> str:
    """The call as the line heard and answered it, one line each."""
    lines = []
    for turn in turns:
        if turn["caller"].strip():
            lines.append(f"  caller  {turn['caller']}")
        if turn["line"].strip():
            lines.append(f"  line    {turn['line']}")
    return "\n".join(lines)
