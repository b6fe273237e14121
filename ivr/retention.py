"""Retention: delete calls, events, recordings and unused TTS files (and the rows mirroring
them) older than RETENTION_DAYS."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import Any

from . import recordings
from .blob_store import SharedMedia
from .config import Settings
from .eventlog import EventLog
from .facts.gaps import Inbox
from .notify.outbox import NotifyQueue
from .reply_store import ReplyLog
from .store import Store
from .tts_cache import ALIASES, TTSCache
from .twilio_alerts import AlertLog

JOB_ID = "retention-purge"
FIRST_RUN_SEC = 60
MISFIRE_GRACE_SEC = 3600  # a busy scheduler runs the day's purge late rather than skip it
DAY_SEC = 86400


def purge(settings: Settings, store: Store, events: EventLog, cache: TTSCache | None = None,
          days: int | None = None, now: float | None = None) -> dict[str, int]:
    """Delete what is older than `days` (RETENTION_DAYS), leads excepted; emit PURGE; counts."""
    days = settings.retention_days if days is None else days
    before = (time.time() if now is None else now) - days * DAY_SEC
    counts = store.purge_before(before)
    counts["recordings"] = recordings.purge_before(settings.var_dir, before)
    cache = cache or TTSCache(settings.tts_dir, settings.tts_cache_max_mb)
    counts["tts_files"] = cache.purge_unused(before)
    counts["media_rows"] = SharedMedia(store).purge_before(before, keep=ALIASES)
    counts["reply_rows"] = ReplyLog(store).purge_before(before)
    counts["notification_rows"] = NotifyQueue(store).purge_before(before)
    counts["twilio_alert_rows"] = AlertLog(store).purge_before(before)
    counts["gap_rows"] = Inbox(store).purge_before(before)
    events.emit("PURGE", None, logging.INFO, days=days, **counts)
    return counts


def schedule_daily(runtime: Any) -> None:
    """Purge once a day, the first time shortly after start; one job however often called."""
    runtime.scheduler.add_job(
        run_scheduled, "interval", days=1, args=(runtime,), id=JOB_ID, replace_existing=True,
        coalesce=True, max_instances=1, misfire_grace_time=MISFIRE_GRACE_SEC,
        next_run_time=datetime.now() + timedelta(seconds=FIRST_RUN_SEC))


def run_scheduled(runtime: Any) -> None:
    """The daily job: a failure is logged and the next day tries again; it never raises."""
    try:
        purge(runtime.settings, runtime.store, runtime.events, runtime.cache)
    except Exception as exc:  # noqa: BLE001 - a scheduler job must not die on a bad day
        runtime.events.emit("PURGE_ERR", None, logging.ERROR, err=repr(exc)[:200])
