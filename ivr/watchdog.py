"""Durable checks keyed by CallSid that move a stuck call to <Record>; each acts at most once.

A check is a row of the checks table (ivr/due_checks.py), so it outlives the process that armed
it: every process sweeps the due rows from one APScheduler interval job, and whichever claims a
row runs it (another, once the lease expires, if the claimer died). Every check decides from the
store (not from memory), and acts only if it wins a claim on the call's row, so a second run, two
workers or a check racing a webhook can never act twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from apscheduler.schedulers.base import BaseScheduler

from . import threads, twiml
from .calls import Calls
from .config import Settings
from .delivery import Delivery
from .due_checks import LEASE_SEC, Check, DueChecks
from .eventlog import EventLog
from .tts_cache import FALLBACK

log = logging.getLogger("ivr")
STALL_MARGIN_SEC = 2.0
ENDED_KEPT = 10000  # ended calls remembered, so a late turn schedules nothing for them
RECOVER_WITHIN_SEC = 3600.0  # a call untouched for an hour is not live, whatever its row says
SWEEP_SEC = 0.25  # how often each process claims the due checks: the bound on their lateness
SWEEP_JOB = "watchdog-sweep"
MAX_ATTEMPTS = 3  # a check that failed this often (an exception, a dead claimer) is dropped
FIRED_KEPT = 1000  # (check id, ms late) of the checks this process ran, newest last
SWEEP_ERROR_EVERY_SEC = 30.0
KINDS = ("start", "media", "error", "stall")  # its checks' kinds (the table has others' too)


class SkippedSweeps(logging.Filter):
    """APScheduler warns when an interval job is due while its previous run still goes on; for
    the sweep that is by design (a slow database: the next sweep catches up), not news."""

    def filter(self, record: logging.LogRecord) -> bool:
        job = record.args[0] if isinstance(record.args, tuple) and record.args else None
        return not (getattr(job, "id", None) == SWEEP_JOB and "skipped" in str(record.msg))


class Watchdog:
    """Arms and runs the stream-start, no-media and stalled-turn checks of each call."""

    def __init__(self, settings: Settings, scheduler: BaseScheduler, calls: Calls,
                 events: EventLog, delivery: Delivery, prompt_url: Callable[[str], str],
                 lease_sec: float = LEASE_SEC, sweep_sec: float = SWEEP_SEC):
        self.settings, self.scheduler, self.calls = settings, scheduler, calls
        self.events, self.delivery, self.prompt_url = events, delivery, prompt_url
        self.checks = DueChecks(calls.store, lease_sec, KINDS)
        self.sweep_sec = sweep_sec
        self.lock = threading.Lock()
        self.ended: OrderedDict[str, None] = OrderedDict()  # recently ended calls, bounded
        self.pool = threads.executor("watchdog")
        self.busy = 0  # claimed checks not yet finished
        self.fired: deque[tuple[str, int]] = deque(maxlen=FIRED_KEPT)
        self.firing = threading.local()  # the lateness of the check this thread runs
        self.sweep_error_at = 0.0
        self.closed = False
        self.runners: dict[str, Callable[..., object]] = {
            "start": self.check_stream_started, "media": self.check_media,
            "error": self.redirect_to_record, "stall": self.check_turn}

    def start(self) -> None:
        """Start the scheduler once per process (a second start is a no-op, not a second one)
        with the one job that sweeps the due checks."""
        scheduler_log = logging.getLogger("apscheduler.scheduler")
        if not any(isinstance(f, SkippedSweeps) for f in scheduler_log.filters):
            scheduler_log.addFilter(SkippedSweeps())
        self.scheduler.add_job(self.sweep, "interval", seconds=self.sweep_sec, id=SWEEP_JOB,
                               replace_existing=True, max_instances=1, coalesce=True,
                               misfire_grace_time=None)
        if not self.scheduler.running:
            self.scheduler.start()

    def close(self) -> None:
        """Stop running checks here; the ones claimed and not run go to another process once
        their lease expires."""
        with self.lock:
            self.closed = True
        self.pool.shutdown(wait=False, cancel_futures=True)

    def recover(self) -> int:
        """At a start (after a crash, a redeploy): the checks armed before are still in the
        database, due whoever runs them. A live streaming call with no check at all (its arming
        lost with a crash, or made by a version that kept checks in memory) gets its check now.
        Returns how many live streaming calls are watched."""
        armed = self.checks.call_sids()
        watched = rearmed = 0
        for call in self.calls.live(time.time() - RECOVER_WITHIN_SEC):
            if call["turn_mode"] != "stream" or not call["turn"]:
                continue
            watched += 1
            if call["call_sid"] in armed:
                continue
            if (call["stream_started_turn"] or 0) < call["turn"]:
                self.expect_stream(call["call_sid"], call["turn"])
            else:
                self.watch_media(call["call_sid"], call["turn"])
            rearmed += 1
        pending = len(self.checks.ids())
        if watched or pending:
            self.events.emit("WATCHDOG_RECOVERED", None, logging.WARNING, calls=watched,
                             pending=pending, rearmed=rearmed)
        return watched

    def _at(self, check_id: str, delay: float, kind: str, call_sid: str, turn: int,
            **detail: str) -> None:
        due_at = time.time() + max(0.0, delay)
        with self.lock:
            if call_sid in self.ended:
                return  # a turn that finished after the hang-up: nothing left to watch
            self.checks.arm(check_id, call_sid, kind, turn, due_at, **detail)

    def cancel(self, call_sid: str) -> int:
        """The call ended: delete its checks, and refuse any a late turn here would add (one
        armed elsewhere finds the call ended and does nothing)."""
        with self.lock:
            self.ended[call_sid] = None
            while len(self.ended) > ENDED_KEPT:
                self.ended.popitem(last=False)
        return self.checks.cancel(call_sid)

    def has_ended(self, call_sid: str) -> bool:
        """True for a call this process saw end (a late frame must not start a turn)."""
        return call_sid in self.ended

    def pending(self, call_sid: str | None = None) -> list[str]:
        """Ids of the checks waiting in the database (of one call, or all)."""
        return self.checks.ids(call_sid)

    # ---- running the due checks ----------------------------------------------------------
    def sweep(self) -> int:
        """The interval job: claim as many due checks as this process has room for, and run
        them on its pool. Returns how many it claimed."""
        now = time.time()
        with self.lock:
            room = 0 if self.closed else threads.size("watchdog") - self.busy
        try:
            claimed = self.checks.claim(now, room) if room > 0 and self.checks.waiting(now) else []
        except Exception as exc:  # noqa: BLE001 - the next sweep tries again
            if now - self.sweep_error_at > SWEEP_ERROR_EVERY_SEC:
                self.sweep_error_at = now
                log.error("WATCHDOG_SWEEP_ERR err=%r", exc)
            return 0
        with self.lock:
            self.busy += len(claimed)
        for check in claimed:
            self.pool.submit(self._run, check)
        return len(claimed)

    def _run(self, check: Check) -> None:
        late_ms = round((time.time() - check.due_at) * 1000)
        self.fired.append((check.id, late_ms))
        self.firing.late_ms = late_ms
        try:
            if check.attempts > MAX_ATTEMPTS:
                self.events.emit("WATCHDOG_CHECK_DROPPED", check.call_sid, logging.ERROR,
                                 check=check.id, attempts=check.attempts - 1)
            else:
                self.runners[check.kind](check.call_sid, check.turn, **check.detail)
            self.checks.done(check)
        except Exception as exc:  # noqa: BLE001 - its lease expires and it runs again
            self.events.emit("WATCHDOG_CHECK_ERR", check.call_sid, logging.ERROR,
                             check=check.id, attempt=check.attempts, err=repr(exc)[:200])
        finally:
            self.firing.late_ms = None
            with self.lock:
                self.busy -= 1

    def _lateness(self) -> dict[str, int]:
        """{"late_ms": …} when this thread runs a due check (for its events), else {}."""
        late_ms = getattr(self.firing, "late_ms", None)
        return {} if late_ms is None else {"late_ms": late_ms}

    # ---- arming --------------------------------------------------------------------------
    def expect_stream(self, call_sid: str, turn: int, after_sec: float = 0.0) -> None:
        """The stream of `turn` must start within after_sec + STREAM_START_TIMEOUT_SEC."""
        delay = after_sec + self.settings.stream_start_timeout_sec
        self._at(f"{call_sid}:start:{turn}", delay, "start", call_sid, turn)

    def watch_media(self, call_sid: str, turn: int) -> None:
        self._at(f"{call_sid}:media", self.settings.no_media_timeout_sec, "media", call_sid,
                 turn)

    def stream_failed(self, call_sid: str, turn: int, error: str, grace_sec: float) -> None:
        """A stream-error for the current turn: Record fallback unless Twilio's action beat us."""
        self._at(f"{call_sid}:error:{turn}", grace_sec, "error", call_sid, turn,
                 reason=f"stream error: {error[:80]}")

    def watch_turn(self, call_sid: str, turn: int) -> None:
        s = self.settings
        delay = s.asr_timeout_sec + s.llm_timeout_sec + s.tts_timeout_sec + STALL_MARGIN_SEC
        self._at(f"{call_sid}:stall:{turn}", delay, "stall", call_sid, turn)

    # ---- the checks ----------------------------------------------------------------------
    def check_stream_started(self, call_sid: str, turn: int) -> None:
        call = self.calls.get(call_sid)
        if not call or call["ended"] or (call["stream_started_turn"] or 0) >= turn:
            return
        self.redirect_to_record(call_sid, turn, f"no stream start for turn {turn}",
                                "start", unstarted=True)

    def _still_streaming(self, call_sid: str, turn: int) -> dict | None:
        """The call, if it is live, streaming, and still on `turn`; else None."""
        call = self.calls.get(call_sid)
        if not call or call["ended"] or call["turn"] != turn or call["turn_mode"] != "stream":
            return None
        return call

    def check_media(self, call_sid: str, turn: int) -> None:
        call = self._still_streaming(call_sid, turn)
        if call is None:
            return
        timeout = self.settings.no_media_timeout_sec
        last = call["last_media_at"] or 0
        quiet = time.time() - last
        if last and quiet < timeout:
            self._at(f"{call_sid}:media", timeout - quiet, "media", call_sid, turn)
            return
        self.redirect_to_record(call_sid, turn, f"no media for {timeout:g} s", "media")

    def check_turn(self, call_sid: str, turn: int) -> None:
        """A turn still thinking after all its stage timeouts: play the fallback phrase."""
        if self._still_streaming(call_sid, turn) is None:
            return
        if self.settings.reply_mode == "stream":
            return  # the socket itself speaks; the dialog's stage timeouts bound the turn
        if not self.calls.advance_turn(call_sid, turn):
            return
        s = self.settings
        url = self.prompt_url(FALLBACK)
        doc = twiml.stream_turn(s.public_base_url, s.signing_key, call_sid, turn + 1, url)
        self.events.emit("WATCHDOG_STALLED_TURN", call_sid, logging.WARNING, turn=turn,
                         **self._lateness())
        if self.delivery.update(call_sid, doc, "WATCHDOG_FALLBACK", url=url):
            self.expect_stream(call_sid, turn + 1, after_sec=3.0)

    def redirect_to_record(self, call_sid: str, turn: int, reason: str, check: str = "error",
                           unstarted: bool = False) -> bool:
        """Claim the call for the Record fallback and move it there with calls.update
        (`check`: which check found it stuck: start, media or error)."""
        if not self.calls.fall_back_to_record(call_sid, turn, reason, unstarted):
            return False
        doc = twiml.record_turn(self.settings.public_base_url, self.prompt_url(FALLBACK))
        return self.delivery.update(call_sid, doc, "WATCHDOG_REDIRECT", "OK", reason=reason,
                                    check=check, turn=turn, **self._lateness())
