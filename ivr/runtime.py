"""The per-process services a request handler reaches through `current_runtime()`."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from apscheduler.schedulers.base import BaseScheduler
from flask import current_app

from . import twiml
from .blob_store import SharedMedia
from .booking.desk import Desk
from .booking.reminders import Reminders
from .calls import Calls
from .config import Settings
from .delivery import Delivery
from .dialog import Dialog
from .engines import Engines
from .eventlog import EventLog, RejectionTally
from .facts.gaps import Inbox
from .lanes import Lanes, Slots
from .media.last_words import LastWords
from .media.overheard import Overheard
from .notify.digest import Digest
from .notify.notifier import Notifier
from .owner import Owner
from .reply import PendingReplies
from .reply_store import ReplyLog
from .store import Store
from .tts_cache import TTSCache
from .tts_cache.prompts import Prompts
from .watchdog import Watchdog


@dataclass
class Runtime:
    """Everything one app instance runs on, built once by `create_app`."""

    settings: Settings
    store: Store
    calls: Calls
    events: EventLog
    rejections: RejectionTally
    scheduler: BaseScheduler
    engines: Engines
    cache: TTSCache
    prompts: Prompts
    dialog: Dialog
    delivery: Delivery
    watchdog: Watchdog
    turn_pool: ThreadPoolExecutor
    replies: PendingReplies  # replies in chunks that continuation webhooks are playing
    reply_log: ReplyLog  # the same replies in the store, for a continuation on any instance
    continuations: Slots  # continuations waiting for a chunk (CONTINUE_MAX_WAITING at most)
    media: SharedMedia | None = None  # MP3s and recordings in the store (PostgreSQL only)
    owner: Owner = field(default_factory=Owner)  # whom to transfer to and ring first, when
    notifier: Notifier | None = None  # the call summaries and the owner's SMS and e-mails
    lanes: Lanes | None = None  # the server's thread pools and loop, when it runs on LineApp
    overheard: Overheard = field(default_factory=Overheard)  # said over Plays, for next stream
    last_words: LastWords = field(default_factory=LastWords)  # cut off by the hang-up
    desk: Desk | None = None  # the appointments callers book (the flow's booking: section)
    reminders: Reminders | None = None  # the reminder SMS before each appointment
    inbox: Inbox | None = None  # the questions the line could not answer, and the answers
    digest: Digest | None = None  # the day's SMS and e-mail of the new ones

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
        self.rejections.close()
        self.replies.cancel_all()  # their rows say so before the store closes
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        self.watchdog.close()
        if self.notifier:
            self.notifier.close()
        for pool in (self.turn_pool, self.dialog.pool, self.dialog.writers):
            pool.shutdown(wait=False, cancel_futures=True)
        if self.engines.tts is not None:
            self.engines.tts.close()  # its kept connections
        self.store.close()


def current_runtime() -> Runtime:
    """The Runtime of the app handling the current request."""
    return current_app.extensions["ivr"]
