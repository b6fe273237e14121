"""One turn of a call: ASR → dedup → reply → reply dedup → TTS, with timeouts; always a sound."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .calls import Calls
from .engines import Engines
from .engines.base import last_said
from .eventlog import EventLog
from .phrases import DEDUP_REPLY, LLM_FALLBACK, REPEAT_PROMPT
from .store import Store
from .tts_cache import TTSCache


@dataclass
class TurnOutcome:
    """What a turn produced: texts, the MP3 to play, why a fallback was used, stage timings."""

    turn: int
    user_text: str = ""
    reply_text: str = ""
    audio: Path | None = None
    fallback: str = ""
    skipped: bool = False
    ms: dict[str, int] = field(default_factory=dict)
    deadline: float | None = field(default=None, repr=False)  # monotonic; caps every stage

    @property
    def audio_name(self) -> str:
        return self.audio.name if self.audio else ""


class Dialog:
    """Runs turns; never raises into the call: every failure becomes a logged fallback sound."""

    def __init__(self, settings: Any, store: Store, events: EventLog, engines: Engines,
                 cache: TTSCache):
        self.s, self.store, self.events, self.engines, self.cache = (
            settings, store, events, engines, cache)
        self.calls = Calls(store)
        self.pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="engine")

    def _timed(self, stage: str, fn: Callable[[], Any], timeout: float,
               outcome: TurnOutcome) -> Any:
        if outcome.deadline is not None:
            timeout = max(0.1, min(timeout, outcome.deadline - time.monotonic()))
        started = time.perf_counter()
        try:
            return self.pool.submit(fn).result(timeout=timeout)
        except FutureTimeout:
            raise TimeoutError(f"{stage} took longer than {timeout:.3g} s") from None
        finally:
            outcome.ms[stage] = round((time.perf_counter() - started) * 1000)

    def run_turn(self, call_sid: str, turn: int, *, pcm: bytes | None = None,
                 text: str | None = None, source: str = "stream",
                 budget_sec: float | None = None) -> TurnOutcome:
        """One turn from the caller's audio (or text from Gather/DTMF) to the reply's MP3.

        `budget_sec` caps the stages together (a webhook must answer Twilio within 15 s).
        """
        started = time.perf_counter()
        outcome = TurnOutcome(turn=turn)
        if budget_sec is not None:
            outcome.deadline = time.monotonic() + budget_sec
        if text is None:
            text = self._transcribe(call_sid, pcm or b"", outcome, source)
        outcome.user_text = text.strip()
        history = self.calls.history(call_sid)
        if not outcome.user_text:
            outcome.reply_text, outcome.fallback = REPEAT_PROMPT, outcome.fallback or "no-text"
        elif self._repeated_user_text(history, outcome.user_text):
            self.events.emit("DEDUP", call_sid, kind="user", text=outcome.user_text)
            outcome.skipped = True
            return outcome
        else:
            outcome.reply_text = self._reply(call_sid, history, outcome)
        outcome.audio = self._speak(call_sid, outcome.reply_text, outcome)
        outcome.ms["total"] = round((time.perf_counter() - started) * 1000)
        self._record(call_sid, history, outcome, pcm, source)
        return outcome

    def speak_text(self, call_sid: str, turn: int, text: str) -> TurnOutcome:
        """A turn the line starts itself (the greeting): TTS only."""
        outcome = TurnOutcome(turn=turn, reply_text=text)
        outcome.audio = self._speak(call_sid, text, outcome)
        return outcome

    def _transcribe(self, call_sid: str, pcm: bytes, outcome: TurnOutcome, source: str) -> str:
        asr = self.engines.asr
        if asr is None:
            outcome.fallback = "no-asr-engine"
            return ""
        recognize = asr.recognize if source == "record" else asr.transcribe_detailed
        try:
            results = self._timed("asr", lambda: recognize(pcm), self.s.asr_timeout_sec,
                                  outcome)
        except Exception as exc:  # noqa: BLE001 - an engine failure must never silence the call
            self.events.emit("ASR_ERR", call_sid, logging.ERROR, err=repr(exc))
            outcome.fallback = "asr-error"
            return ""
        if isinstance(results, str):
            results = [("final", results)]
        for kind, heard in results:
            self.events.emit("HEBREW_SPEECH", call_sid, kind=kind, text=heard)
        text = " ".join(t for kind, t in results if kind == "final" and t).strip()
        self.events.emit("ASR_TEXT", call_sid, text=text, ms=outcome.ms["asr"])
        return text

    def _repeated_user_text(self, history: list[dict], text: str) -> bool:
        last = next((m for m in reversed(history) if m["role"] == "user"), None)
        return bool(last and last["text"] == text
                    and time.time() - last.get("at", 0) <= self.s.dedup_window_sec)

    def _reply(self, call_sid: str, history: list[dict], outcome: TurnOutcome) -> str:
        llm = self.engines.llm
        try:
            if llm is None:
                raise RuntimeError("no LLM engine configured")
            context = [{"role": m["role"], "text": m["text"]} for m in history]
            reply = self._timed("llm", lambda: llm.reply(context, outcome.user_text),
                                self.s.llm_timeout_sec, outcome) or ""
            reply = reply.strip()
            if not reply:
                raise RuntimeError("empty reply")
            self._keep_lead(call_sid, llm, context, outcome.user_text)
        except Exception as exc:  # noqa: BLE001
            self.events.emit("LLM_ERR", call_sid, logging.ERROR, err=repr(exc))
            outcome.fallback = "llm-error"
            reply = LLM_FALLBACK
        if last_said(history, "assistant") == reply:
            self.events.emit("DEDUP", call_sid, kind="reply", text=reply)
            reply = DEDUP_REPLY if reply != DEDUP_REPLY else LLM_FALLBACK
        return reply

    def _keep_lead(self, call_sid: str, llm, context: list[dict], text: str) -> None:
        lead = llm.lead(context, text)
        if lead:
            call = self.calls.get(call_sid) or {}
            self.store.add_lead(call_sid, caller=call.get("from_number", ""), **lead)
            self.events.emit("LEAD", call_sid, **lead)

    def _speak(self, call_sid: str, text: str, outcome: TurnOutcome) -> Path:
        tts = self.engines.tts
        try:
            if tts is None:
                raise RuntimeError("no TTS engine configured")
            return self._timed("tts", lambda: self.cache.synthesize(tts, text),
                               self.s.tts_timeout_sec, outcome)
        except Exception as exc:  # noqa: BLE001
            self.events.emit("TTS_ERR", call_sid, logging.ERROR, err=repr(exc))
            outcome.fallback = "tts-error"
            return self.cache.last_resort()

    def _record(self, call_sid: str, history: list[dict], outcome: TurnOutcome,
                pcm: bytes | None, source: str) -> None:
        now = time.time()
        if outcome.user_text:
            history.append({"role": "user", "text": outcome.user_text, "at": now})
        history.append({"role": "assistant", "text": outcome.reply_text, "at": now})
        self.calls.save_history(call_sid, history)
        self.store.add_turn(call_sid, turn=outcome.turn, source=source,
                            user_text=outcome.user_text, reply_text=outcome.reply_text,
                            audio_url=outcome.audio_name, fallback=outcome.fallback,
                            utterance_ms=round(len(pcm) / 16) if pcm else None,
                            asr_ms=outcome.ms.get("asr"), llm_ms=outcome.ms.get("llm"),
                            tts_ms=outcome.ms.get("tts"), total_ms=outcome.ms.get("total"))
        self.events.emit("TURN", call_sid, turn=outcome.turn, source=source,
                         user=outcome.user_text, reply=outcome.reply_text,
                         audio=outcome.audio_name, fallback=outcome.fallback, **{
                             f"{k}_ms": v for k, v in outcome.ms.items()})
