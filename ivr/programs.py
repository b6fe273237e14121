"""The programs the configured line runs (espeak-ng, ffmpeg): which it needs, which are missing."""

from __future__ import annotations

import shutil
from typing import NamedTuple

from . import audio


class Use(NamedTuple):
    """What a program is for on the line, and the way around it."""

    setting: str  # the configuration that runs it
    does: str
    instead: str


USES = {
    audio.ESPEAK_NG: Use("TTS_ENGINE=espeak", "speaks every reply with it",
                         "or use a cloud voice (TTS_ENGINE=google or openai, with its key)"),
    audio.FFMPEG: Use("REPLY_MODE=stream", "decodes every MP3 reply to μ-law with it",
                      "or set REPLY_MODE=play"),
}


def needed(settings) -> list[str]:
    """The programs this configuration runs on every turn (MP3 encoding needs none: it is
    done in process; record mode fetches WAV, decoded in process too)."""
    programs = [audio.ESPEAK_NG] if settings.tts_engine == "espeak" else []
    return programs + ([audio.FFMPEG] if settings.reply_mode == "stream" else [])


def found(program: str) -> bool:
    """True when `program` is an executable on PATH (as the line runs it)."""
    return shutil.which(program) is not None


def problems(settings) -> list[str]:
    """One sentence for each needed program that is missing, naming the fix: without it
    every turn would fall back to the beep."""
    out = []
    for program in needed(settings):
        if not found(program):
            use = USES[program]
            out.append(f"{program} not found on PATH: {use.setting} {use.does}; install it "
                       f"(apt-get install {program}) {use.instead}")
    return out


def status(settings) -> dict[str, str]:
    """Each program the line can run → "ok", "missing" (needed, not found) or "not needed"."""
    wanted = needed(settings)
    return {program: ("ok" if found(program) else "missing") if program in wanted
            else "not needed" for program in USES}
