"""One emulated call: fetch TwiML, run its verbs in call time, obey REST updates and hang-ups."""

from __future__ import annotations

import secrets
import threading
import xml.etree.ElementTree as ET
from typing import Any

from .. import audio
from .call import TICK, Account, Ended, LineState, OnTick, Replace
from .clock import CallClock, Mic, Tape
from .result import ERROR_TEXT, CallResult
from .script import Caller, CallerScript
from .verbs import VERBS
from .webclient import WebClient


class CallRun:
    """Runs one call to its end; other threads talk to it only through update() and hangup()."""

    def __init__(self, account: Account, script: CallerScript, speed: float, faults: dict):
        self.account, self.script, self.faults = account, script, faults
        self.call_sid = "CA" + secrets.token_hex(16)
        self.clock, self.tape, self.mic, self.line = CallClock(speed), Tape(), Mic(), LineState()
        self.line.pause_ticks = max(1, round(script.reply_pause / TICK))
        self.result = CallResult(self.call_sid)
        self.ended, self.interrupt = threading.Event(), threading.Event()
        self.lock = threading.Lock()
        self.pending: tuple[str, str, str] | None = None
        self.status = "ringing"
        self.next_tick = 0.0
        self.tick_at = 0.0  # call time of the frame being sent
        self.doc_url = ""
        self.forks: list[Any] = []
        self.caller: Caller | None = None
        self.recordings: dict[str, bytes] = {}  # what <Record> kept, served by the carrier
        self.dropped: set[str] = set()  # sentences begun while nothing listened: lost whole
        self.web = WebClient(self)

    # ---- records -------------------------------------------------------------------------
    def log(self, who: str, text: str) -> None:
        self.result.timeline.append({"t": round(self.clock.now(), 3), "who": who, "text": text})

    def error(self, code: int, message: str, url: str = "") -> None:
        """An error or warning Twilio would show: in the result, and as a Monitor alert about
        `url` (default: the TwiML document running)."""
        self.result.errors.append({"t": round(self.clock.now(), 3), "code": code,
                                   "message": message})
        self.log("carrier", f"ERROR {code} {ERROR_TEXT.get(code, '')}: {message}")
        if self.account.alerts is not None:
            self.account.alerts.add(code, message, self.call_sid, url or self.doc_url)

    def params(self, **extra: str) -> dict[str, str]:
        """The standard parameters of every webhook Twilio sends about this call."""
        params = {"AccountSid": self.account.account_sid, "ApiVersion": "2010-04-01",
                  "CallSid": self.call_sid, "CallStatus": self.status, "Direction": "inbound",
                  "From": self.script.from_number, "To": self.script.to_number,
                  "Caller": self.script.from_number, "Called": self.script.to_number}
        params.update(extra)
        return params

    # ---- control from other threads ------------------------------------------------------
    def update(self, twiml: str | None = None, url: str | None = None,
               method: str = "POST") -> None:
        """A REST update: replace the running TwiML at once."""
        with self.lock:
            self.pending = ("twiml", twiml, "") if twiml else ("url", url or "", method)
        self.interrupt.set()

    def hangup(self, by: str) -> None:
        if not self.ended.is_set():
            self.log(by, "hangs up")
            self.mic.clear()
            self.ended.set()
            self.interrupt.set()

    def check(self) -> None:
        """Raise Ended or Replace when the call was hung up or updated."""
        if self.ended.is_set():
            raise Ended()
        with self.lock:
            pending, self.pending = self.pending, None
            self.interrupt.clear()
        if pending:
            kind, value, method = pending
            if kind == "twiml":
                self.log("carrier", "REST update: new TwiML replaces the call's TwiML")
                raise Replace(value, self.doc_url)
            self.log("carrier", f"REST update: fetch {value}")
            raise Replace(self.web.twiml(value, method), value)

    # ---- time ----------------------------------------------------------------------------
    def tick_for(self, seconds: float | None, on_tick: OnTick | None = None) -> None:
        """Let call time pass in 20 ms ticks, feeding the caller's audio to whoever listens."""
        if self.next_tick < self.clock.now() - 0.1:
            self.next_tick = self.clock.now()
        ticks = None if seconds is None else max(1, round(seconds / TICK))
        done = 0
        while ticks is None or done < ticks:
            self.check()
            self.clock.sleep_until(self.next_tick, self.interrupt)
            self.check()
            late_ms = (self.clock.now() - self.next_tick) * 1000 / self.clock.speed
            self.result.max_tick_late_ms = max(self.result.max_tick_late_ms, round(late_ms, 1))
            frame, text, key = self.mic.read()
            self.tick_at = self.next_tick
            if text and on_tick is None and text not in self.dropped and not any(
                    fork.running for fork in self.forks):
                self.dropped.add(text)
                self.log("carrier", f'nothing listens (no <Gather>, <Record> or stream): the '
                                    f'caller\'s "{text}" is lost, as on Twilio')
            if self.caller is not None:  # the caller acts on what it heard; speaks from next tick
                self.caller.advance(self.next_tick)
                self.check()
            self.tape.put("caller", self.next_tick, audio.ulaw_to_pcm16(frame))
            for fork in self.forks:
                fork.send_media(frame)
            self.next_tick += TICK
            done += 1
            if on_tick and on_tick(frame, text, key):
                return

    def play_to_caller(self, pcm: bytes, reply: bool = True, until: OnTick | None = None,
                       **info: Any) -> bool:
        """The line speaks (Play, Say, beep): the caller hears it for its whole duration, or
        until `until` says the caller's input stops it (a <Gather>'s barge-in): then True."""
        duration = audio.duration_sec(pcm)
        began = self.clock.now()
        heard = {"t": round(began, 3), "duration": round(duration, 3), **info}
        self.result.heard.append(heard)
        self.line.speaking = True
        if reply:
            self.line.replies += 1
        state = {"stopped": False, "whole": False}

        def listen(frame: bytes, text: str | None, key: str | None) -> bool:
            state["stopped"] = bool(until and until(frame, text, key))
            return state["stopped"]
        try:
            self.tick_for(duration, listen if until else None)
            state["whole"] = not state["stopped"]
        finally:
            self.line.speaking = False
            played = pcm
            if not state["whole"]:  # stopped by the caller, a hang-up or a REST update
                played = pcm[:max(0, int((self.tick_at + TICK - began) * audio.RATE)) * 2]
                heard["duration"] = round(audio.duration_sec(played), 3)
                heard["stopped"] = state["stopped"]
            self.tape.put("line", began, played)
        return state["stopped"]

    def far_end(self, number: str) -> tuple[str, float]:
        """A <Dial>'s far end: (outcome, seconds it talks if it answers); the fault wins."""
        fault = self.faults.get("dial")
        if fault:
            return ("busy" if fault is True else str(fault)), self.script.dial_talk
        return self.script.dial_outcome(number), self.script.dial_talk

    # ---- the call ------------------------------------------------------------------------
    def run(self) -> CallResult:
        self.log("carrier", f"call from {self.script.from_number} ({self.script.name})")
        url = self.account.server_url + "/webhook/incoming_call"
        caller = Caller(self.script, self)
        limit = threading.Timer(self.clock.real(self.script.max_duration),
                                lambda: self.hangup("carrier (max duration)"))
        limit.daemon = True
        limit.start()
        try:
            doc = self.web.twiml(url, "POST")
            self.status = "in-progress"
            self.caller = caller
            while doc is not None:
                try:
                    self.execute(doc)
                    self.log("line", "TwiML ended: call hangs up")
                    doc = None
                except Replace as replace:
                    doc, self.doc_url = replace.doc, replace.url or self.doc_url
        except Ended:
            pass
        finally:
            limit.cancel()
            self.finish()
        return self.result

    def finish(self) -> None:
        self.ended.set()
        self.line.listening = False
        for fork in self.forks:
            fork.close()
        self.status = self.result.status = "completed"
        self.result.duration = round(self.clock.now(), 3)
        if self.account.status_callback:
            self.web.post(self.account.status_callback,
                          self.params(CallDuration=str(int(self.result.duration))))
        self.result.wav = self.tape.stereo_wav()

    def execute(self, doc: str) -> None:
        """Run a TwiML document's verbs in order; Replace or Ended leave it early."""
        try:
            root = ET.fromstring(doc)
        except ET.ParseError as exc:
            self.error(12100, f"TwiML does not parse: {exc}")
            raise Ended() from None
        if root.tag != "Response":
            self.error(12100, f"root element is <{root.tag}>, not <Response>")
            raise Ended()
        for element in root:
            handler = VERBS.get(element.tag)
            if handler is None:
                self.log("carrier", f"warning 12200: unknown verb <{element.tag}> skipped")
                continue
            handler(self, element)
            self.check()
