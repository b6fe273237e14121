"""The Hebrew AI phone line: `create_app` wires config, store, engines, scheduler and routes."""

from __future__ import annotations

import logging
import sys
from datetime import date

from apscheduler.schedulers.background import BackgroundScheduler
from flask import Flask

from . import metrics, threads, twilio_alerts, twiml
from .blob_store import shared_media
from .booking.desk import Desk
from .booking.notices import BookingNotices
from .booking.reminders import Reminders
from .calls import Calls
from .config import Settings
from .delivery import Delivery
from .dialog import Dialog
from .engines import build_engines
from .engines.openai_models import model_notes
from .eventlog import EventLog, RejectionTally
from .facts.gaps import Inbox
from .flow import watch
from .lanes import Slots
from .notify.digest import Digest
from .notify.notifier import Notifier
from .owner import LiveOwner
from .reply import PendingReplies
from .reply_store import ReplyLog
from .retention import schedule_daily
from .runtime import Runtime
from .store import Store
from .tts_cache import TTSCache
from .tts_cache.prompts import Prompts, prompt_texts
from .watchdog import Watchdog

MAX_WEBHOOK_BYTES = 256 * 1024
CALENDAR_SYNC_JOB = "calendar-sync"
CALENDAR_SYNC_SEC = 60  # a booking the owner's calendar missed reaches it within this
METRICS_JOB = "metrics-sample"


def configure_logging() -> None:
    """One plain line per event on stderr, once per process."""
    root = logging.getLogger("ivr")
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        root.propagate = False


def create_app(config: Settings | None = None) -> Flask:
    """Build the Flask app; `config=None` reads and validates the environment."""
    settings = config or Settings.from_env()
    settings.prepare()
    configure_logging()
    for warning in settings.warnings:
        logging.getLogger("ivr").warning("%s", warning)
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = MAX_WEBHOOK_BYTES
    store = Store(settings.database_url)
    calls = Calls(store)
    scheduler = BackgroundScheduler(daemon=True, job_defaults={"misfire_grace_time": 30})
    events = EventLog(store, settings.secrets())
    engines = build_engines(settings)
    media = shared_media(store)
    cache = TTSCache(settings.tts_dir, settings.tts_cache_max_mb, shared=media,
                     name_key=settings.tts_name_key)
    cache.ensure_beep()
    cache.share_aliases()
    prompts = Prompts(cache, engines.tts, lambda: prompt_texts(settings, engines.llm))  # live
    delivery = Delivery(settings, events)
    reply_log = ReplyLog(store)
    owner = LiveOwner(settings, watch(settings.flow_file))  # follows edits of the flow file
    notifier = Notifier(settings, store, events, delivery, engines.llm)

    desk = Desk.from_settings(settings, store, watch(settings.flow_file), events)
    inbox = Inbox(store, events)  # the questions the line could not answer, for the owner

    def prompt_url(alias: str) -> str:
        return twiml.abs_url(settings.public_base_url, f"/static/tts/{prompts.name(alias)}")
    runtime = Runtime(
        settings=settings, store=store, calls=calls, events=events,
        rejections=RejectionTally(events), scheduler=scheduler, engines=engines, cache=cache,
        prompts=prompts, dialog=Dialog(settings, store, events, engines, cache, owner,
                                         notifier.lead_left, notifier.call_ended, desk,
                                         on_gap=inbox.record),
        delivery=delivery,
        watchdog=Watchdog(settings, scheduler, calls, events, delivery, prompt_url),
        turn_pool=threads.executor("turn"),
        replies=PendingReplies(share=reply_log.observer), reply_log=reply_log, media=media,
        continuations=Slots(settings.continue_max_waiting),
        owner=owner, notifier=notifier,
        desk=desk, inbox=inbox)
    wire_bookings(runtime)
    runtime.watchdog.recover()  # before the first sweep, which may run what it counts
    runtime.watchdog.start()
    runtime.notifier.start(scheduler)  # resumes the retries a stopped process left pending
    runtime.digest = Digest(settings, inbox, notifier, events)
    runtime.digest.recover()  # the day's digest of new gaps, when notifications are set
    runtime.digest.start(scheduler)
    schedule_daily(runtime)
    twilio_alerts.schedule_daily(runtime)  # Twilio's own warnings, read back once a day
    scheduler.add_job(metrics.sample, "interval", seconds=metrics.SAMPLE_SEC, id=METRICS_JOB,
                      replace_existing=True, max_instances=1, coalesce=True)  # pools' queues
    app.extensions["ivr"] = runtime

    from .web import calendar_feed, inspector, public, scrape, webhooks
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(public.bp)
    app.register_blueprint(inspector.bp)
    app.register_blueprint(scrape.bp)
    inspector.protect_forms(app, settings)
    app.register_blueprint(calendar_feed.bp)
    runtime.events.emit("APP_START", turn_mode=settings.turn_mode, reply_mode=settings.reply_mode,
                        asr=settings.asr_engine, llm=settings.llm_engine, tts=settings.tts_engine,
                        base=settings.public_base_url, local=settings.local_mode)
    log_retiring_models(settings, runtime.events)
    return app


def wire_bookings(rt: Runtime) -> None:
    """What follows a booking: the caller's SMS and the owner's notice, the reminder (its
    timers swept), and the owner's calendar brought up to date every minute."""
    notices = BookingNotices(rt.settings, rt.store, rt.events, rt.notifier, rt.desk.live.flow)
    rt.reminders = Reminders(rt.settings, rt.desk, notices, rt.events)
    rt.desk.on_change(notices.changed)
    rt.desk.on_change(rt.reminders.changed)
    rt.reminders.recover()  # a timer lost with a killed process
    rt.reminders.start(rt.scheduler)
    if rt.desk.calendar is not None:
        rt.scheduler.add_job(rt.desk.sync_pending, "interval", seconds=CALENDAR_SYNC_SEC,
                             id=CALENDAR_SYNC_JOB, replace_existing=True, max_instances=1,
                             coalesce=True, misfire_grace_time=CALENDAR_SYNC_SEC)


def log_retiring_models(settings: Settings, events: EventLog) -> None:
    """One MODEL_RETIRED / MODEL_DEPRECATED warning per configured OpenAI model with an announced
    shutdown. Start-up goes on either way: a retired model's calls get the engines' fallbacks."""
    try:
        notes = model_notes(settings, date.today())
    except (ImportError, LookupError, OSError, SyntaxError) as exc:  # the SDK's source changed
        events.emit("MODEL_LIST_ERR", None, logging.WARNING, err=str(exc))
        return
    for note in notes:
        events.emit(note.event, None, logging.WARNING, **note.detail())
