"""APScheduler jobs keyed by CallSid that move a stuck call to <Record>; each acts at most once.

Every job decides from the store (not from memory), and acts only if it wins a claim on the
call's row, so two jobs, two workers or a job racing a webhook can never act twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timedelta

from apscheduler.schedulers.base import BaseScheduler

from . import twiml
from .calls import Calls
from .config import Settings
from .delivery import Delivery
from .eventlog import EventLog
from .tts_cache import FALLBACK

log = logging.getLogger("ivr")
STALL_MARGIN_SEC = 2.0
ENDED_KEPT = 10000  # ended calls remembered, so a late turn schedules nothing for them
RECOVER_WITHIN_SEC = 3600.0  # a call untouched for an hour is not live, whatever its row says


class Watchdog:
    """Schedules and runs the stream-start, no-media and stalled-turn checks of each call."""

    def __init__(self, settings: Settings, scheduler: BaseScheduler, calls: Calls,
                 events: EventLog, delivery: Delivery, prompt_url: Callable[[str], str]):
        self.settings, self.scheduler, self.calls = settings, scheduler, calls
        self.events, self.delivery, self.prompt_url = events, delivery, prompt_url
        self.lock = threading.Lock()
        self.ended: OrderedDict[str, None] = OrderedDict()  # recently ended calls, bounded

    def start(self) -> None:
        """Start the scheduler once per process (a second start is a no-op, not a second one)."""
        if not self.scheduler.running:
            self.scheduler.start()

    def recover(self) -> int:
        """After a start or a restart (a crash, a redeploy): every live streaming call gets its
        checks back, decided from the store, so no call is left without a watchdog."""
        recovered = 0
        for call in self.calls.live(time.time() - RECOVER_WITHIN_SEC):
            if call["turn_mode"] != "stream" or not call["turn"]:
                continue
            if (call["stream_started_turn"] or 0) < call["turn"]:
                self.expect_stream(call["call_sid"], call["turn"])
            else:
                self.watch_media(call["call_sid"], call["turn"])
            recovered += 1
        if recovered:
            self.events.emit("WATCHDOG_RECOVERED", None, logging.WARNING, calls=recovered)
        return recovered

    def _at(self, job_id: str, delay: float, func, *args) -> None:
        run_date = datetime.now() + timedelta(seconds=max(0.0, delay))
        with self.lock:
            if job_id.split(":", 1)[0] in self.ended:
                return  # a turn that finished after the hang-up: nothing left to watch
            self.scheduler.add_job(func, "date", run_date=run_date, args=args, id=job_id,
                                   replace_existing=True, misfire_grace_time=60)

    def cancel(self, call_sid: str) -> int:
        """The call ended: remove its jobs, and refuse any a late turn would add."""
        removed = 0
        with self.lock:
            self.ended[call_sid] = None
            while len(self.ended) > ENDED_KEPT:
                self.ended.popitem(last=False)
            for job in self.scheduler.get_jobs():
                if job.id.startswith(call_sid + ":"):
                    job.remove()
                    removed += 1
        return removed

    def has_ended(self, call_sid: str) -> bool:
        """True for a call this process saw end (a late frame must not start a turn)."""
        return call_sid in self.ended

    # ---- scheduling ----------------------------------------------------------------------
    def expect_stream(self, call_sid: str, turn: int, after_sec: float = 0.0) -> None:
        """The stream of `turn` must start within after_sec + STREAM_START_TIMEOUT_SEC."""
        delay = after_sec + self.settings.stream_start_timeout_sec
        self._at(f"{call_sid}:start:{turn}", delay, self.check_stream_started, call_sid, turn)

    def watch_media(self, call_sid: str, turn: int) -> None:
        self._at(f"{call_sid}:media", self.settings.no_media_timeout_sec,
                 self.check_media, call_sid, turn)

    def stream_failed(self, call_sid: str, turn: int, error: str, grace_sec: float) -> None:
        """A stream-error for the current turn: Record fallback unless Twilio's action beat us."""
        self._at(f"{call_sid}:error:{turn}", grace_sec, self.redirect_to_record, call_sid, turn,
                 f"stream error: {error[:80]}")

    def watch_turn(self, call_sid: str, turn: int) -> None:
        s = self.settings
        delay = s.asr_timeout_sec + s.llm_timeout_sec + s.tts_timeout_sec + STALL_MARGIN_SEC
        self._at(f"{call_sid}:stall:{turn}", delay, self.check_turn, call_sid, turn)

    # ---- the checks ----------------------------------------------------------------------
    def check_stream_started(self, call_sid: str, turn: int) -> None:
        call = self.calls.get(call_sid)
        if not call or call["ended"] or (call["stream_started_turn"] or 0) >= turn:
            return
        self.redirect_to_record(call_sid, turn, f"no stream start for turn {turn}")

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
            self._at(f"{call_sid}:media", timeout - quiet, self.check_media, call_sid, turn)
            return
        self.redirect_to_record(call_sid, turn, f"no media for {timeout:g} s")

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
        self.events.emit("WATCHDOG_STALLED_TURN", call_sid, logging.WARNING, turn=turn)
        if self.delivery.update(call_sid, doc, "WATCHDOG_FALLBACK", url=url):
            self.expect_stream(call_sid, turn + 1, after_sec=3.0)

    def redirect_to_record(self, call_sid: str, turn: int, reason: str) -> bool:
        """Claim the call for the Record fallback and move it there with calls.update."""
        if not self.calls.fall_back_to_record(call_sid, turn, reason):
            return False
        doc = twiml.record_turn(self.settings.public_base_url, self.prompt_url(FALLBACK))
        return self.delivery.update(call_sid, doc, "WATCHDOG_REDIRECT", "OK", reason=reason,
                                    turn=turn)
