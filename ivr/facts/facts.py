"""The owner's facts file (YAML beside the flow) and the site's reviewed passages, as passages
with their sources and the figures they name; read again when either file changes."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ..flow import FlowFile, FlowFileError, composed, node_line, watch
from .figures import figures

DEFAULT_FACTS = Path(__file__).resolve().parent.parent / "flows" / "facts_he.yaml"
IMPORTED = "facts_imported.yaml"  # the site importer's passages, beside the facts file
SERVICE_TITLE = "שירות מחיר עולה עלות"  # what a question about a service says
TEXTS = {"hours": "שעות הפתיחה", "address": "הכתובת", "parking": "חניה"}  # key → its title
NOTHING: dict = {}  # no review file
log = logging.getLogger("ivr")


@dataclass(frozen=True)
class Passage:
    """One thing the business says: `text` as said, where it is written (`source`:
    "facts_he.yaml:12" or a page's URL), and `title`: words it answers that its text may not
    say (a Q&A's question, "חניה")."""

    text: str
    source: str
    title: str = ""


@dataclass(frozen=True)
class Facts:
    """The passages the line may answer from (the last `from_site` of them the site's, as the
    owner reviewed them), and every figure they name (figures.figures)."""

    passages: tuple[Passage, ...] = ()
    figures: frozenset[str] = field(default_factory=frozenset)
    from_site: int = 0

    @classmethod
    def of(cls, passages: list[Passage], site: list[Passage] = ()) -> Facts:
        found: set[str] = set()
        for passage in [*passages, *site]:
            found |= figures(passage.text)
        return cls((*passages, *site), frozenset(found), len(site))


def _text(value, key: str) -> str:
    """A text (or a number) of the file, on one line; ValueError naming `key` otherwise."""
    if isinstance(value, bool) or not isinstance(value, str | int | float) \
            or not str(value).strip():
        raise ValueError(f"{key}: expected a text")
    return " ".join(str(value).split())


def _list(data: dict, key: str) -> list:
    value = data.get(key) or []
    if not isinstance(value, list):
        raise ValueError(f"{key}: expected a list of entries starting with  - ")
    return value


def service_text(service: dict, key: str) -> str:
    """A service as said: "תספורת: 80 ₪, 30 דקות. <about>"."""
    if not isinstance(service, dict) or "name" not in service:
        raise ValueError(f"{key}: expected name: (and price:, minutes:, about:)")
    said = _text(service["name"], f"{key}.name")
    if service.get("price") is not None:
        said += f": {_text(service['price'], f'{key}.price')} ₪"
    if service.get("minutes") is not None:
        said += f", {_text(service['minutes'], f'{key}.minutes')} דקות"
    return said + (f". {_text(service['about'], f'{key}.about')}" if service.get("about") else ".")


def entries(data: dict) -> list[tuple[str, str, str, str]]:
    """The facts file's passages as (key in the file, text, title, source named or ""):
    ValueError naming the entry ("qa.2: expected q: and a:") for one the line cannot say."""
    out = []
    for n, service in enumerate(_list(data, "services")):
        out.append((f"services.{n}", service_text(service, f"services.{n}"), SERVICE_TITLE, ""))
    for key, title in TEXTS.items():
        if data.get(key) is not None:
            out.append((key, _text(data[key], key), title, ""))
    for n, policy in enumerate(_list(data, "policies")):
        out.append((f"policies.{n}", _text(policy, f"policies.{n}"), "", ""))
    for n, pair in enumerate(_list(data, "qa")):
        if not isinstance(pair, dict) or "q" not in pair or "a" not in pair:
            raise ValueError(f"qa.{n}: expected q: and a: (and source:)")
        source = _text(pair["source"], f"qa.{n}.source") if pair.get("source") else ""
        out.append((f"qa.{n}", _text(pair["a"], f"qa.{n}.a"), _text(pair["q"], f"qa.{n}.q"),
                    source))
    return out


def imported_entries(data: dict) -> list[tuple[str, str, str, str, bool]]:
    """The review file's passages as (key, text, source URL, title, reviewed)."""
    out = []
    for n, item in enumerate(_list(data, "passages")):
        key = f"passages.{n}"
        if not isinstance(item, dict) or "text" not in item or "source" not in item:
            raise ValueError(f"{key}: expected text:, source: and reviewed:")
        if not isinstance(item.get("reviewed", False), bool):
            raise ValueError(f"{key}.reviewed: expected true or false")
        title = _text(item["title"], f"{key}.title") if item.get("title") else ""
        out.append((key, _text(item["text"], f"{key}.text"), _text(item["source"], key), title,
                    item.get("reviewed", False)))
    return out


def check_facts(data: dict) -> None:
    """The facts file can be said (ValueError naming the entry that cannot)."""
    entries(data)


def check_imported(data: dict) -> None:
    imported_entries(data)


def passages_of(data: dict, path: Path) -> list[Passage]:
    """The facts file's passages, each with its file:line (or the source its entry names)."""
    node = composed(path)
    return [Passage(text, source or f"{path.name}:{node_line(node, key) or 1}", title)
            for key, text, title, source in entries(data)]


def reviewed_passages(data: dict) -> list[Passage]:
    """The review file's passages the owner marked `reviewed: true`, with their URLs."""
    return [Passage(text, url, title)
            for _, text, url, title, reviewed in imported_entries(data) if reviewed]


class LiveFacts:
    """The facts as the files say now: the facts file (FACTS_FILE) and the reviewed passages of
    facts_imported.yaml beside it. An edit is used from the next look; a broken one is logged
    (FACTS_ERR, file:line:column) while the last good version answers (flow.FlowFile)."""

    def __init__(self, path: str | Path | None = None):
        self.source = watch(path or DEFAULT_FACTS, kind="FACTS")
        self.source.add_check(check_facts)
        self.imported_path = self.source.path.parent / IMPORTED
        self.lock = threading.Lock()
        self.built: tuple[tuple, Facts] = ((), Facts())
        self.unread: tuple[tuple | None, str] = (None, "")  # the review file's version, why

    @classmethod
    def from_settings(cls, settings) -> LiveFacts:
        return cls(getattr(settings, "facts_file", "") or DEFAULT_FACTS)

    def _imported(self) -> FlowFile | None:
        """The review file while there is one that could be read (a version that cannot is
        logged once, FACTS_ERR, and its passages are not used)."""
        try:
            info = os.stat(self.imported_path)
        except OSError:
            return None  # none, or deleted: nothing imported is used
        version = (info.st_mtime_ns, info.st_size, info.st_ino)
        if self.unread[0] == version:
            return None
        try:
            imported = watch(self.imported_path, kind="FACTS")
            imported.add_check(check_imported)
        except FlowFileError as exc:
            self.unread = (version, f"{exc}; its passages are not used")
            log.error("FACTS_ERR %s", self.unread[1])
            return None
        self.unread = (None, "")
        return imported

    @property
    def problem(self) -> str:
        """What is wrong with the files now ("" when nothing)."""
        self.current()
        imported = self._imported()
        problems = (self.source.problem, imported.problem if imported else self.unread[1])
        return "; ".join(p for p in problems if p)

    def current(self) -> Facts:
        """The facts as the files say now (the last good version of each)."""
        data = self.source.current()
        imported = self._imported()
        extra = imported.current() if imported else NOTHING
        with self.lock:
            seen = self.built[0]
            if len(seen) != 2 or seen[0] is not data or seen[1] is not extra:
                self.built = ((data, extra), Facts.of(passages_of(data, self.source.path),
                                                      reviewed_passages(extra)))
            return self.built[1]
