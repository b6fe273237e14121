"""Google Text-to-Speech voice names: their shape, the he-IL voices Google lists, which stream."""

from __future__ import annotations

import difflib
import re

# The Chirp 3: HD speakers, the same in every locale that has these voices (he-IL among them),
# as cloud.google.com/text-to-speech/docs/chirp3-hd lists them; a voice is <locale>-Chirp3-HD-<name>
CHIRP3_HD_SPEAKERS = (
    "Achernar", "Achird", "Algenib", "Algieba", "Alnilam", "Aoede", "Autonoe", "Callirrhoe",
    "Charon", "Despina", "Enceladus", "Erinome", "Fenrir", "Gacrux", "Iapetus", "Kore",
    "Laomedeia", "Leda", "Orus", "Pulcherrima", "Puck", "Rasalgethi", "Sadachbia", "Sadaltager",
    "Schedar", "Sulafat", "Umbriel", "Vindemiatrix", "Zephyr", "Zubenelgenubi")
CHIRP3_HD = "Chirp3-HD"  # the only voices streaming_synthesize accepts
TYPES = (CHIRP3_HD, "Chirp-HD", "Standard", "Wavenet", "Neural2", "News", "Studio", "Polyglot",
         "Journey", "Casual")
VOICE = re.compile(r"(?P<locale>[a-z]{2,3}-[A-Z]{2})-(?P<type>" + "|".join(TYPES)
                   + r")-(?P<speaker>[A-Z0-9]|[A-Z][a-z]+)")
# The voices Google lists for the locales this line is made for (others: checked by shape only)
LISTED = {"he-IL": {"Standard": "ABCD", "Wavenet": "ABCD", CHIRP3_HD: CHIRP3_HD_SPEAKERS}}


def streams(voice: str) -> bool:
    """Whether the voice can be synthesised as a stream (a Chirp 3: HD voice)."""
    match = VOICE.fullmatch(voice)
    return bool(match) and match["type"] == CHIRP3_HD


def listed(language: str) -> list[str]:
    """The full names of the voices Google lists for `language` ([] if this module has none)."""
    return [f"{language}-{kind}-{speaker}"
            for kind, speakers in LISTED.get(language, {}).items() for speaker in speakers]


def problem(voice: str, language: str) -> str:
    """Why `voice` cannot be a Google voice of `language`, or "" when it can."""
    match = VOICE.fullmatch(voice)
    if match is None:
        names = {name.lower(): name for name in listed(language)}
        close = difflib.get_close_matches(voice.lower(), names, 1, 0.8)
        hint = f"did you mean {names[close[0]]}? " if close else ""
        return (f"{hint}expected <locale>-<type>-<name>, like {language}-Standard-A or "
                f"{language}-{CHIRP3_HD}-Kore")
    if match["locale"] != language:
        return f"a {match['locale']} voice, but LANGUAGE={language}: choose a {language} voice"
    if match["type"] == CHIRP3_HD and match["speaker"] not in CHIRP3_HD_SPEAKERS:
        close = difflib.get_close_matches(match["speaker"], CHIRP3_HD_SPEAKERS, 1)
        hint = f" (did you mean {language}-{CHIRP3_HD}-{close[0]}?)" if close else ""
        return f"{match['speaker']} is not a Chirp 3: HD speaker{hint}"
    return ""


def unlisted(voice: str, language: str) -> str:
    """A note when a well-formed `voice` is not among those Google lists for `language`."""
    names = listed(language)
    if not names or voice in names:
        return ""
    return (f"Google lists no such {language} voice (its {language} voices: Standard-A…D, "
            f"Wavenet-A…D, {CHIRP3_HD}-<speaker>); the first synthesis will tell")
