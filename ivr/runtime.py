"""The per-process services a request handler reaches through `current_runtime()`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import current_app

from . import twiml
from .config import Settings
from .eventlog import EventLog
from .store import Store

GREETING_FILE = "greeting_he.mp3"
FALLBACK_FILE = "fallback_he.mp3"
GOODBYE_FILE = "goodbye_he.mp3"


@dataclass
class Runtime:
    """Settings, store, event log and scheduler of one app instance."""

    settings: Settings
    store: Store
    events: EventLog
    scheduler: Any
    engines: Any = None
    cache: Any = None
    dialog: Any = None
    delivery: Any = None
    registry: Any = None
    turn_pool: Any = None
    extras: dict[str, Any] = field(default_factory=dict)

    def url(self, path: str) -> str:
        """Absolute public URL of a path on this service."""
        return twiml.abs_url(self.settings.public_base_url, path)

    def tts_url(self, name: str) -> str:
        """Public URL of a file in the TTS cache directory."""
        return self.url(f"/static/tts/{name}")

    def close(self) -> None:
        """Stop the scheduler and release the database (tests build many apps)."""
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        for pool in (self.turn_pool, getattr(self.dialog, "pool", None)):
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
        self.store.close()


def current_runtime() -> Runtime:
    """The Runtime of the app handling the current request."""
    return current_app.extensions["ivr"]
