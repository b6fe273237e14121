"""The per-process services a request handler reaches through `current_runtime()`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app

from . import twiml
from .config import Settings
from .eventlog import EventLog
from .store import Store


@dataclass
class Runtime:
    """Settings, store, event log and scheduler of one app instance."""

    settings: Settings
    store: Store
    events: EventLog
    scheduler: Any
    rejections: Any = None
    engines: Any = None
    cache: Any = None
    dialog: Any = None
    delivery: Any = None
    registry: Any = None
    turn_pool: Any = None
    prompts: Any = None
    watchdog: Any = None

    def url(self, path: str) -> str:
        """Absolute public URL of a path on this service."""
        return twiml.abs_url(self.settings.public_base_url, path)

    def tts_url(self, name: str) -> str:
        """Public URL of a file in the TTS cache directory."""
        return self.url(f"/static/tts/{name}")

    def prompt_url(self, alias: str) -> str:
        """URL of a fixed prompt that is sure to exist (the alias, or the beep)."""
        return self.tts_url(self.prompts.name(alias))

    def close(self) -> None:
        """Stop the scheduler and release the database (tests build many apps)."""
        if self.rejections is not None:
            self.rejections.close()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        for pool in (self.turn_pool, getattr(self.dialog, "pool", None)):
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
        self.store.close()


def current_runtime() -> Runtime:
    """The Runtime of the app handling the current request."""
    return current_app.extensions["ivr"]
