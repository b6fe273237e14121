"""One grep-able `KIND key=value` log line and one event row per thing that happens on a call."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from typing import Any

from .store import Store

log = logging.getLogger("ivr")
SECRET_KEYS = re.compile(r"(token|secret|password|authorization|signature|api_key)", re.I)
MAX_VALUE_CHARS = 300


def format_value(value: Any) -> str:
    """A log value: bare when it has no spaces or quotes, else JSON-quoted (Hebrew kept)."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    if len(text) > MAX_VALUE_CHARS:
        text = text[:MAX_VALUE_CHARS] + "…"
    if text == "" or re.search(r'[\s"=]', text):
        return json.dumps(text, ensure_ascii=False)
    return text


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
        """Log `KIND call=… key=value…` and store the event; storage failure never raises."""
        self._emit(kind, call_sid, level, detail, later=False)

    def emit_later(self, kind: str, call_sid: str | None = None, /, **detail: Any) -> None:
        """The same from the media hot path: the row is written by the store's writer thread."""
        self._emit(kind, call_sid, logging.INFO, detail, later=True)

    def _emit(self, kind: str, call_sid: str | None, level: int, detail: dict,
              later: bool) -> None:
        detail = self.redact(detail)
        fields = ([f"call={call_sid}"] if call_sid else []) + [
            f"{k}={format_value(v)}" for k, v in detail.items() if not isinstance(v, dict)]
        log.log(level, "%s %s", kind, " ".join(fields))
        try:
            self.store.add_event(call_sid, kind, detail, later=later)
        except Exception as exc:  # noqa: BLE001 - the log line above already has it
            log.error("EVENT_STORE_ERR kind=%s err=%s", kind, format_value(str(exc)))
