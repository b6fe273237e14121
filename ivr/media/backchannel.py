"""Backchannels: the short words a caller says over the line's speech to show they listen."""

from __future__ import annotations

import re

from ..facts.words import clean, fold

# what a caller says over the line's reply without asking it to stop: yes, uh-huh, okay, a
# moment, right, hmm… (folded as ivr/facts/words.py folds; a letter drawn out counts once)
WORDS = """
כן אה אהא אהם אמ הא המ מממ אממ אוקיי אוקיה רגע נכון בסדר טוב יופי ברור סבבה בטח אכן וואו
אוי יאללה מעולה מצוין אחלה תודה כמובן ודאי בדיוק
"""
DRAWN_OUT = re.compile(r"(.)\1+")  # "אההה", "מממממ", "כןןן": a held sound is the same word


def plain(word: str) -> str:
    """The word folded (final letters, no quotes), a drawn-out letter kept once."""
    return DRAWN_OUT.sub(r"\1", fold(word))


BACKCHANNEL_WORDS = frozenset(plain(w) for w in WORDS.split())


def says_backchannel(text: str) -> bool | None:
    """Whether the words heard so far are only backchannels (True), say more (False), or are
    none yet (None: nothing recognised)."""
    words = clean(text).split()
    if not words:
        return None
    return all(plain(w) in BACKCHANNEL_WORDS for w in words)
