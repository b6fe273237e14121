"""The line's figures for Prometheus (`/metrics`): counted from the event log, a turn's times
by reply mode, the event loop's lag, the pools' queues; summed over gunicorn's workers."""

from __future__ import annotations

import logging
import os
import re
import shutil
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from . import threads

log = logging.getLogger("ivr")
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # the workers' files (scripts/start.sh sets it up)
DIR_NAME = "metrics"  # in VAR_DIR
LABEL_VALUE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,39}")  # never a caller's words, never Hebrew
EVENT_KIND = re.compile(r"[A-Z][A-Z0-9_]{0,59}")
OTHER = "other"
STAGES = ("asr", "llm_first", "first_chunk_audio")  # the TURN event's `<stage>_ms`
FIRST_AUDIO_BUCKETS = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 4.0, 5.0, 7.5,
                       10.0, 15.0)
STAGE_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 12.0)
LAG_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
SAMPLE_SEC = 1.0  # how often a worker writes its pools' queues (the one scraped: at once too)


def label(value: Any) -> str:
    """A label value: a short lower-case ASCII word as the code writes it, else `other`."""
    text = str(value or "").strip().lower()
    return text if LABEL_VALUE.fullmatch(text) else OTHER


class Figures:
    """The metric families, made once per process (prometheus_client is imported here, on
    first use: in gunicorn's master, which imports the worker class, it must not be imported
    before the master has set PROMETHEUS_MULTIPROC_DIR)."""

    def __init__(self):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
        r = self.registry = CollectorRegistry()
        self.events = Counter("ivr_events", "events logged, by kind (one KIND line each)",
                              ["kind"], registry=r)
        self.calls = Counter("ivr_calls_ended", "calls ended, by outcome (the line's, else "
                             "Twilio's final status)", ["outcome"], registry=r)
        self.turns = Counter("ivr_turns", "turns answered, by reply mode", ["mode"], registry=r)
        self.first_audio = Histogram(
            "ivr_first_audio_seconds", "from the end of the caller's speech to the reply's "
            "first audio out, by reply mode", ["mode"], buckets=FIRST_AUDIO_BUCKETS, registry=r)
        self.stage = Histogram(
            "ivr_turn_stage_seconds", "from the end of the caller's speech to each stage "
            "(asr, llm_first, first_chunk_audio), by reply mode", ["mode", "stage"],
            buckets=STAGE_BUCKETS, registry=r)
        self.fallbacks = Counter("ivr_fallbacks", "fallback sounds and paths, by kind",
                                 ["kind"], registry=r)
        self.redirects = Counter("ivr_watchdog_redirects", "calls the watchdog moved to "
                                 "<Record>, by check and result", ["check", "result"],
                                 registry=r)
        self.barge_ins = Counter("ivr_barge_ins", "the caller interrupted the line, over what "
                                 "(play: the fork over <Play>; stream: the socket) and by what",
                                 ["over", "by"], registry=r)
        self.backchannels = Counter("ivr_backchannels", "voice over the line's reply taken "
                                    "for a backchannel (a short yes or uh-huh): it went on",
                                    ["over"], registry=r)
        self.early_asr = Counter("ivr_early_transcriptions", "transcriptions begun in the "
                                 "silence before the turn was sure to end (EARLY_ASR_SEC): used "
                                 "by the turn, or dropped (the caller went on)", ["result"],
                                 registry=r)
        self.drafts = Counter("ivr_drafts", "replies begun before the caller's turn ended "
                              "(DRAFT_REPLY), by result: used, or dropped (the caller went on, "
                              "other words, the history moved, the call ended)", ["result"],
                              registry=r)
        self.dropped = Counter("ivr_utterances_dropped", "voice not taken as an utterance, by "
                               "reason", ["reason"], registry=r)
        self.notifications = Counter("ivr_notifications", "the owner's notifications, by "
                                     "channel and result (sent, retry, failed)",
                                     ["channel", "result"], registry=r)
        self.loop_lag = Histogram("ivr_event_loop_lag_seconds", "how late the event loop ran a "
                                  "20 ms tick", buckets=LAG_BUCKETS, registry=r)
        self.queued = Gauge("ivr_pool_queued", "jobs waiting for a thread, by pool",
                            ["pool"], multiprocess_mode="livesum", registry=r)


FIGURES: list[Figures] = []
FIGURES_LOCK = threading.Lock()


def figures() -> Figures:
    """This process's figures (two threads asking first get the same ones)."""
    if not FIGURES:
        with FIGURES_LOCK:
            if not FIGURES:
                FIGURES.append(Figures())
    return FIGURES[0]


# ---- fed by the event log -------------------------------------------------------------------
def _turn(f: Figures, d: Mapping[str, Any]) -> None:
    mode = label(d.get("mode"))
    f.turns.labels(mode).inc()
    if is_number(d.get("first_audio_ms")):
        f.first_audio.labels(mode).observe(d["first_audio_ms"] / 1000)
    for stage in STAGES:
        if is_number(d.get(f"{stage}_ms")):
            f.stage.labels(mode, stage).observe(d[f"{stage}_ms"] / 1000)
    if d.get("fallback"):
        f.fallbacks.labels(label(d["fallback"])).inc()


def _fallback(kind: str) -> Callable[[Figures, Mapping[str, Any]], None]:
    return lambda f, d: f.fallbacks.labels(kind).inc()


def _redirect(result: str) -> Callable[[Figures, Mapping[str, Any]], None]:
    return lambda f, d: f.redirects.labels(label(d.get("check")), result).inc()


def _notification(result: str) -> Callable[[Figures, Mapping[str, Any]], None]:
    return lambda f, d: f.notifications.labels(label(d.get("channel")), result).inc()


def _call_status(f: Figures, d: Mapping[str, Any]) -> None:
    if "outcome" in d:  # only the first status that ends the call carries it
        f.calls.labels(label(d["outcome"])).inc()


ON_EVENT: dict[str, Callable[[Figures, Mapping[str, Any]], None]] = {
    "TURN": _turn,
    "CALL_STATUS": _call_status,
    "SILENT_TURN": _fallback("silence"),  # nothing heard: the re-prompt or the goodbye
    "REPLY_LATE": _fallback("reply-late"),  # a chunk not ready in time: the fallback phrase
    "REPLY_LOST": _fallback("reply-lost"),  # no instance knows the reply
    "STREAM_FALLBACK": _fallback("stream-to-record"),  # a stream's end answered with <Record>
    "WATCHDOG_STALLED_TURN": _fallback("stalled-turn"),
    "PING_PONG_FAIL": _fallback("ping-pong-failed"),  # calls.update failed: action delivery
    "WATCHDOG_REDIRECT_OK": _redirect("ok"),
    "WATCHDOG_REDIRECT_FAIL": _redirect("fail"),
    "BARGE_IN": lambda f, d: f.barge_ins.labels(label(d.get("over") or "stream"),
                                                label(d.get("by"))).inc(),
    "BACKCHANNEL": lambda f, d: f.backchannels.labels(label(d.get("over") or "stream")).inc(),
    "EARLY_ASR": lambda f, d: f.early_asr.labels(label(d.get("result"))).inc(),
    "DRAFT": lambda f, d: f.drafts.labels(label(d.get("result"))).inc(),
    "UTTERANCE_DROPPED": lambda f, d: f.dropped.labels(label(d.get("reason"))).inc(),
    "NOTIFY_SENT": _notification("sent"),
    "NOTIFY_RETRY": _notification("retry"),
    "NOTIFY_FAILED": _notification("failed"),
}


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0


def event(kind: str, detail: Mapping[str, Any]) -> None:
    """Count one event of the event log into its families; never raises."""
    try:
        f = figures()
        f.events.labels(kind if EVENT_KIND.fullmatch(kind) else "OTHER").inc()
        count = ON_EVENT.get(kind)
        if count is not None:
            count(f, detail)
    except Exception as exc:  # noqa: BLE001 - a figure is never worth a call
        log.warning("METRICS_ERR kind=%s err=%r", kind, exc)


# ---- observed directly ----------------------------------------------------------------------
def loop_lag(seconds: float) -> None:
    """A tick of the event loop's lag probe ran `seconds` late."""
    figures().loop_lag.observe(max(0.0, seconds))


def sample() -> None:
    """Write this process's pools' queues (a worker every SAMPLE_SEC, and when scraped)."""
    f = figures()
    for pool, waiting in threads.queued().items():
        f.queued.labels(pool).set(waiting)


def exposition() -> tuple[bytes, str]:
    """Every family in Prometheus's text format, summed over the workers' files when the
    line runs under scripts/start.sh (PROMETHEUS_MULTIPROC_DIR), else this process's."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector
    registry = figures().registry
    sample()
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=path)
    return generate_latest(registry), CONTENT_TYPE_LATEST


# ---- gunicorn's master ----------------------------------------------------------------------
def prepare_dir(var_dir: str) -> str:
    """The workers' files: VAR_DIR/metrics, emptied (a new master counts from zero)."""
    path = Path(var_dir).absolute() / DIR_NAME
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


def process_dead(pid: int) -> None:
    """A worker exited: its live gauges (its queues) go; its counts stay in the sums."""
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        from prometheus_client import multiprocess
        multiprocess.mark_process_dead(pid, path)
