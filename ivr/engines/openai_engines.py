"""OpenAI engines: transcription (WAV, Hebrew, the flow's keywords), chat with history, TTS."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from .. import audio
from ..facts.facts import Facts, LiveFacts
from ..facts.grounding import chosen, facts_prompt
from ..facts.retrieval import Lookup
from ..phrases import CHECK_BACK, DONT_KNOW
from .base import (
    ASR,
    HANG_UP,
    LLM,
    SUMMARY_LINE_CHARS,
    TRANSFER,
    TTS,
    Action,
    EngineError,
    Tools,
    clipped,
    lead_line,
)
from .openai_models import is_listed
from .scripted import DEFAULT_FLOW, asr_keywords

PROMPT_FILE = Path(__file__).resolve().parent.parent / "prompts" / "system_he.txt"
PERSON_KEY = "0"  # a caller who presses 0 asks for a person, whatever the model makes of it
PERSON_KEY_TEXT = "הקשתי 0: אני רוצה לדבר עם בעל העסק."
NO_ARGUMENTS = {"type": "object", "properties": {}, "required": [], "additionalProperties": False}
QUESTION = {"type": "object", "properties": {"question": {
    "type": "string", "description": "the caller's question, in their words"}},
    "required": ["question"], "additionalProperties": False}
ACTION_TOOLS = [  # the actions the model may take besides talking: (name, description, schema)
    ("transfer_to_person",
     "The caller asks to speak with a person (the owner, a manager, staff). "
     "The line transfers the call in business hours, else takes a message.", NO_ARGUMENTS),
    ("end_call",
     "The conversation is over (the caller said goodbye or has nothing more):"
     " say a short goodbye, then the line hangs up.", NO_ARGUMENTS),
    ("cannot_answer",
     "The business's facts do not answer the caller's question: call it (the owner is told "
     "of the question) and say plainly that you do not know, offering a message or a person.",
     QUESTION),
]
ACTION_DONE = '{"ok": true, "note": "the line does it once you have spoken"}'
TOOL_ROUNDS = 4  # model → tools → model…: the last round may only talk (tool_choice "none")
NOT_IN_FACTS = Action("unanswered", "not in the facts")
ACTIONS = {"transfer_to_person": TRANSFER, "end_call": HANG_UP, "cannot_answer": NOT_IN_FACTS}
SUMMARY_PROMPT = ("סכם את שיחת הטלפון בשתי שורות קצרות בעברית. שורה ראשונה: במה המתקשר התעניין. "
                  "שורה שנייה: ההודעה שהשאיר (שם, טלפון, סיבה), או 'לא הושארה הודעה'.")
SUMMARY_MAX_TOKENS = 120
# Chat request shapes (OPENAI_CHAT_SHAPE). "reasoning": the GPT-5/GPT-6 and o-series models,
# which refuse `max_tokens` and a non-default `temperature`, and (Chat Completions) function
# tools unless `reasoning_effort` is "none"; "classic": gpt-4o and OpenAI-compatible servers.
REASONING_FAMILY = re.compile(r"^(o\d|gpt-(?:[5-9]|\d\d))")
FIRST_GPT5 = re.compile(r"^gpt-5(?:-mini|-nano)?(?:-\d{4}-\d\d-\d\d)?$")  # no "none" effort
KEYWORD_MODELS = re.compile(r"^gpt-transcribe(?:-\d{4}-\d\d-\d\d)?$")  # take `keywords`


def openai_client(settings):
    """One client per engine; retries off (the dialog has its own timeout and fallback)."""
    try:
        from openai import OpenAI
    except ImportError:
        raise EngineError("openai is missing: pip install -r requirements.txt") from None
    return OpenAI(api_key=settings.openai_api_key, base_url=settings.openai_base_url or None,
                  max_retries=0, timeout=max(settings.asr_timeout_sec, settings.llm_timeout_sec,
                                             settings.tts_timeout_sec))


class OpenAIASR(ASR):
    name = "openai"

    def __init__(self, client, model: str = "gpt-transcribe", language: str = "he",
                 keywords: Iterable[str] = ()):
        self.client, self.model, self.language = client, model, language
        self.keywords = list(keywords)

    @classmethod
    def from_settings(cls, settings) -> OpenAIASR:
        return cls(openai_client(settings), settings.openai_asr_model,
                   settings.language.split("-")[0],
                   asr_keywords(settings.flow_file or DEFAULT_FLOW))

    def hints(self) -> dict:
        """gpt-transcribe takes `languages` (it ignores the singular `language`) and the flow's
        `keywords`; the older models and compatible servers take `language` alone."""
        if not KEYWORD_MODELS.match(self.model):
            return {"language": self.language}
        return {"languages": [self.language]} | (
            {"keywords": self.keywords} if self.keywords else {})

    def transcribe(self, pcm16_8k: bytes) -> str:
        result = self.client.audio.transcriptions.create(
            model=self.model, file=("utterance.wav", audio.wav_bytes(pcm16_8k), "audio/wav"),
            **self.hints())
        return (result.text or "").strip()


def chat_shape(model: str, setting: str = "auto") -> str:
    """The request shape for `model`: OPENAI_CHAT_SHAPE, or by model family when it is auto."""
    if setting != "auto":
        return setting
    return "reasoning" if REASONING_FAMILY.match(model) else "classic"


def lowest_effort(model: str) -> str:
    """The fastest reasoning effort `model` takes ("none" for GPT-5.1 and later: no reasoning
    tokens before the first word, and the one effort Chat Completions allows with tools)."""
    if model.startswith("o"):
        return "low"
    return "minimal" if FIRST_GPT5.match(model) else "none"


class OpenAILLM(LLM):
    """Chat Completions, streamed: the system prompt, then the business's facts (`facts`: all
    of them while they are small, else the passages found for the caller's words), the call so
    far; the line's actions and the booking tools as functions."""

    name = "openai"
    runs_tools = True

    def __init__(self, client, model: str = "gpt-6-luna", system_prompt: str = "",
                 max_chars: int = 420, shape: str = "auto", timeout: float = 8.0,
                 facts: LiveFacts | None = None):
        self.client, self.model, self.system_prompt = client, model, system_prompt
        self.max_chars, self.shape = max_chars, chat_shape(model, shape)
        self.timeout = timeout  # LLM_TIMEOUT_SEC: one reply, its tool rounds included
        self.strict = is_listed(model, "chat")  # OpenAI's own models take strict schemas
        self.facts = facts
        self.lookup = Lookup(facts) if facts is not None else None

    @classmethod
    def from_settings(cls, settings) -> OpenAILLM:
        path = Path(settings.system_prompt_file or PROMPT_FILE)
        prompt = path.read_text(encoding="utf-8").format(min_chars=settings.llm_min_chars,
                                                         max_chars=settings.llm_max_chars)
        return cls(openai_client(settings), settings.openai_model, prompt, settings.llm_max_chars,
                   settings.openai_chat_shape, settings.llm_timeout_sec,
                   LiveFacts.from_settings(settings))

    def grounding(self) -> Facts:
        """The facts as they are now (none without a facts file: then no figure of its own
        may be said)."""
        return self.facts.current() if self.facts is not None else Facts()

    def texts(self) -> list[str]:
        return [DONT_KNOW, CHECK_BACK]

    def prompt(self, history: list[dict], text: str) -> str:
        """The system prompt and the facts for this reply (ivr/facts/grounding.py)."""
        if self.facts is None:
            return self.system_prompt
        before = [m["text"] for m in reversed(history) if m["role"] == "user"][:1]
        passages = chosen(self.facts.current(), [text, *before], self.lookup.retriever())
        return f"{self.system_prompt.rstrip()}\n{facts_prompt(passages)}"

    def limits(self, max_tokens: int, temperature: float) -> dict:
        """The length limit and sampling in the shape the model accepts (see REASONING_FAMILY)."""
        if self.shape == "reasoning":
            return {"max_completion_tokens": max_tokens,
                    "reasoning_effort": lowest_effort(self.model)}
        return {"max_tokens": max_tokens, "temperature": temperature}

    def messages(self, history: list[dict], text: str) -> list[dict]:
        """The chat so far: a turn whose reply used tools brings its calls and their results
        (kept in the history as "tools") before its words."""
        messages = [{"role": "system", "content": self.prompt(history, text)}]
        for m in history:
            messages += m.get("tools") or []
            messages.append({"role": m["role"], "content": m["text"]})
        return messages + [{"role": "user", "content": text}]

    def tool_list(self, tools: Tools | None) -> list[dict]:
        """The functions offered: the line's actions, and the booking tools when given; strict
        schemas where the model takes them."""
        defined = ACTION_TOOLS + (list(tools.definitions) if tools is not None else [])
        strict = {"strict": True} if self.strict else {}
        return [{"type": "function", "function": {"name": name, "description": about,
                                                  "parameters": schema, **strict}}
                for name, about, schema in defined]

    def reply(self, history: list[dict], text: str) -> str:
        result = self.client.chat.completions.create(
            model=self.model, messages=self.messages(history, text),
            **self.limits(max(64, self.max_chars // 2), 0.5))
        reply = (result.choices[0].message.content or "").strip()
        return clip(reply, self.max_chars)

    def reply_tokens(self, history: list[dict], text: str,
                     tools: Tools | None = None) -> Iterator[str | Action]:
        """The reply's text as the model writes it (`stream=True`), cut off at LLM_MAX_CHARS;
        an action the model calls (ACTION_TOOLS) as its Action; key 0 asks for a person.
        With `tools`, a call of one of them is run by `tools.run` and its result given back to
        the model, whose next words follow (TOOL_ROUNDS at most), all within `timeout`; the
        calls and results are appended to `tools.kept` for the history."""
        from openai.lib.streaming.chat import ChatCompletionStreamState
        if text.strip() == PERSON_KEY:
            yield TRANSFER
            text = PERSON_KEY_TEXT
        deadline = time.monotonic() + self.timeout
        messages, offered = self.messages(history, text), self.tool_list(tools)
        strict = {"parallel_tool_calls": False} if self.strict else {}
        written = 0
        for round_ in range(TOOL_ROUNDS if tools is not None else 1):
            left = deadline - time.monotonic()
            if left <= 0:
                raise EngineError(f"the reply and its tools took over {self.timeout:.3g} s")
            last = round_ == TOOL_ROUNDS - 1
            stream = self.client.chat.completions.create(
                model=self.model, messages=messages, stream=True, tools=offered,
                **({"tool_choice": "none"} if last and tools is not None else strict),
                timeout=left, **self.limits(max(64, self.max_chars // 2), 0.5))
            state, named = ChatCompletionStreamState(), set()
            try:
                for chunk in stream:
                    state.handle_chunk(chunk)
                    choice = chunk.choices[0] if chunk.choices else None
                    for call in (choice.delta.tool_calls or []) if choice else []:
                        name = call.function.name if call.function else None
                        if name in ACTIONS and call.index not in named:
                            named.add(call.index)
                            yield ACTIONS[name]
                    delta = choice.delta.content if choice else None
                    if delta and written < self.max_chars:
                        delta = delta[:self.max_chars - written]
                        written += len(delta)
                        yield delta
                    if written >= self.max_chars and tools is None:
                        return  # said in full: nothing more of this reply is heard
            finally:
                stream.close()
            calls = called(state)
            if tools is None or not any(c.function.name not in ACTIONS for c in calls):
                return
            exchange = [{"role": "assistant", "content": None, "tool_calls": [
                {"id": c.id, "type": "function",
                 "function": {"name": c.function.name, "arguments": c.function.arguments}}
                for c in calls]}]
            for c in calls:
                result = ACTION_DONE if c.function.name in ACTIONS else \
                    tools.run(c.function.name, c.function.arguments)
                exchange.append({"role": "tool", "tool_call_id": c.id, "content": result})
            messages += exchange
            tools.kept += exchange

    def summarize(self, history: list[dict], lead: dict | None) -> str:
        """Two lines written by the model (one short completion); any failure: the base's."""
        try:
            result = self.client.chat.completions.create(
                model=self.model, **self.limits(SUMMARY_MAX_TOKENS, 0.2),
                messages=[{"role": "system", "content": SUMMARY_PROMPT},
                          {"role": "user", "content": transcript(history, lead)}])
            lines = [line.strip() for line in (result.choices[0].message.content or "")
                     .splitlines() if line.strip()]
            if lines:
                return "\n".join(clipped(line, SUMMARY_LINE_CHARS) for line in lines[:2])
        except Exception:  # noqa: BLE001 - the owner still gets the summary built from the call
            pass
        return super().summarize(history, lead)


def called(state) -> list:
    """The function calls of a streamed completion, whole (the SDK's accumulator joined their
    pieces); none when the stream ended without a choice."""
    try:
        completion = state.get_final_completion()
    except AssertionError:  # no chunk came at all
        return []
    message = completion.choices[0].message if completion.choices else None
    return [c for c in (message.tool_calls or []) if c.type == "function"] if message else []


def clip(text: str, max_chars: int) -> str:
    """Cut an over-long reply at the last sentence end within the limit (phone-length)."""
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    end = max(cut.rfind(mark) for mark in ".?!")
    return cut[:end + 1] if end > max_chars // 3 else cut.rsplit(" ", 1)[0] + "…"


class OpenAITTS(TTS):
    name = "openai"
    speaks_live = True  # /v1/audio/speech streams its MP3: decoded as it comes (stream mode)

    def __init__(self, client, model: str = "gpt-4o-mini-tts", voice: str = "alloy"):
        self.client, self.model, self.voice = client, model, voice

    @classmethod
    def from_settings(cls, settings) -> OpenAITTS:
        return cls(openai_client(settings), settings.openai_tts_model, settings.openai_tts_voice)

    def synthesize(self, text: str) -> bytes:
        result = self.client.audio.speech.create(model=self.model, voice=self.voice, input=text,
                                                 response_format="mp3")
        return result.content

    def live(self, text: str) -> Iterator[bytes]:
        """μ-law 8 kHz as the MP3 streams in (the SDK's streaming response, decoded as its
        bytes arrive): the first audio after the first MP3 frames, not the whole file."""
        return audio.mp3_stream_to_ulaw(self._mp3_bytes(text))

    def _mp3_bytes(self, text: str) -> Iterator[bytes]:
        with self.client.audio.speech.with_streaming_response.create(
                model=self.model, voice=self.voice, input=text,
                response_format="mp3") as response:
            yield from response.iter_bytes()  # each piece as it arrives (no size: no wait)


def transcript(history: list[dict], lead: dict | None) -> str:
    """The call as the summary prompt reads it: who said what, then the message left."""
    who = {"user": "מתקשר", "assistant": "נציג"}
    lines = [f"{who.get(m['role'], m['role'])}: {m['text']}" for m in history if m["text"]]
    return "\n".join(lines + [lead_line(lead)])
