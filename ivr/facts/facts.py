"""The owner's facts file, the site's reviewed passages and the inbox's answers, as passages."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import create_engine, select
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from ..flow import FlowFile, FlowFileError, composed, node_line, watch
from ..schema import gap_groups, gaps, inbox_revision
from .figures import figures

DEFAULT_FACTS = Path(__file__).resolve().parent.parent / "flows" / "facts_he.yaml"
IMPORTED = "facts_imported.yaml"  # the site importer's passages, beside the facts file
INBOX = "inbox:"  # an inbox answer's source: "inbox:<group id>"
TITLE_QUESTIONS = 10  # the questions of a group that title its answer
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
    """The passages the line may answer from: the facts file's, then `from_inbox` answers the
    owner wrote in the inbox, then the last `from_site` the site's, as the owner reviewed
    them; and every figure they name (figures.figures)."""

    passages: tuple[Passage, ...] = ()
    figures: frozenset[str] = field(default_factory=frozenset)
    from_site: int = 0
    from_inbox: int = 0

    @classmethod
    def of(cls, passages: list[Passage], site: list[Passage] = (),
           inbox: tuple[Passage, ...] = ()) -> Facts:
        found: set[str] = set()
        for passage in [*passages, *inbox, *site]:
            found |= figures(passage.text)
        return cls((*passages, *inbox, *site), frozenset(found), len(site), len(inbox))


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


class InboxAnswers:
    """The answers the owner wrote in the inspector's inbox (ivr/facts/gaps.py), as Q&A
    passages (title: the group's questions, text: the answer, source "inbox:<id>"), read from
    the line's database, so an answer written on one instance is used by the next call on any.
    Each look reads one row (the inbox's revision); the answers are read again only when it
    moved. A database that cannot be read leaves the last answers read (logged once)."""

    def __init__(self, url: str):
        self.url = url
        self.engine: Engine | None = None
        self.lock = threading.Lock()
        self.read: tuple[int | None, tuple[Passage, ...]] = (None, ())
        self.failing = ""

    def _engine(self) -> Engine | None:
        """The database's engine, once there is a database (SQLite: its file exists). A
        connection PostgreSQL dropped fails one look (logged) and is replaced for the next."""
        with self.lock:
            if self.engine is None:
                if self.url.startswith("sqlite:///"):
                    if not Path(self.url[len("sqlite:///"):]).is_file():
                        return None
                    self.engine = create_engine(self.url, poolclass=NullPool)
                else:
                    self.engine = create_engine(self.url, pool_size=1, max_overflow=4)
            return self.engine

    def current(self) -> tuple[Passage, ...]:
        """The answered groups as passages, oldest group first (the same tuple while the
        inbox's revision stays)."""
        try:
            engine = self._engine()
            if engine is None:
                return self.read[1]
            with engine.connect() as conn:
                revision = conn.execute(select(inbox_revision.c.revision)
                                        .where(inbox_revision.c.id == 1)).scalar() or 0
                if revision == self.read[0]:
                    return self.read[1]
                answered = conn.execute(select(gap_groups.c.id, gap_groups.c.question,
                                               gap_groups.c.answer)
                                        .where(gap_groups.c.answer != "")
                                        .order_by(gap_groups.c.id)).all()
                asked = conn.execute(select(gaps.c.group_id, gaps.c.question)
                                     .where(gaps.c.group_id.in_([r[0] for r in answered]))
                                     .order_by(gaps.c.created_at)).all()
        except Exception as exc:  # noqa: BLE001 - the facts files still answer
            if repr(exc) != self.failing:
                self.failing = repr(exc)
                log.error("FACTS_ERR the inbox's answers cannot be read: %s",
                          str(exc).splitlines()[0][:200])
            return self.read[1]
        self.failing = ""
        questions: dict[int, list[str]] = {gid: [first] for gid, first, _ in answered}
        for group_id, question in asked:
            said = questions[group_id]
            if question not in said and len(said) < TITLE_QUESTIONS:
                said.append(question)
        passages = tuple(Passage(answer, f"{INBOX}{gid}", " / ".join(questions[gid]))
                         for gid, _, answer in answered)
        with self.lock:
            if self.read[1] != passages:
                self.read = (revision, passages)
            else:  # the same answers: the same tuple, so nothing is rebuilt on it
                self.read = (revision, self.read[1])
            return self.read[1]


class LiveFacts:
    """The facts as they are now: the facts file (FACTS_FILE), the reviewed passages of
    facts_imported.yaml beside it, and the owner's answers in the inbox (`answers`). An edit
    is used from the next look; a broken file is logged (FACTS_ERR, file:line:column) while
    its last good version answers (flow.FlowFile)."""

    def __init__(self, path: str | Path | None = None, answers: InboxAnswers | None = None):
        self.source = watch(path or DEFAULT_FACTS, kind="FACTS")
        self.source.add_check(check_facts)
        self.imported_path = self.source.path.parent / IMPORTED
        self.answers = answers
        self.lock = threading.Lock()
        self.built: tuple[tuple, Facts] = ((), Facts())
        self.unread: tuple[tuple | None, str] = (None, "")  # the review file's version, why

    @classmethod
    def from_settings(cls, settings) -> LiveFacts:
        """The facts of FACTS_FILE, with the inbox's answers in DATABASE_URL's database."""
        url = getattr(settings, "database_url", "")
        return cls(getattr(settings, "facts_file", "") or DEFAULT_FACTS,
                   InboxAnswers(url) if url else None)

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
        """The facts as they are now (the last good version of each file): the same Facts
        while nothing changed."""
        data = self.source.current()
        imported = self._imported()
        extra = imported.current() if imported else NOTHING
        inbox = self.answers.current() if self.answers else ()
        with self.lock:
            seen = self.built[0]
            if len(seen) != 3 or seen[0] is not data or seen[1] is not extra \
                    or seen[2] is not inbox:
                self.built = ((data, extra, inbox), Facts.of(
                    passages_of(data, self.source.path), reviewed_passages(extra), inbox))
            return self.built[1]
