"""One turn of a call: ASR → dedup → the reply in tokens from the LLM, cut into chunks, each
synthesised as soon as it is complete (reply dedup, timeouts, fallbacks); always a sound."""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import threads
from .booking.conversation import Conversation
from .booking.desk import Desk
from .booking.tools import BookingTools
from .calls import Calls
from .chunking import SpeakableChunks
from .draft import END, Draft, DraftTools, Reading
from .engines import Engines
from .engines.base import (
    BOOKING_KEY,
    LLM,
    Action,
    LiveRecognition,
    TranscriptMismatch,
    booking_step,
    last_said,
)
from .eventlog import EventLog
from .facts.grounding import Allowed, ReplyCheck, tool_texts
from .owner import Owner
from .phrases import CHECK_BACK, DEDUP_REPLY, DONT_KNOW, LLM_FALLBACK, REPEAT_PROMPT
from .reply import LiveAudio, SpokenReply
from .store import Store
from .tts_cache import TTSCache

RECORD_WAIT_SEC = 30  # how long the turn's row waits for its first audio to go out


@dataclass
class TurnOutcome:
    """What a turn produced: the caller's text, the reply (chunks as they are ready), why a
    fallback was used, stage timings."""

    turn: int
    user_text: str = ""
    reply_text: str = ""
    fallback: str = ""
    skipped: bool = False
    reply: SpokenReply = field(default_factory=SpokenReply)
    ms: dict[str, int] = field(default_factory=dict)
    synthesis: list[Future] = field(default_factory=list, repr=False)
    tools: BookingTools | None = field(default=None, repr=False)  # the LLM's, this turn
    deadline: float | None = field(default=None, repr=False)  # monotonic; caps every stage
    on_stream: bool = False  # heard as frames on the call's stream (REPLY_MODE=stream)
    booking: dict | None = None  # the booking's next step, kept with the reply in the history

    def budgeted(self) -> bool:
        """The webhook's budget caps the stages until its answer went out, not after."""
        return self.deadline is not None and "first_audio" not in self.reply.marks

    @property
    def audio(self) -> Path | None:
        """The first chunk's MP3 (once it is ready)."""
        ready = self.reply.ready_from(0)
        return ready[0].audio if ready else None

    @property
    def audio_name(self) -> str:
        return self.audio.name if self.audio else ""


def same_words(a: str, b: str) -> bool:
    return a.split() == b.split()


def starts_like(text: str, written: str) -> bool:
    """`written` so far could still become `text` (word for word)."""
    return " ".join(text.split()).startswith(" ".join(written.split()))


class Dialog:
    """Runs turns; never raises into the call: every failure becomes a logged fallback sound."""

    def __init__(self, settings: Any, store: Store, events: EventLog, engines: Engines,
                 cache: TTSCache, owner: Owner | None = None,
                 on_lead: Callable[[str, dict], None] | None = None,
                 on_late_turn: Callable[[str], None] | None = None,
                 desk: Desk | None = None,
                 on_gap: Callable[[str, str, str], None] | None = None):
        self.s, self.store, self.events, self.engines, self.cache = (
            settings, store, events, engines, cache)
        self.desk = desk  # the appointments the LLM's booking tools reach
        self.owner = owner or Owner()
        self.on_lead = on_lead  # told of each message left (the owner's notifications)
        self.on_late_turn = on_late_turn  # a message's answer kept after the call ended
        self.on_gap = on_gap  # told of each question the line could not answer (call, words, why)
        self.calls = Calls(store)
        self.pool = threads.executor("engine")  # engine calls
        self.writers = threads.executor("reply")  # replies being written (they wait)
        self.history_lock = threading.Lock()
        self.booking = Conversation(desk) if desk is not None else None  # the scripted flow's
        self.drafts: dict[str, Draft] = {}  # each call's reply begun before its turn ended
        self.drafts_lock = threading.Lock()

    def _timed(self, stage: str, fn: Callable[[], Any], timeout: float,
               outcome: TurnOutcome) -> Any:
        if outcome.budgeted():
            timeout = max(0.1, min(timeout, outcome.deadline - time.monotonic()))
        started = time.perf_counter()
        try:
            return self.pool.submit(fn).result(timeout=timeout)
        except FutureTimeout:
            raise TimeoutError(f"{stage} took longer than {timeout:.3g} s") from None
        finally:
            outcome.ms[stage] = round((time.perf_counter() - started) * 1000)

    def start_turn(self, call_sid: str, turn: int, *, pcm: bytes | None = None,
                   text: str | None = None, live: LiveRecognition | None = None,
                   source: str = "stream", budget_sec: float | None = None,
                   speech_end: float | None = None) -> TurnOutcome:
        """Transcribe (here), then write and synthesise the reply in the background: the
        outcome's `reply` gets its chunks as they are ready. `live` is the recognizer that
        heard the utterance as it was spoken (it only has to finish); `budget_sec` caps the
        stages together (a webhook must answer Twilio within 15 s); `speech_end` (monotonic)
        is when the caller stopped."""
        outcome = TurnOutcome(turn=turn, reply=SpokenReply(speech_end),
                              on_stream=source == "stream" and self.s.reply_mode == "stream")
        if budget_sec is not None:
            outcome.deadline = time.monotonic() + budget_sec
        if text is None:
            text = self._transcribe(call_sid, pcm or b"", outcome, source, live)
        outcome.reply.mark("asr")
        outcome.user_text = text.strip()
        history = self.calls.history(call_sid)
        draft = self._take_draft(call_sid)
        if outcome.user_text and self._repeated_user_text(history, outcome.user_text):
            self.events.emit("DEDUP", call_sid, kind="user", text=outcome.user_text)
            self._drop(draft, "repeated")
            outcome.skipped = True
            outcome.fallback = "repeated"  # the caller said it again: not answered twice
            outcome.reply.close()
            self.writers.submit(self._record_line_turn, call_sid, outcome, source)
            return outcome
        self.writers.submit(self._write_reply, call_sid, history, outcome, pcm, source, draft)
        return outcome

    def run_turn(self, call_sid: str, turn: int, **how: Any) -> TurnOutcome:
        """start_turn, then wait until the whole reply is written, synthesised and recorded."""
        outcome = self.start_turn(call_sid, turn, **how)
        outcome.reply.unwatched()
        outcome.reply.recorded.wait(RECORD_WAIT_SEC + 60)
        return outcome

    def speak_text(self, call_sid: str, turn: int, text: str,
                   on_stream: bool = False) -> TurnOutcome:
        """A turn the line starts itself (the greeting, the owner not answering): TTS only."""
        outcome = TurnOutcome(turn=turn, reply_text=text, reply=SpokenReply(),
                              on_stream=on_stream)
        self._add_chunk(call_sid, outcome, text)
        outcome.reply.close()
        self.writers.submit(self._record_line_turn, call_sid, outcome, "line")
        return outcome

    def _record_line_turn(self, call_sid: str, outcome: TurnOutcome, source: str) -> None:
        """A turn without an answer written for it (the line speaking on its own, or the
        caller's words said again) joins the call's turns once its audio is ready."""
        try:
            self._wait_synthesis(outcome)
            self.store.add_turn(call_sid, turn=outcome.turn, source=source,
                                user_text=outcome.user_text, reply_text=outcome.reply_text,
                                audio_url=" ".join(outcome.reply.names),
                                fallback=outcome.fallback, tts_ms=outcome.ms.get("tts"))
        except Exception as exc:  # noqa: BLE001 - logged; the call itself goes on
            self.events.emit("TURN_ERR", call_sid, logging.ERROR, err=repr(exc), stage="record")
        finally:
            outcome.reply.recorded.set()

    def _transcribe(self, call_sid: str, pcm: bytes, outcome: TurnOutcome, source: str,
                    live: LiveRecognition | None = None) -> str:
        asr = self.engines.asr
        if asr is None:
            outcome.fallback = "no-asr-engine"
            return ""
        recognize = asr.recognize if source == "record" else asr.transcribe_detailed
        timeout = self.s.asr_timeout_sec
        if live is not None:  # it bounds its own wait (and cancels the recognizer after it)
            recognize = lambda _pcm: live.finish(self.s.asr_timeout_sec)  # noqa: E731
            timeout += 1
        try:
            results = self._timed("asr", lambda: recognize(pcm), timeout, outcome)
        except Exception as exc:  # noqa: BLE001 - an engine failure must never silence the call
            self.events.emit("ASR_ERR", call_sid, logging.ERROR, err=repr(exc))
            outcome.fallback = "asr-error"
            return ""
        if isinstance(results, str):
            results = [("final", results)]
        for kind, said in results:
            self.events.emit("HEBREW_SPEECH", call_sid, kind=kind, text=said)
        text = " ".join(t for kind, t in results if kind == "final" and t).strip()
        self.events.emit("ASR_TEXT", call_sid, text=text, ms=outcome.ms.get("asr", 0))
        return text

    def _repeated_user_text(self, history: list[dict], text: str) -> bool:
        """The caller's last words heard again (a second transcript of one utterance); not a
        key pressed again to answer the booking's next question ("1" picks, "1" confirms)."""
        if text.isdigit() and booking_step(history):
            return False
        last = next((m for m in reversed(history) if m["role"] == "user"), None)
        return bool(last and last["text"] == text
                    and time.time() - last.get("at", 0) <= self.s.dedup_window_sec)

    # ---- the reply, written and synthesised chunk by chunk (on the engine pool) -------------
    def _write_reply(self, call_sid: str, history: list[dict], outcome: TurnOutcome,
                     pcm: bytes | None, source: str, draft: Draft | None = None) -> None:
        started = time.perf_counter()
        try:
            if not outcome.user_text:
                outcome.fallback = outcome.fallback or "no-text"
                outcome.booking = booking_step(history)  # its question still waits
                self._add_chunk(call_sid, outcome, REPEAT_PROMPT)
            else:
                self._stream_reply(call_sid, history, outcome, draft)
        except Exception as exc:  # noqa: BLE001 - whatever happens, the caller hears something
            self.events.emit("TURN_ERR", call_sid, logging.ERROR, err=repr(exc))
            outcome.fallback = outcome.fallback or "turn-crash"
            self._add_chunk(call_sid, outcome, LLM_FALLBACK)
        finally:
            self._drop(draft, "turn-failed" if outcome.user_text else "other-words")
            outcome.reply.all_added()
            self._save_history(call_sid, outcome)  # before the reply's end can be played
            outcome.reply.close()
        self._late_for_the_call(call_sid, history, outcome)
        self._wait_synthesis(outcome)
        outcome.ms["total"] = round((time.perf_counter() - started) * 1000)
        outcome.reply.played.wait(RECORD_WAIT_SEC)  # the row carries first_audio_ms
        try:
            self._record(call_sid, outcome, pcm, source)
        except Exception as exc:  # noqa: BLE001 - logged; the call itself goes on
            self.events.emit("TURN_ERR", call_sid, logging.ERROR, err=repr(exc), stage="record")
        finally:
            outcome.reply.recorded.set()

    def _late_for_the_call(self, call_sid: str, history: list[dict],
                           outcome: TurnOutcome) -> None:
        """The caller answered a question of a message and hung up while the answer was being
        heard: its end came first and found the message without it, so it is told again."""
        llm = self.engines.llm
        if self.on_late_turn is None or llm is None or not outcome.user_text:
            return
        said = [{"role": m["role"], "text": m["text"]} for m in history[-1:]]
        try:
            if llm.partial_lead(said + [{"role": "user", "text": outcome.user_text}]) \
                    and (self.calls.get(call_sid) or {}).get("ended"):
                self.on_late_turn(call_sid)
        except Exception as exc:  # noqa: BLE001 - logged; the call itself goes on
            self.events.emit("TURN_ERR", call_sid, logging.ERROR, err=repr(exc), stage="late")

    def _stream_reply(self, call_sid: str, history: list[dict], outcome: TurnOutcome,
                      draft: Draft | None = None) -> None:
        """LLM deltas → speakable chunks → TTS. The reply dedup holds chunks back while the
        reply could still turn out the same as the last one; a streaming LLM's first chunk
        goes at once all the same (replies often open alike), so a repeated reply is heard as
        its opener, then DEDUP_REPLY. A draft begun on the same words and history is the
        reply's LLM (not asked again)."""
        reply, llm = outcome.reply, self.engines.llm
        context = llm_context(history)
        last_reply = last_said(history, "assistant")
        chunker, held, written, released = SpeakableChunks(), [], "", 0
        instead = ""  # what to say if the LLM asked for an action and wrote nothing
        check = None  # each chunk's figures, for an LLM that writes freely
        try:
            if llm is None:
                raise RuntimeError("no LLM engine configured")
            streams = type(llm).reply_tokens is not LLM.reply_tokens
            facts = llm.grounding()  # None: the engine's words are the owner's own
            for delta in self._llm_deltas(call_sid, llm, context, outcome,
                                          self._used(draft, history, outcome)):
                if check is None and facts is not None:  # once the turn's tools are known
                    check = ReplyCheck(self._allowed(call_sid, facts, history, outcome),
                                       outcome.tools.kept if outcome.tools else None)
                if reply.cancelled.is_set() or reply.done:
                    return
                if isinstance(delta, Action) and delta.kind == "unanswered":
                    self.note_gap(call_sid, outcome.user_text, delta.why)
                    instead = instead or DONT_KNOW
                    continue
                if isinstance(delta, Action) and delta.kind == "book":
                    instead = self._book(call_sid, history, outcome)
                    continue
                if isinstance(delta, Action):
                    instead = self._act(call_sid, reply, delta)
                    if reply.ending == "transfer":
                        break  # transferring: what the engine goes on to say is not said
                    continue
                reply.mark("llm_first")
                written += delta
                held += chunker.feed(delta)
                if not held:
                    continue
                repeating = bool(last_reply) and starts_like(last_reply, written)
                go = held if not repeating else held[:1] if streams and not released else []
                for text in go:
                    self._add_checked(call_sid, outcome, text, check)
                released, held = released + len(go), held[len(go):]
            checked = (self._checked(call_sid, outcome, c, check) for c in held + chunker.finish())
            held = [c for c in checked if c]
            reply.mark("llm_done")
            outcome.ms["llm"] = reply.ms()["llm_done"] - reply.ms().get("asr", 0)
            if not written.strip() and instead:  # an action alone: its own sentence
                written, held = instead, [instead]
            if not written.strip():
                raise RuntimeError("empty reply")
            self._keep_lead(call_sid, llm, context, outcome.user_text)
        except Exception as exc:  # noqa: BLE001
            self.events.emit("LLM_ERR", call_sid, logging.ERROR, err=repr(exc),
                             after_chunks=len(reply.chunks))
            outcome.fallback = "llm-error"
            held = [LLM_FALLBACK]
            self.note_gap(call_sid, outcome.user_text, "the line failed to answer")
            if reply.ending == "transfer":
                self.calls.give_back_transfer(call_sid)
            reply.ending = ""  # the caller did not hear what the action was for
        if last_reply and same_words(written, last_reply) and not outcome.fallback \
                and not reply.ending and outcome.booking is None:
            self.events.emit("DEDUP", call_sid, kind="reply", text=written.strip())
            held = [DEDUP_REPLY if not same_words(last_reply, DEDUP_REPLY) else LLM_FALLBACK]
        for text in held:
            self._add_chunk(call_sid, outcome, text)

    def _allowed(self, call_sid: str, facts, history: list[dict],
                 outcome: TurnOutcome) -> Allowed:
        """The figures this turn's reply may name: the facts', the caller's in this call (and
        their number), the owner's hours, the call's tool results (this turn's join as they
        come: ReplyCheck)."""
        caller = [m["text"] for m in history if m["role"] == "user"] + [outcome.user_text]
        try:
            hours = [self.owner.hours.spoken()]
        except Exception:  # noqa: BLE001 - a flow without readable hours: none to allow
            hours = []
        earlier = tool_texts(t for m in history for t in (m.get("tools") or []))
        return Allowed.of(facts, caller, hours + earlier,
                          (self.calls.get(call_sid) or {}).get("from_number") or "")

    def _checked(self, call_sid: str, outcome: TurnOutcome, text: str,
                 check: ReplyCheck | None) -> str | None:
        """The chunk as it may be spoken: itself when each figure it names is allowed (or no
        check); else CHECK_BACK the first time in this reply (FIGURE_UNSUPPORTED logged, the
        question noted as a gap), then nothing."""
        unsupported = check.unsupported(text) if check is not None else []
        if not unsupported:
            return text
        self.events.emit("FIGURE_UNSUPPORTED", call_sid, logging.WARNING, chunk=text,
                         figure=",".join(unsupported))
        if check.replaced:
            return None
        check.replaced = True
        self.note_gap(call_sid, outcome.user_text, "unsupported figure")
        return CHECK_BACK

    def _add_checked(self, call_sid: str, outcome: TurnOutcome, text: str,
                     check: ReplyCheck | None) -> None:
        checked = self._checked(call_sid, outcome, text, check)
        if checked:
            self._add_chunk(call_sid, outcome, checked)

    def _act(self, call_sid: str, reply: SpokenReply, action: Action) -> str:
        """The LLM asks for an action: note what the line does after the reply (a transfer
        only when the owner is reachable now and the call had fewer than OWNER_MAX_TRANSFERS;
        otherwise a message is taken). Returns what the line says for it if the LLM writes
        nothing itself."""
        if action.kind == "hangup":
            reply.ending = "hangup"
            return self.owner.goodbye
        why = ("no OWNER_PHONE" if not self.owner.phone else "out of business hours"
               if not self.owner.reachable() else "")
        if not why and self.calls.claim_transfer(call_sid, self.s.owner_max_transfers):
            reply.ending = "transfer"
            return self.owner.transferring
        self.events.emit("TRANSFER_DECLINED", call_sid, why=why or "OWNER_MAX_TRANSFERS reached")
        return self.owner.take_message

    def _book(self, call_sid: str, history: list[dict], outcome: TurnOutcome) -> str:
        """The scripted flow's booking turn (ivr/booking/conversation.py): what the line says,
        and its next step noted on the outcome, kept with the reply in the history."""
        if self.booking is None:
            return self.owner.take_message
        caller = (self.calls.get(call_sid) or {}).get("from_number", "")
        said = self.booking.turn(history, outcome.user_text, caller, call_sid)
        outcome.booking = said.state
        return said.text

    def last_words(self, call_sid: str, turn: int, pcm: bytes) -> str:
        """What the caller was still saying when the stream ended (a name said as they hung
        up): transcribed into the history and the call's turns, with no reply."""
        outcome = TurnOutcome(turn=turn, reply=SpokenReply())
        text = self._transcribe(call_sid, pcm, outcome, "stream").strip()
        if text:
            said = {"role": "user", "text": text, "at": time.time()}
            self.calls.change_history(call_sid, lambda history: history + [said])
            self.store.add_turn(call_sid, turn=turn, source="stream", user_text=text,
                                reply_text="", fallback="stream-ended",
                                utterance_ms=round(len(pcm) / 16),
                                asr_ms=outcome.ms.get("asr"))
        self.events.emit("LAST_WORDS", call_sid, turn=turn, text=text,
                         sec=round(len(pcm) / 16000, 2))
        return text

    def note_said(self, call_sid: str, text: str) -> None:
        """The line said `text` outside a turn (the owner did not answer): in the history."""
        said = {"role": "assistant", "text": text, "at": time.time()}
        self.calls.change_history(call_sid, lambda history: history + [said])

    def _llm_deltas(self, call_sid: str, llm, context: list[dict], outcome: TurnOutcome,
                    draft: Draft | None = None):
        """The LLM's deltas, read on a thread of their own so that a stalled stream times out
        (LLM_TIMEOUT_SEC until each next piece) and a cancelled reply stops reading; with a
        `draft` the turn took, its deltas (kept, then as they come) and no new request."""
        reply = outcome.reply
        if draft is not None:
            reading, outcome.tools = draft.reading, draft.tools
        else:
            reading = Reading(lambda: reply.done)
            outcome.tools = self.booking_tools(call_sid, llm)
            tools = {"tools": outcome.tools} if outcome.tools is not None else {}
            threads.start("llm", reading.read,
                          lambda: llm.reply_tokens(context, outcome.user_text, **tools),
                          tag=call_sid[-6:])
        while True:
            timeout = self.s.llm_timeout_sec
            if outcome.budgeted():
                timeout = max(0.1, min(timeout, outcome.deadline - time.monotonic()))
            try:
                piece = reading.next(timeout)
            except queue.Empty:
                raise TimeoutError(f"llm took longer than {timeout:.3g} s") from None
            if piece is END:
                return
            if isinstance(piece, Exception):
                raise piece
            yield piece

    # ---- the reply begun before the turn ended (DRAFT_REPLY, ivr/draft.py) ------------------
    def begin_draft(self, call_sid: str, text: str) -> Draft | None:
        """Ask the LLM now for the reply to `text` (the caller's words so far, a whole
        sentence) with the call's history as it is: its deltas and Actions are kept, nothing is
        done, synthesised or said until the turn takes it. Replaces the call's older draft.
        Never blocks (the history is read on the draft's own thread)."""
        llm = self.engines.llm
        if llm is None or not text.strip():
            return None
        draft = Draft(call_sid, text.strip())
        with self.drafts_lock:
            older, self.drafts[call_sid] = self.drafts.get(call_sid), draft
        self._drop(older, "other-words")
        threads.start("llm", self._read_draft, draft, llm, tag=call_sid[-6:])
        return draft

    def _read_draft(self, draft: Draft, llm: LLM) -> None:
        try:
            draft.history = self.calls.history(draft.call_sid)
            tools = self.booking_tools(draft.call_sid, llm)
            draft.tools = DraftTools.of(tools, draft) if tools is not None else None
            given = {"tools": draft.tools} if draft.tools is not None else {}
            context = llm_context(draft.history)
        except Exception as exc:  # noqa: BLE001 - the turn asks the LLM itself
            draft.history = None
            draft.reading.pieces.put(exc)
            return
        finally:
            draft.ready.set()
        draft.reading.read(lambda: llm.reply_tokens(context, draft.text, **given))

    def drop_draft(self, call_sid: str, why: str) -> None:
        """The call's draft is thrown away (the caller went on, the call ended)."""
        with self.drafts_lock:
            draft = self.drafts.pop(call_sid, None)
        self._drop(draft, why)

    def _take_draft(self, call_sid: str) -> Draft | None:
        with self.drafts_lock:
            return self.drafts.pop(call_sid, None)

    def _used(self, draft: Draft | None, history: list[dict],
              outcome: TurnOutcome) -> Draft | None:
        """The draft, if the turn's words and the history are those it was begun on (used);
        else it is dropped and None."""
        if draft is None or draft.decided.is_set():
            return None
        if not draft.same_text(outcome.user_text):
            return self._drop(draft, "other-words")
        draft.ready.wait(self.s.llm_timeout_sec)
        if draft.history is None or draft.history != history:
            return self._drop(draft, "history-moved")
        if not draft.decide(True, lambda: outcome.reply.done):
            return None
        self.events.emit("DRAFT", draft.call_sid, result="used", text=draft.text,
                         chars=draft.reading.chars)
        return draft

    def _drop(self, draft: Draft | None, why: str) -> None:
        if draft is not None and draft.decide(False):
            self.events.emit("DRAFT", draft.call_sid, result="dropped", why=why,
                             text=draft.text, chars=draft.reading.chars)

    # ---- the booking tools an LLM runs (ivr/booking/tools.py) ---------------------------------
    def booking_tools(self, call_sid: str, llm: LLM) -> BookingTools | None:
        """This call's booking tools for an LLM that runs tools, when the flow takes bookings:
        the caller is the call's From (never the model's word); None otherwise."""
        if not llm.runs_tools or self.desk is None or self.desk.rules is None:
            return None
        caller = (self.calls.get(call_sid) or {}).get("from_number") or ""
        return BookingTools(self.desk, call_sid, caller, self.s.slot_key, self.s.timezone)

    def note_gap(self, call_sid: str, question: str, why: str) -> None:
        """The caller's question went unanswered: the owner's inbox is told (never raises)."""
        if self.on_gap is None or not question.strip():
            return
        try:
            self.on_gap(call_sid, question, why)
        except Exception as exc:  # noqa: BLE001 - the call goes on; the failure is logged
            self.events.emit("GAP_ERR", call_sid, logging.ERROR, err=repr(exc))

    def _keep_lead(self, call_sid: str, llm, context: list[dict], text: str) -> None:
        lead = llm.lead(context, text)
        if lead:
            call = self.calls.get(call_sid) or {}
            self.store.add_lead(call_sid, caller=call.get("from_number", ""), **lead)
            self.events.emit("LEAD", call_sid, **lead)
            if self.on_lead is not None:
                self.on_lead(call_sid, lead)

    def _add_chunk(self, call_sid: str, outcome: TurnOutcome, text: str) -> None:
        """A chunk is complete: synthesise it now, in parallel with what is still written."""
        index = outcome.reply.add(text)
        if index == 0:
            outcome.reply.mark("first_chunk")
        if index is not None:
            outcome.synthesis.append(self.writers.submit(self._speak, call_sid, outcome,
                                                         index, text))

    def _speak(self, call_sid: str, outcome: TurnOutcome, index: int, text: str) -> None:
        reply, tts = outcome.reply, self.engines.tts
        if outcome.on_stream and tts is not None and tts.speaks_live \
                and self.cache.find(tts, text) is None:
            return self._speak_live(call_sid, outcome, index, text)
        try:
            if tts is None:
                raise RuntimeError("no TTS engine configured")
            path = self._timed("tts", lambda: self.cache.synthesize(tts, text),
                               self.s.tts_timeout_sec, outcome)
            if self.s.reply_mode == "stream":
                self.cache.ulaw(path.name)  # decoded here, in parallel, not when it is its turn
        except Exception as exc:  # noqa: BLE001 - the reply ends here with the fallback sound
            self.events.emit("TTS_ERR", call_sid, logging.ERROR, err=repr(exc), chunk=index + 1)
            outcome.fallback = "tts-error"
            path = self.cache.last_resort()
            reply.fail(index, path, self.cache.duration(path.name), "tts-error")
            return
        reply.set_audio(index, path, self.cache.duration(path.name))
        if index == 0:
            reply.mark("first_chunk_audio")

    def _speak_live(self, call_sid: str, outcome: TurnOutcome, index: int, text: str) -> None:
        """Chunk `index` heard as the engine makes it: ready at its first audio, then kept in
        the cache once whole. A failure before any audio makes it the fallback sound; after
        some, the fallback sound follows what was heard. A cancelled reply (a barge-in)
        cancels the synthesis."""
        reply, live = outcome.reply, LiveAudio()
        synthesis = self.cache.live(self.engines.tts, text)
        started = time.perf_counter()
        try:
            for piece in synthesis:
                if reply.cancelled.is_set():
                    break
                if not piece:
                    continue
                live.add(piece)
                if len(live.pieces) == 1:
                    reply.set_live(index, live)
                    if index == 0:
                        reply.mark("first_chunk_audio")
        except TranscriptMismatch as exc:  # heard already: logged, never cached
            self.events.emit("TTS_MISMATCH", call_sid, logging.WARNING, err=str(exc),
                             chunk=index + 1)
            if not live.pieces:
                return self._live_failed(call_sid, outcome, index, live, exc)
        except Exception as exc:  # noqa: BLE001 - the reply ends with the fallback sound
            return self._live_failed(call_sid, outcome, index, live, exc)
        finally:
            synthesis.close()
            outcome.ms["tts"] = round((time.perf_counter() - started) * 1000)
        live.end()
        if synthesis.path is not None:
            reply.set_audio(index, synthesis.path, self.cache.duration(synthesis.path.name))

    def _live_failed(self, call_sid: str, outcome: TurnOutcome, index: int, live: LiveAudio,
                     exc: Exception) -> None:
        """A streamed chunk failed: the fallback sound ends the reply (after what was heard)."""
        self.events.emit("TTS_ERR", call_sid, logging.ERROR, err=repr(exc), chunk=index + 1,
                         streamed_bytes=sum(map(len, live.pieces)))
        outcome.fallback = "tts-error"
        live.end(failed=True)
        path = self.cache.last_resort()
        outcome.reply.fail(index, path, self.cache.duration(path.name), "tts-error")

    def _wait_synthesis(self, outcome: TurnOutcome) -> None:
        for future in list(outcome.synthesis):
            try:
                future.result(timeout=self.s.tts_timeout_sec + 5)
            except Exception:  # noqa: BLE001, S110 - _speak logs its own failures
                pass
        outcome.reply.mark("last_chunk")

    # ---- the record of the turn ---------------------------------------------------------------
    def _save_history(self, call_sid: str, outcome: TurnOutcome) -> None:
        """The turn joins the call's history once its reply is written, before the reply is
        closed: no answer can end the reply (and let the caller speak again) before the next
        turn can read this one. What the caller heard of it (a barge-in, a chunk that failed)
        is set when that is known (keep_heard, _record)."""
        try:
            with self.history_lock:  # against this reply's barge-in (keep_heard)
                self._append_turn(call_sid, outcome)
        except Exception as exc:  # noqa: BLE001 - logged; _record tries again
            self.events.emit("TURN_ERR", call_sid, logging.ERROR, err=repr(exc), stage="history")

    def _append_turn(self, call_sid: str, outcome: TurnOutcome) -> None:
        """The caller's text and the reply as heard so far, appended to the history."""
        reply, now = outcome.reply, time.time()
        outcome.reply_text = reply.heard_text if reply.heard_text is not None else reply.text
        said = [{"role": "user", "text": outcome.user_text, "at": now}] \
            if outcome.user_text else []
        said.append({"role": "assistant", "text": outcome.reply_text, "at": now,
                     **kept_tools({"tools": outcome.tools.kept if outcome.tools else []}),
                     **({BOOKING_KEY: outcome.booking} if outcome.booking else {})})
        self.calls.change_history(call_sid, lambda history: history + said)
        reply.history_saved = True

    def _record(self, call_sid: str, outcome: TurnOutcome, pcm: bytes | None,
                source: str) -> None:
        reply = outcome.reply
        with self.history_lock:  # the history says what was heard: a chunk may have failed
            if not reply.history_saved:
                self._append_turn(call_sid, outcome)
            saved = outcome.reply_text
            outcome.reply_text = reply.heard_text if reply.heard_text is not None else reply.text
            if outcome.reply_text != saved:
                self.calls.change_history(call_sid, lambda history: cut_to_heard(
                    history, saved, outcome.reply_text))
        timings = reply.ms()
        outcome.ms.update({f"{k}": v for k, v in timings.items()})
        names = reply.names
        self.store.add_turn(call_sid, turn=outcome.turn, source=source,
                            user_text=outcome.user_text, reply_text=reply.text,
                            audio_url=" ".join(names), fallback=outcome.fallback,
                            utterance_ms=round(len(pcm) / 16) if pcm else None,
                            asr_ms=outcome.ms.get("asr"), llm_ms=outcome.ms.get("llm"),
                            tts_ms=outcome.ms.get("tts"), total_ms=outcome.ms.get("total"),
                            first_audio_ms=timings.get("first_audio"),
                            timings=json.dumps(timings))
        self.events.emit("TURN", call_sid, turn=outcome.turn, source=source,
                         mode=self.s.reply_mode if source == "stream" else source,
                         user=outcome.user_text, reply=reply.text, chunks=len(names),
                         audio=names[0] if names else "", fallback=outcome.fallback,
                         ending=reply.ending,
                         first_audio_ms=timings.get("first_audio"), **{
                             f"{k}_ms": v for k, v in outcome.ms.items() if k != "first_audio"},
                         turn_ms=reply.age_ms())  # its end: a trace's turn (ivr/tracing.py)

    def keep_heard(self, call_sid: str, reply: SpokenReply, heard: str) -> None:
        """A barge-in cut the reply: the history keeps only what the caller heard of it."""
        with self.history_lock:
            reply.heard_text = heard
            if not reply.history_saved:
                return  # _record will write `heard` itself
            self.calls.change_history(call_sid, lambda history: cut_to_heard(
                history, reply.text, heard))


def llm_context(history: list[dict]) -> list[dict]:
    """The history as the LLM is given it: each message's role and text, the tools it used,
    the booking's step."""
    return [{"role": m["role"], "text": m["text"], **kept_tools(m),
             **({BOOKING_KEY: m[BOOKING_KEY]} if m.get(BOOKING_KEY) else {})} for m in history]


def kept_tools(message: dict) -> dict:
    """The tool calls and results a reply used (kept with it in the history, for the LLM's
    next turns: the slot ids it was given), as {"tools": […]}, or {} when none."""
    return {"tools": list(message["tools"])} if message.get("tools") else {}


def cut_to_heard(history: list[dict], said: str, heard: str) -> list[dict] | None:
    """The history with the last assistant message `said` cut to `heard`; None if the last
    assistant message is another one (nothing to change)."""
    last = next((m for m in reversed(history) if m["role"] == "assistant"), None)
    if last is None or last["text"] != said:
        return None
    last["text"] = heard
    return history
