"""The owner's flow file: errors naming file, line and column; read again when it changes."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

import yaml

DEFAULT_FLOW = Path(__file__).resolve().parent / "flows" / "default_he.yaml"
log = logging.getLogger("ivr")

Check = Callable[[dict], None]  # raises ValueError naming what is wrong with a flow


class FlowFileError(ValueError):
    """The flow file cannot be used: one sentence, starting with file:line:column where known."""


def explain(exc: yaml.MarkedYAMLError, lines: list[str]) -> str:
    """What an owner should do about a YAML error, in words (not PyYAML's token names)."""
    mark, problem = exc.problem_mark, exc.problem or ""
    line = lines[mark.line] if mark and mark.line < len(lines) else ""
    if "\t" in line[:mark.column + 1] or "'\\t'" in problem:
        return "a tab: indent with spaces only (YAML refuses tabs)"
    opened = exc.context_mark
    if problem.startswith("expected <block end>"):
        return ("this line is not lined up with the lines of its block (from line "
                f"{opened.line + 1}): indent it with the same number of spaces")
    if "quoted scalar" in (exc.context or "") and opened:
        return (f"the quotation mark at line {opened.line + 1}, column {opened.column + 1} "
                "is never closed")
    if problem == "mapping values are not allowed here":
        return "a ':' inside a text: put the whole text in double quotes, or fix the indentation"
    return problem + (f" ({exc.context})" if exc.context else "")


def read_flow(path: str | Path) -> dict:
    """The flow's YAML as a mapping; FlowFileError in one sentence naming the file (and where
    in it) for a file that cannot be read or parsed."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FlowFileError(f"{path}: cannot be read: {getattr(exc, 'strerror', None) or exc}") \
            from None
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise FlowFileError(f"{where}: {explain(exc, text.splitlines())}") from None
    except yaml.YAMLError as exc:
        raise FlowFileError(f"{path}: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise FlowFileError(f"{path}: expected keys (name: value) at the top, "
                            f"found a {type(data).__name__}")
    return data


def entry_line(path: Path, key: str) -> int | None:
    """The line of the entry `key` ("hours.sun", "intents.2.answer") in the YAML file, if any."""
    return node_line(composed(path), key)


def composed(path: Path) -> yaml.Node | None:
    """The YAML file's node tree (yaml.compose: each entry with its line), None if unreadable."""
    try:
        return yaml.compose(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None


def node_line(node: yaml.Node | None, key: str) -> int | None:
    """The line of the entry `key` under a composed YAML `node` (yaml.compose), if any."""
    for part in key.split("."):
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and part.isdigit() \
                and int(part) < len(node.value):
            node = node.value[int(part)]
        else:
            return None
        if node is None:
            return None
    return node.start_mark.line + 1


class FlowFile:
    """One flow file as the line uses it. `current()` looks at the file (a stat) and reads it
    again when it changed: a good edit is used from then on; a bad one (YAML or a failed check)
    is logged once and kept as `problem` while the previous flow goes on answering. `kind`
    names it in the log (FLOW_ERR, FLOW_RELOADED; FACTS_… for the facts file)."""

    def __init__(self, path: str | Path, kind: str = "FLOW"):
        self.path = Path(path)
        self.kind = kind
        self.checks: list[Check] = []
        self.lock = threading.Lock()
        self.seen = self._signature()
        self.data = read_flow(self.path)
        self.problem = ""

    def _signature(self) -> tuple | None:
        """What changes when the file is written or replaced (None: it is gone)."""
        try:
            info = os.stat(self.path)
        except OSError:
            return None
        return info.st_mtime_ns, info.st_ctime_ns, info.st_size, info.st_ino

    def add_check(self, check: Check) -> None:
        """Run `check` on this flow now (FlowFileError if it fails) and on every new version."""
        self._run(check, self.current())
        with self.lock:
            if check not in self.checks:
                self.checks.append(check)

    def _run(self, check: Check, data: dict) -> None:
        """`check(data)`; its error named by the file, and by the line of the entry its message
        starts with (hours.sun: …) when the file has that entry."""
        try:
            check(data)
        except ValueError as exc:  # an HoursError stays one (a FlowFileError too)
            kind = type(exc) if isinstance(exc, FlowFileError) else FlowFileError
            line = entry_line(self.path, str(exc).split(": ", 1)[0])
            raise kind(f"{self.path}{f':{line}' if line else ''}: {exc}") from None

    def current(self) -> dict:
        """The flow as the file says now, or the last good version with `problem` set."""
        signature = self._signature()
        if signature != self.seen:
            with self.lock:
                if signature != self.seen:
                    self._reload(signature)
        return self.data

    def _reload(self, signature: tuple | None) -> None:
        self.seen = signature
        try:
            data = read_flow(self.path)
            for check in self.checks:
                self._run(check, data)
        except FlowFileError as exc:
            self.problem = f"{exc}; the line goes on with the {self.kind.lower()} it read before"
            log.error("%s_ERR %s", self.kind, self.problem)
            return
        self.data, self.problem = data, ""
        log.info("%s_RELOADED path=%s", self.kind, self.path)


_files: dict[Path, FlowFile] = {}
_files_lock = threading.Lock()


def watch(path: str | Path | None, kind: str = "FLOW") -> FlowFile:
    """The process's one FlowFile of `path` (default: the shipped flow), read on first use;
    FlowFileError when that first reading fails."""
    key = Path(path or DEFAULT_FLOW).resolve()
    with _files_lock:
        if key not in _files:
            _files[key] = FlowFile(key, kind)
        return _files[key]


def problem(path: str | Path | None) -> str:
    """The flow file's problem as the line sees it now ("" when it is fine or not in use)."""
    key = Path(path or DEFAULT_FLOW).resolve()
    flow = _files.get(key)
    if flow is None:
        return ""
    flow.current()
    return flow.problem
