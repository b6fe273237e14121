"""Text as a person says it: numbers, prices, times, dates and phone numbers in Hebrew words."""

from __future__ import annotations

import logging
import re

try:
    import heb_tts_normalizer
except (ImportError, OSError):  # no native library for this platform: texts go out as written
    heb_tts_normalizer = None

log = logging.getLogger("ivr")

DASHES = "-\u2010\u2011\u2012\u2013\u2014"  # hyphen-minus, hyphen, non-breaking hyphen, dashes
TIME_RANGE = re.compile(
    rf"(?<![\d:])(\d{{1,2}}:\d{{2}})\s*[{DASHES}]\s*(\d{{1,2}}:\d{{2}})(?![\d:])")
FIRST_OF_MONTH = re.compile(r"(?<!\S)([בלכ])ה(?=ראשון\s)")  # "בהראשון במאי" → "בראשון במאי"
_warned = False


def speakable(text: str) -> str:
    """`text` with its numbers in words ("8:00-18:00" → "שמונה בבוקר עד שש בערב"); the text
    unchanged, with one warning a process, when the normaliser fails: speech never does."""
    try:
        words = heb_tts_normalizer.normalize(TIME_RANGE.sub(r"\1 עד \2", text))
    except Exception as exc:  # noqa: BLE001 - also a missing library (None has no normalize)
        _warn_once(exc)
        return text
    return FIRST_OF_MONTH.sub(r"\1", words)


def _warn_once(exc: Exception) -> None:
    global _warned
    if not _warned:
        _warned = True
        log.warning("SPEAKABLE_ERR err=%r (texts go to TTS as written)", exc)
