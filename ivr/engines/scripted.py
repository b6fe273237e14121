"""The scripted LLM: a YAML flow of intents, keywords, DTMF keys, answers and lead taking."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import yaml

from ..facts.facts import LiveFacts, Passage
from ..facts.retrieval import Lookup
from ..flow import DEFAULT_FLOW, FlowFileError, watch
from ..owner import BusinessHours, person_texts
from .base import (
    BOOK,
    BOOKING_KEY,
    HANG_UP,
    LLM,
    TRANSFER,
    UNANSWERED,
    Action,
    booking_step,
    last_said,
    lead_line,
)

NEEDED = ("greeting", "goodbye", "clarify", "intents", "lead")
LEAD_STEPS = ("ask_name", "ask_phone", "ask_reason", "done")
HOURS = "{hours}"  # in any text of the flow: the `hours:` as said (BusinessHours.spoken)
HEBREW_DIGITS = {"אפס": "0", "אחת": "1", "אחד": "1", "שתיים": "2", "שתים": "2", "שניים": "2",
                 "שלוש": "3", "שלושה": "3", "ארבע": "4", "ארבעה": "4", "חמש": "5", "חמישה": "5",
                 "שש": "6", "שישה": "6", "שבע": "7", "שבעה": "7", "שמונה": "8", "תשע": "9",
                 "תשעה": "9"}
NIQQUD = re.compile(r"[\u0591-\u05c7]")
HEARD_CHARS = 12  # the beginning of an answer heard before a barge-in that still names it
MAX_ASR_KEYWORDS = 30  # a short list: every common word added dilutes the business's own


def normalize(text: str) -> str:
    """Lower-case, no niqqud, no punctuation, single spaces."""
    text = NIQQUD.sub("", text.lower())
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


def phone_digits(text: str) -> str:
    """Digits from spoken Hebrew ("אפס חמש…") or keyed/typed numbers."""
    digits = []
    for word in normalize(text).split():
        if word.isdigit():
            digits.append(word)
        else:
            word = word[1:] if word[:1] == "ו" and word[1:] in HEBREW_DIGITS else word
            digits.append(HEBREW_DIGITS.get(word, ""))
    return "".join(digits)


def asr_keywords(flow_path: str | Path) -> list[str]:
    """The words a transcription model is told to expect (OpenAI `keywords`): the flow's own
    `keywords` (the business's name, services, street), then its intents' labels and keywords,
    each once, at most MAX_ASR_KEYWORDS. A flow that cannot be read gives none (the flow's own
    loading reports it)."""
    try:
        flow = yaml.safe_load(Path(flow_path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return []
    flow = flow if isinstance(flow, dict) else {}
    intents = [i for i in flow.get("intents") or [] if isinstance(i, dict)]
    words = list(flow.get("keywords") or []) + [i.get("label") for i in intents]
    words += [k for i in intents for k in i.get("keywords") or []]
    found: dict[str, str] = {}
    for word in words:
        if isinstance(word, str) and normalize(word):
            found.setdefault(normalize(word), word.strip())
    return list(found.values())[:MAX_ASR_KEYWORDS]


FlowError = FlowFileError  # the flow YAML is missing something the line needs


def check_script(flow: dict) -> None:
    """The flow has what the scripted line says (FlowError naming what is missing)."""
    missing = [k for k in NEEDED if k not in flow]
    if missing:
        raise FlowError(f"missing {', '.join(missing)}")
    if not isinstance(flow["intents"], list) or not all(
            isinstance(i, dict) for i in flow["intents"]):
        raise FlowError("intents: expected a list of entries starting with  - name: …")
    lead = flow["lead"]
    missing = [k for k in LEAD_STEPS if not isinstance(lead, dict) or k not in lead]
    if missing:
        raise FlowError(f"lead: missing {', '.join(missing)}")


def with_hours(flow: dict) -> dict:
    """The flow with every `{hours}` in its texts replaced by its `hours:` as said."""
    spoken = BusinessHours.from_flow(flow, "UTC").spoken()

    def fill(value):
        if isinstance(value, str):
            return value.replace(HOURS, spoken)
        if isinstance(value, list):
            return [fill(v) for v in value]
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return value
    return fill(flow)


class ScriptedLLM(LLM):
    """Answers from the owner's YAML flow; takes a message (name, phone, reason) as a lead.
    The flow is the file as it is now (flow.FlowFile): an edit is used from the next turn.
    A question no intent answers is looked up in the business's facts (`lookup`: the passage
    that answers it, or None) before the flow's `clarify`."""

    name = "scripted"

    def __init__(self, flow_path: str | Path = DEFAULT_FLOW,
                 lookup: Callable[[str], Passage | None] | None = None):
        self.lookup = lookup
        self.source = watch(flow_path)
        self.path = self.source.path
        self.source.add_check(check_script)
        self.source.add_check(with_hours)  # its hours can be said
        self.built: tuple[dict | None, dict] = (None, {})

    @property
    def flow(self) -> dict:
        """The flow's texts, `{hours}` filled in, as the file says now."""
        data = self.source.current()
        seen, flow = self.built
        if seen is not data:
            flow = with_hours(data)
            self.built = (data, flow)
        return flow

    @property
    def intents(self) -> list[dict]:
        return self.flow["intents"]

    @property
    def lead_texts(self) -> dict:
        return self.flow["lead"]

    @property
    def person_said(self) -> tuple[str, str]:
        """What the dialog says for a request for a person: the first message question or the
        transfer sentence."""
        return self.lead_texts["ask_name"], person_texts(self.flow)["transferring"]

    @classmethod
    def from_settings(cls, settings) -> ScriptedLLM:
        """The flow of FLOW_FILE, answering from the facts of FACTS_FILE."""
        return cls(getattr(settings, "flow_file", "") or DEFAULT_FLOW,
                   Lookup(LiveFacts.from_settings(settings)))

    def texts(self) -> list[str]:
        """Every fixed sentence of the flow and of the facts (the prewarm script synthesises
        them)."""
        out = [self.flow["greeting"], self.flow["goodbye"], self.flow["clarify"]]
        out += [self.flow["menu"]] if self.flow.get("menu") else []
        out += [i["answer"] for i in self.intents if i.get("answer")]
        out += [v for k, v in self.lead_texts.items() if k not in ("done", "hangup")]
        out += [self.flow[k] for k in ("transferring", "owner_unavailable") if self.flow.get(k)]
        out += [text for text in (self.flow.get("booking_texts") or {}).values()
                if isinstance(text, str) and "{" not in text]  # said as they are
        facts = getattr(self.lookup, "facts", None)  # a Lookup: the facts' passages are said too
        return out + ([p.text for p in facts.current().passages] if facts else [])

    def match(self, text: str) -> dict | None:
        words = normalize(text)
        if words.isdigit() and len(words) == 1:
            return next((i for i in self.intents if str(i.get("dtmf")) == words), None)
        scored = [(sum(1 for k in i.get("keywords", []) if normalize(k) in words), n, i)
                  for n, i in enumerate(self.intents)]
        best = max(scored, key=lambda s: (s[0], -s[1]))
        return best[2] if best[0] > 0 else None

    def _lead_step(self, history: list[dict]) -> str | None:
        """Which lead question the line asked last, if the last thing it said was one."""
        last = last_said(history, "assistant")
        for step in ("ask_name", "ask_phone", "ask_reason"):  # alone or after a sentence
            if last.endswith(self.lead_texts[step]):
                return step
        return None

    def reply(self, history: list[dict], text: str) -> str:
        return self.respond(history, text)[0]

    def reply_tokens(self, history: list[dict], text: str) -> Iterator[str | Action]:
        """The answer, after its action: a caller asking for a person is transferred in
        business hours (then the dialog says so instead), else this answer takes a message."""
        answer, action = self.respond(history, text)
        if action is not None:
            yield action
        yield answer

    def respond(self, history: list[dict], text: str) -> tuple[str, Action | None]:
        """The flow's answer to `text`, and what the line does after it."""
        step = self._lead_step(history)
        if step == "ask_name":
            return self.lead_texts["ask_phone"], None
        if step == "ask_phone":
            return self.lead_texts["ask_reason"], None
        if step == "ask_reason":
            done = self.lead_texts["done"].format(**self.lead(history, text))
            return done, HANG_UP if self.lead_texts.get("hangup") else None
        intent = self.match(text)
        if booking_step(history) and not (intent and intent.get("lead") and text.isdigit()):
            return "", BOOK  # the booking's question is answered (its person key leaves it)
        if intent is None and (passage := self.from_facts(text)):
            return passage.text, None
        if intent is None:
            last = last_said(history, "assistant")
            return (self.flow.get("menu") or self.lead_texts["ask_name"]
                    if last == self.flow["clarify"] else self.flow["clarify"]), UNANSWERED
        if intent.get("lead"):
            return self.lead_texts["ask_name"], TRANSFER
        if intent.get("booking"):
            return "", BOOK
        return intent["answer"], HANG_UP if intent.get("hangup") else None

    def from_facts(self, text: str) -> Passage | None:
        """The facts' passage that answers the caller's words (not a key they pressed)."""
        if self.lookup is None or normalize(text).replace(" ", "").isdigit():
            return None
        return self.lookup(text)

    def lead(self, history: list[dict], text: str) -> dict | None:
        """The message taken when the caller has answered the last lead question, else None."""
        if self._lead_step(history) != "ask_reason":
            return None
        return {**self._answers(history), "reason": text}

    def partial_lead(self, history: list[dict]) -> dict | None:
        """The answers the caller gave to the message's questions, if any (the call ended
        before the last one)."""
        answers = self._answers(history)
        return answers if any(answers.values()) else None

    def _answers(self, history: list[dict]) -> dict[str, str]:
        """The caller's answers to the message's questions in `history` (the latest of each)."""
        answers: dict[str, str] = {}
        for question, answer in zip(history, history[1:], strict=False):
            if question["role"] == "assistant" and answer["role"] == "user" and answer["text"]:
                for step, key in (("ask_name", "name"), ("ask_phone", "phone"),
                                  ("ask_reason", "reason")):
                    if question["text"].endswith(self.lead_texts[step]):
                        answers[key] = answer["text"]
        phone = phone_digits(answers.get("phone", ""))
        return {"name": answers.get("name", ""),
                "phone": phone if len(phone) >= 7 else answers.get("phone", ""),
                "reason": answers.get("reason", "")}

    def summarize(self, history: list[dict], lead: dict | None) -> str:
        """Line 1: the intents the caller reached (by the flow's answers they heard, each intent's
        `label`); line 2: the message left, or that none was."""
        topics: list[str] = []
        for message in history:
            intent = self.answered(message) if message["role"] == "assistant" else None
            label = intent.get("label", intent["name"]) if intent else ""
            if label and label not in topics:
                topics.append(label)
        first = "פנייה בנושא: " + ", ".join(topics) if topics else "לא זוהה נושא הפנייה"
        return f"{first}\n{lead_line(lead)}"

    def answered(self, message: dict) -> dict | None:
        """The intent whose answer this was, whole or the beginning the caller heard before
        cutting in; for a request for a person, whatever the line said to it: the message's
        first question (alone, or after "the owner is not available"), or the transfer."""
        heard = message["text"]
        if message.get(BOOKING_KEY) is not None:
            return next((i for i in self.intents if i.get("booking")), None)
        for intent in self.intents:
            said = self.person_said if intent.get("lead") else (intent.get("answer"),)
            if any(text and (heard == text or len(heard) >= HEARD_CHARS and text.startswith(heard)
                             or intent.get("lead") and heard.endswith(text)) for text in said):
                return intent
        return None
