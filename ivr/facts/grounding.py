"""What an LLM that writes freely may say: the facts in its prompt, and each chunk's figures
checked before it is spoken (the facts', the caller's, the tools' figures, nothing else)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..booking.hebrew_numbers import WORDS
from .facts import SERVICE_TITLE, Facts, Passage
from .figures import TIME, figures
from .retrieval import Retriever
from .words import fold

# All the facts go in the prompt while their text is at most this long: the shipped
# facts_he.yaml is about 820 characters (13 passages); 6,000 (about 2,000 tokens of Hebrew) keeps
# a business several times that size whole. Larger: the passages retrieval finds, TOP_PASSAGES.
ALL_FACTS_CHARS = 6000
TOP_PASSAGES = 4
FACTS_HEADER = ("עובדות העסק (המקור היחיד לתשובות שלך; כל שורה עובדה אחת, לפעמים עם הנושא "
                "שלה לפני הקו):")
NO_FACTS = "(אין עובדות על הנושא הזה.)"
INSTRUCTION = (
    "- ענה רק מתוך עובדות העסק שלמטה. אם התשובה אינה בהן, הפעל את cannot_answer עם שאלת "
    "המתקשר, ואמור בפשטות שאין לך מידע על זה והצע להשאיר הודעה או לדבר עם נציג. "
    "לעולם אל תאמר מחיר, שעה או מספר שאינם בעובדות, בדברי המתקשר או בתשובת כלי.")
TOPIC = " — "  # between a passage's topic (its title) and its text, one passage a line
# Figures any reply may name, whatever the facts say: 0 is the key that asks for a person (the
# line's own), 1 and 2 are the counts and choices of talk ("רגע אחד", "אחת משתי האפשרויות",
# "הקישו 1"). None of them is a price, an hour or a phone number a caller could act on wrongly.
HARMLESS = frozenset({"0", "1", "2"})
PHONE_DIGITS = 7  # a run of this many digits (written or said one by one) from a 0 or a 972
PHONE_START = ("0", "972")  # is a phone number (prices in a row, "80, 150, 250", are not)
SAID_DIGITS = {w: n for w, n in WORDS.items() if n < 10 and " " not in w} | {"אפס": 0}
DIGIT_WORDS = {fold(w): n for w, n in SAID_DIGITS.items()}
DIGIT_TOKEN = "(?:" + "|".join(sorted(SAID_DIGITS, key=len, reverse=True)) + r"|\d+)"
DIGIT_RUN = re.compile(rf"(?<!\w)ו?{DIGIT_TOKEN}(?:[\s,\-–]+ו?{DIGIT_TOKEN})*(?!\w)")
IDS = re.compile(r"_id$|^id$")  # a tool result's ids: opaque, never said


def passage_line(passage: Passage) -> str:
    """One passage as the prompt gives it: "topic — text", or the text alone (a service's
    title is retrieval's words, not a topic)."""
    if passage.title and passage.title != SERVICE_TITLE:
        return f"- {passage.title}{TOPIC}{passage.text}"
    return f"- {passage.text}"


def chosen(facts: Facts, questions: Iterable[str],
           retriever: Retriever | None = None) -> tuple[Passage, ...]:
    """The passages the prompt carries: all of them while their text is at most
    ALL_FACTS_CHARS, else the TOP_PASSAGES that retrieval finds for `questions` (the caller's
    words now, then before)."""
    if sum(len(p.text) + len(p.title) for p in facts.passages) <= ALL_FACTS_CHARS:
        return facts.passages
    retriever = retriever or Retriever(facts.passages)
    found: list[Passage] = []
    for question in questions:
        for hit in retriever.search(question, TOP_PASSAGES):
            if hit.passage not in found:
                found.append(hit.passage)
    return tuple(found[:TOP_PASSAGES])


def facts_prompt(passages: Iterable[Passage]) -> str:
    """The prompt's part about the facts: the instruction, then the passages, a line each."""
    lines = [passage_line(p) for p in passages] or [NO_FACTS]
    return "\n".join([INSTRUCTION, "", FACTS_HEADER, *lines])


def prompt_passages(prompt: str) -> list[Passage]:
    """The passages a prompt built by facts_prompt carries (topic as title): what a model reads."""
    _, _, part = prompt.partition(FACTS_HEADER)
    out = []
    for line in part.splitlines():
        if line.startswith("- "):
            title, _, text = line[2:].rpartition(TOPIC)
            out.append(Passage(text, "prompt", title))
    return out


# ---- the figures a chunk may name ------------------------------------------------------------
def digits_said(text: str) -> str:
    """The digits `text` names one by one, in order ("אפס חמש ארבע, 765" → "054765")."""
    out = []
    for run in DIGIT_RUN.finditer(text):
        for token in re.split(r"[\s,\-–]+", run.group()):
            token = token.removeprefix("ו") if not token.isdigit() else token
            out.append(token if token.isdigit() else str(DIGIT_WORDS.get(fold(token), "")))
    return "".join(out)


def phones(text: str) -> tuple[set[str], str]:
    """The phone numbers `text` says digit by digit or in groups (PHONE_DIGITS or more), and
    the text without them (their number words are no figure of their own)."""
    found: set[str] = set()

    def take(match: re.Match) -> str:
        digits = digits_said(match.group())
        if len(digits) < PHONE_DIGITS or not digits.startswith(PHONE_START):
            return match.group()
        found.add(digits)
        return " "
    return found, DIGIT_RUN.sub(take, text)


def keys(figure: str) -> set[str]:
    """The ways an allowed `figure` may be said: a time also on a 12-hour clock ("18:00" as
    "6:00") and as its hour alone ("שש"; "8:30" is "שמונה וחצי", whose words name the 8)."""
    time = TIME.fullmatch(figure)
    if time is None:
        return {figure}
    hour = int(time[1])
    return {figure, f"t{hour % 12}:{time[2]}", f"h{hour % 12}", f"H{hour}"}


def tool_texts(messages: Iterable[dict]) -> list[str]:
    """The words of tool results (role "tool", JSON) besides their ids."""
    out: list[str] = []

    def walk(value) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                if not IDS.search(str(k)):
                    walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
        elif isinstance(value, str | int | float) and not isinstance(value, bool):
            out.append(str(value))
    for message in messages:
        if message.get("role") == "tool":
            try:
                walk(json.loads(message.get("content") or "null"))
            except ValueError:
                out.append(str(message.get("content")))
    return out


@dataclass
class Allowed:
    """The figures a reply may name in one turn: the facts', those the caller said in this call
    (and their number, From), those of tool results and of `texts` the line gives (the owner's
    hours), and HARMLESS ones."""

    known: set[str] = field(default_factory=set)  # keys() of every allowed figure
    digits: str = ""  # every digit the caller said, in order (a phone dictated in pieces)

    @classmethod
    def of(cls, facts: Facts | frozenset[str] | set[str], caller_texts: Iterable[str] = (),
           texts: Iterable[str] = (), caller_number: str = "") -> Allowed:
        allowed = cls()
        named = set(facts.figures if isinstance(facts, Facts) else facts) | set(HARMLESS)
        for text in [*texts, *caller_texts]:
            found, rest = phones(text)
            named |= found | figures(rest)
        allowed.digits = "".join(digits_said(t) for t in caller_texts)
        number = re.sub(r"\D", "", caller_number)
        if number:
            named |= {number, "0" + number[3:] if number.startswith("972") else number}
        for figure in named:
            allowed.known |= keys(figure)
        return allowed

    def add(self, texts: Iterable[str]) -> None:
        """More texts whose figures may be said (a tool's result this turn)."""
        for text in texts:
            found, rest = phones(text)
            for figure in found | figures(rest):
                self.known |= keys(figure)

    def supports(self, figure: str) -> bool:
        """Whether `figure` may be said: allowed as it is; a time written on a 12-hour clock
        ("7:00") as an allowed time ("19:00"); an hour alone as the hour of an allowed time
        (1–12 on a 12-hour clock, 13–24 as it is); a phone number as digits the caller said."""
        time = TIME.fullmatch(figure)
        if figure in self.known or time and int(time[1]) <= 12 \
                and f"t{int(time[1]) % 12}:{time[2]}" in self.known:
            return True
        if not figure.isdigit():
            return False
        if len(figure) >= PHONE_DIGITS:
            return figure in self.digits  # the caller's own number, read back
        hour = int(figure)
        return 0 < hour <= 12 and f"h{hour % 12}" in self.known \
            or 12 < hour <= 24 and f"H{hour}" in self.known

    def unsupported(self, chunk: str) -> list[str]:
        """The figures `chunk` names that the line may not say, sorted ([] when none)."""
        found, rest = phones(chunk)
        return sorted(f for f in found | figures(rest) if not self.supports(f))


class ReplyCheck:
    """One reply's chunks checked as they are released: `allowed` grows with the tool results
    the engine keeps this turn (`kept`, read as it grows); `replaced` once a chunk was not
    spoken (the reply says CHECK_BACK once, then drops any other such chunk)."""

    def __init__(self, allowed: Allowed, kept: list | None = None):
        self.allowed, self.kept, self.seen = allowed, kept if kept is not None else [], 0
        self.replaced = False

    def unsupported(self, chunk: str) -> list[str]:
        if len(self.kept) > self.seen:
            fresh, self.seen = self.kept[self.seen:], len(self.kept)
            self.allowed.add(tool_texts(fresh))
        return self.allowed.unsupported(chunk)
