"""OpenAI's model lists and announced shutdown dates, read from the pinned openai SDK's source."""

from __future__ import annotations

import ast
import functools
import importlib.util
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

# kind → (the SDK file, relative to the openai package, and the name given the model Literal)
SOURCES = {
    "chat": ("types/shared/chat_model.py", "ChatModel"),
    "transcription": ("types/audio_model.py", "AudioModel"),
    "speech": ("types/audio/speech_model.py", "SpeechModel"),
    "realtime": ("types/realtime/realtime_session_create_request_param.py", "model"),
}
KINDS = tuple(SOURCES)
SHUTDOWN = re.compile(r"Announced shutdown date: (\d{4})-(\d{2})-(\d{2})")
NOT_SUPPORTED = "Not a supported model ID"
# What to use instead, per kind: the line's own defaults (ivr/config.py, tested to be current),
# and for speech the replacement the SDK's `audio.speech` docstring names (the Realtime API).
REPLACEMENTS = {"chat": "gpt-6-luna", "transcription": "gpt-transcribe",
                "speech": "gpt-realtime-2.1-mini (Realtime API)",
                "realtime": "gpt-realtime-2.1-mini"}


@dataclass(frozen=True)
class ModelList:
    """One kind's models as the SDK lists them, with the shutdown dates of its deprecated ones."""

    models: tuple[str, ...]
    shutdowns: dict[str, date]
    unsupported: frozenset[str]  # "Not a supported model ID. Retained for SDK compatibility."

    @property
    def current(self) -> list[str]:
        """The models with no deprecation note at all."""
        return [m for m in self.models if m not in self.shutdowns and m not in self.unsupported]


def sdk_root() -> Path:
    """The installed openai package's folder (its source, with the docstrings)."""
    spec = importlib.util.find_spec("openai")
    if spec is None or not spec.origin:
        raise ImportError("openai is missing: pip install -r requirements.txt")
    return Path(spec.origin).parent


@functools.cache
def model_list(kind: str) -> ModelList:
    """The `kind` models of the pinned SDK (parsed once per process)."""
    relative, target = SOURCES[kind]
    tree = ast.parse((sdk_root() / relative).read_text(encoding="utf-8"))
    literal, note = _annotated_literal(tree, target)
    shutdowns, unsupported = _deprecations(note)
    return ModelList(tuple(literal), shutdowns, frozenset(unsupported))


def _annotated_literal(tree: ast.Module, target: str) -> tuple[list[str], str]:
    """The strings of the Literal assigned to (or annotating) `target`, and the docstring that
    follows it, at module level or in a class body."""
    bodies = [tree.body] + [n.body for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
    for body in bodies:
        for statement, after in zip(body, body[1:] + [None], strict=True):
            if _names(statement) != target:
                continue
            nodes = [getattr(statement, "annotation", None), statement.value]
            strings = [n.value for node in nodes if node is not None for n in ast.walk(node)
                       if isinstance(n, ast.Constant) and isinstance(n.value, str)]
            doc = after.value.value if isinstance(after, ast.Expr) and \
                isinstance(after.value, ast.Constant) else ""
            return strings, str(doc)
    raise LookupError(f"the openai SDK no longer declares {target}")


def _names(statement: ast.stmt) -> str:
    if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
        return statement.target.id
    if isinstance(statement, ast.Assign) and len(statement.targets) == 1 \
            and isinstance(statement.targets[0], ast.Name):
        return statement.targets[0].id
    return ""


def _deprecations(note: str) -> tuple[dict[str, date], list[str]]:
    """`- "a", "b": Announced shutdown date: YYYY-MM-DD. …` items → {model: date}."""
    shutdowns: dict[str, date] = {}
    unsupported: list[str] = []
    text = note.split("Deprecated values:", 1)[1] if "Deprecated values:" in note else ""
    for item in re.split(r"\n\s*- ", "\n" + text)[1:]:
        item = " ".join(item.split())
        head = item[:item.find('": ') + 1] if '": ' in item else item
        names = re.findall(r'"([^"]+)"', head)
        found = SHUTDOWN.search(item)
        if found:
            day = date(*(int(part) for part in found.groups()))
            shutdowns.update(dict.fromkeys(names, day))
        elif NOT_SUPPORTED in item:
            unsupported += names
    return shutdowns, unsupported


def shutdown_date(model: str) -> date | None:
    """The announced shutdown date of `model` in any of the SDK's lists; None if none."""
    for kind in KINDS:
        day = model_list(kind).shutdowns.get(model)
        if day:
            return day
    return None


def current_models(kind: str) -> list[str]:
    """The `kind` models the SDK lists with no shutdown announced."""
    return model_list(kind).current


def is_listed(model: str, kind: str) -> bool:
    """`model` is one of the SDK's `kind` models (a supported ID, retired or not)."""
    models = model_list(kind)
    return model in models.models and model not in models.unsupported


@dataclass(frozen=True)
class ModelNote:
    """A configured model that OpenAI has announced it will shut down (or has shut down)."""

    kind: str
    setting: str
    model: str
    shutdown: date
    today: date
    official: bool  # requests go to OpenAI itself, not to an OPENAI_BASE_URL elsewhere

    @property
    def retired(self) -> bool:
        return self.today >= self.shutdown

    @property
    def refused(self) -> bool:
        """`check` refuses it: retired, and OpenAI itself would be asked."""
        return self.retired and self.official

    @property
    def event(self) -> str:
        return "MODEL_RETIRED" if self.retired else "MODEL_DEPRECATED"

    def detail(self) -> dict:
        return {"kind": self.kind, "model": self.model, "date": self.shutdown.isoformat(),
                "setting": self.setting, "replacement": REPLACEMENTS[self.kind]}

    def message(self) -> str:
        """The owner's line: the setting, the date, and what to use instead."""
        head = f"{self.setting}={self.model}: OpenAI"
        use = f"use {REPLACEMENTS[self.kind]}"
        if self.refused:
            return f"{head} shut this {self.kind} model down on {self.shutdown}; {use}"
        if self.retired:
            return (f"WARNING: {head} shut this {self.kind} model down on {self.shutdown}; "
                    f"OPENAI_BASE_URL may still serve it, else {use}")
        days = (self.shutdown - self.today).days
        return (f"WARNING: {head} shuts this {self.kind} model down on {self.shutdown} "
                f"(in {days} days); {use}")


def configured_models(settings) -> list[tuple[str, str, str]]:
    """(kind, setting, model) of each OpenAI engine the line uses."""
    used = []
    if settings.asr_engine == "openai":
        used.append(("transcription", "OPENAI_ASR_MODEL", settings.openai_asr_model))
    if settings.llm_engine == "openai":
        used.append(("chat", "OPENAI_MODEL", settings.openai_model))
    if settings.tts_engine == "openai":
        model = settings.openai_tts_model
        realtime = is_listed(model, "realtime") and not is_listed(model, "speech")
        used.append(("realtime" if realtime else "speech", "OPENAI_TTS_MODEL", model))
    return used


def model_notes(settings, today: date) -> list[ModelNote]:
    """The configured OpenAI models with an announced shutdown, as of `today`."""
    host = urlsplit(settings.openai_base_url).hostname or "api.openai.com"
    official = host == "openai.com" or host.endswith(".openai.com")
    notes = []
    for kind, name, model in configured_models(settings):
        day = shutdown_date(model)
        if day:
            notes.append(ModelNote(kind, name, model, day, today, official))
    return notes
