"""A reply streamed as text, cut into speakable chunks as it arrives (pure: no I/O, no clock)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

SENTENCE_END = ".?!…"
CLAUSE_END = ",;:–—"  # a hyphen alone is a word joint ("תל-אביב"), not a pause
FIRST_CLAUSE_CHARS = 10  # the first chunk may end at a clause this long ("כן, בשמחה,"): the
# caller hears it while the rest is written; a lone "כן," is too short to say on its own
CLAUSE_CHARS = 60  # later chunks end at a clause only once this long: fewer, natural pieces
MAX_CHUNK_CHARS = 220  # a chunk with no pause at all is cut at a space by then
# The chunk after a short opener ("כן, בשמחה," is 0.7 s of speech) must be heard before the
# opener is over: REPLY_MODE=play can only <Play> an MP3 that is whole. So it ends at its first
# mark, or before a joining word ("ו…", "אבל", "כי"…) once FOLLOW_MIN_CHARS long, or at a space
# by FOLLOW_MAX_CHARS (about 3 s of speech: written and synthesised in well under a second).
OPENER_CHARS = 20
FOLLOW_MIN_CHARS = 20
FOLLOW_MAX_CHARS = 45
JOINING_WORDS = frozenset("אבל אז כי או אם גם כדי אלא".split())
# a dash before a number joins a range ("8:00 – 18:00" is read "from… to…"), it is no pause
BOUNDARY = re.compile(r"[.?!…]+[\"'”׳״)]*(?=\s)|[,;:](?=\s)|[–—](?=\s+[^\s\d])|\n")


class SpeakableChunks:
    """Feed text deltas as they come; take whole chunks out: a sentence, or a clause once it is
    long enough to sound natural (the first one sooner). A mark only counts once the character
    after it is known to be a space, so "3.5", "8:00" and "1,000" are never cut."""

    def __init__(self, first_clause_chars: int = FIRST_CLAUSE_CHARS,
                 clause_chars: int = CLAUSE_CHARS, max_chars: int = MAX_CHUNK_CHARS):
        self.first_clause_chars, self.clause_chars = first_clause_chars, clause_chars
        self.max_chars = max_chars
        self.pending = ""
        self.emitted = 0
        self.follows_opener = False  # the next chunk comes after a short first one

    def feed(self, delta: str) -> list[str]:
        """The chunks that `delta` completed (often none)."""
        self.pending += delta
        chunks = []
        while (cut := self._next_cut()) is not None:
            chunk, self.pending = self.pending[:cut].strip(), self.pending[cut:].lstrip()
            if chunk:
                chunks.append(chunk)
                self.follows_opener = not self.emitted and len(chunk) < OPENER_CHARS
                self.emitted += 1
        return chunks

    def finish(self) -> list[str]:
        """What is left once the reply is complete."""
        rest, self.pending = self.pending.strip(), ""
        return [rest] if rest else []

    def _next_cut(self) -> int | None:
        clause_chars = self.clause_chars if self.emitted else self.first_clause_chars
        if self.follows_opener:
            clause_chars = 0
        for match in BOUNDARY.finditer(self.pending):
            end = match.end()
            mark = match.group()[0]
            if mark in SENTENCE_END or mark == "\n" or end >= clause_chars:
                return end
        if self.follows_opener:
            return self._follow_cut()
        if len(self.pending) > self.max_chars:
            space = self.pending.rfind(" ", 0, self.max_chars)
            return space if space > 0 else self.max_chars
        return None

    def _follow_cut(self) -> int | None:
        """Where the chunk after an opener ends when no mark ends it: before the first joining
        word from FOLLOW_MIN_CHARS on (known once its next letter is), else at the last space
        within FOLLOW_MAX_CHARS once the text is longer."""
        for match in re.finditer(r" (\S+)(?=\s)| (ו\w)", self.pending):
            word = match.group(1) or match.group(2)
            if match.start() >= FOLLOW_MIN_CHARS and (word in JOINING_WORDS
                                                      or word.startswith("ו") and len(word) > 1):
                return match.start()
        if len(self.pending) > FOLLOW_MAX_CHARS:
            space = self.pending.rfind(" ", 0, FOLLOW_MAX_CHARS)
            return space if space > 0 else FOLLOW_MAX_CHARS
        return None


def speakable_chunks(deltas: Iterable[str], **limits: int) -> Iterator[str]:
    """Chunks of a whole stream of deltas, in order."""
    chunker = SpeakableChunks(**limits)
    for delta in deltas:
        yield from chunker.feed(delta)
    yield from chunker.finish()
