"""One grep-able `KIND key=value` log line and one event row per thing that happens on a call."""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterable
from typing import Any

from . import metrics, tracing
from .store import Store

log = logging.getLogger("ivr")
SECRET_KEYS = re.compile(r"(token|secret|password|authorization|signature|api_key)", re.I)
MAX_VALUE_CHARS = 300  # in a log line
MAX_STORED_CHARS = 4000  # in an event row, per string (a TwiML document fits)
MAX_STORED_ITEMS = 60  # keys of a dict or items of a list in an event row
NEEDS_QUOTES = re.compile(r'[\s"=\\]|[\x00-\x1f\x7f-\x9f\u2028\u2029]')
RAW_IN_JSON = re.compile(r"[\x7f-\x9f\u2028\u2029]")  # json.dumps leaves these unescaped


def format_value(value: Any) -> str:
    """A log value: bare when it is plain, else JSON-quoted with every control character escaped,
    so no value can break a line or forge another one (Hebrew is kept readable)."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    if len(text) > MAX_VALUE_CHARS:
        text = text[:MAX_VALUE_CHARS] + "…"
    if text == "" or NEEDS_QUOTES.search(text):
        quoted = json.dumps(text, ensure_ascii=False)
        return RAW_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", quoted)
    return text


def clip(value: Any, limit: int = MAX_STORED_CHARS) -> Any:
    """The value with every string cut to `limit` characters and containers cut in size."""
    if isinstance(value, str):
        return value if len(value) <= limit else value[:limit] + "…"
    if isinstance(value, dict):
        items = list(value.items())[:MAX_STORED_ITEMS]
        return {str(k)[:80]: clip(v, limit) for k, v in items}
    if isinstance(value, (list, tuple)):
        return [clip(v, limit) for v in value[:MAX_STORED_ITEMS]]
    return value


class EventLog:
    """Writes events to the log and the store, with every known secret redacted."""

    def __init__(self, store: Store, secrets: Iterable[str] = ()):
        self.store = store
        self.secrets = [s for s in secrets if s and len(s) >= 6]

    def redact(self, value: Any) -> Any:
        """Replace secret values and the values of secret-named keys, recursively."""
        if isinstance(value, dict):
            return {k: "***" if SECRET_KEYS.search(str(k)) else self.redact(v)
                    for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.redact(v) for v in value]
        if isinstance(value, str):
            for secret in self.secrets:
                value = value.replace(secret, "***")
        return value

    def emit(self, kind: str, call_sid: str | None = None, level: int = logging.INFO, /,
             **detail: Any) -> None:
        """Log `KIND call=… key=value…` and store the event without waiting for the database:
        the store's writer lands it with the other rows queued meanwhile, in one transaction,
        before any later read; storage failure never raises. Each event is counted once in
        the line's figures (ivr/metrics.py) and, a turn, in its trace (ivr/tracing.py)."""
        detail = clip(self.redact(detail))
        metrics.event(kind, detail)
        tracing.event(kind, call_sid, detail)
        fields = ([f"call={format_value(call_sid)}"] if call_sid else []) + [
            f"{k}={format_value(v)}" for k, v in detail.items() if not isinstance(v, dict)]
        log.log(level, "%s %s", kind, " ".join(fields))
        try:
            self.store.add_event(call_sid, kind, detail, later=True)
        except Exception as exc:  # noqa: BLE001 - the log line above already has it
            log.error("EVENT_STORE_ERR kind=%s err=%s", kind, format_value(str(exc)))


class RejectionTally:
    """Rejected requests (forged webhooks, refused sockets) are counted, not stored one by one:
    a log line for the first from each source in a minute, an event row for the first of each
    kind in a minute, and one summary row when more followed. Never waits for the database."""

    WINDOW_SEC = 60.0
    MAX_SOURCES = 50

    def __init__(self, events: EventLog):
        self.events = events
        self.lock = threading.Lock()
        self.windows: dict[str, dict] = {}
        self.timers: list[threading.Timer] = []

    def add(self, kind: str, source: str, **detail: Any) -> None:
        with self.lock:
            window = self.windows.get(kind)
            first = window is None
            if first:
                window = self.windows[kind] = {"count": 0, "sources": {}, "detail": detail}
                timer = threading.Timer(self.WINDOW_SEC, self.flush, args=(kind,))
                timer.daemon = True
                self.timers = [t for t in self.timers if t.is_alive()] + [timer]
                timer.start()
            window["count"] += 1
            sources = window["sources"]
            new_source = source not in sources
            if new_source and len(sources) >= self.MAX_SOURCES:
                source, new_source = "other", "other" not in sources
            sources[source] = sources.get(source, 0) + 1
        if first:
            self.events.emit(kind, None, logging.WARNING, source=source, **detail)
        elif new_source:
            log.warning("%s source=%s %s", kind, format_value(source), " ".join(
                f"{k}={format_value(v)}" for k, v in detail.items()))

    def flush(self, kind: str) -> None:
        """End a kind's window: one summary row if more than the first request was rejected."""
        with self.lock:
            window = self.windows.pop(kind, None)
        if window and window["count"] > 1:
            self.events.emit(kind, None, logging.WARNING, count=window["count"],
                             window_sec=self.WINDOW_SEC, sources=window["sources"],
                             summary=True, **window["detail"])

    def close(self) -> None:
        for timer in self.timers:
            timer.cancel()
        for kind in list(self.windows):
            self.flush(kind)
