"""A stream's turns: one in flight, stale results dropped, replies delivered by REPLY_MODE."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Protocol

from .. import audio, reply_twiml, twiml
from ..dialog import TurnOutcome
from ..engines.base import LiveRecognition
from ..phrases import LLM_FALLBACK
from ..reply import Chunk, SpokenReply
from ..runtime import Runtime
from ..tts_cache import FALLBACK, GOODBYE, GREETING, THINKING
from .backchannel import says_backchannel
from .early_asr import EarlyRecognition
from .endpointing import (
    Backchannel,
    BargeIn,
    Dropped,
    Greet,
    Pause,
    Silence,
    TurnDetector,
    TurnParams,
    Utterance,
)
from .turn_end import silence_to_end

log = logging.getLogger("ivr")


class MediaChannel(Protocol):
    """What the turns need of their WebSocket (session.MediaStreamSession provides it)."""

    stream_sid: str
    closed: threading.Event

    def send(self, message: dict) -> bool: ...
    def send_media_frames(self, frames: list[bytes], stop: threading.Event | None = None
                          ) -> int: ...
    def close(self, code: int = 1000, reason: str = "") -> None: ...


class StreamTurns:
    """The turns of one stream: endpointing of its frames, one turn in flight, the reply's
    delivery by REPLY_MODE; the conversation itself lives in the store."""

    def __init__(self, rt: Runtime, channel: MediaChannel, call_sid: str, turn: int,
                 fork: bool = False):
        self.rt, self.channel, self.call_sid, self.turn = rt, channel, call_sid, turn
        self.fork = fork  # a <Start><Stream> over the Plays before `turn`: it only listens
        self.carrying = False  # the fork heard the caller: its frames go to the next stream
        greeting = turn == 1 and greets_on_stream(rt) and not fork
        line_spoke = not fork and (turn > 1 or rt.settings.twiml_play_greeting)
        self.detector = TurnDetector(TurnParams.from_settings(rt.settings, greeting, line_spoke))
        self.detector_lock = threading.Lock()
        self.lock = threading.Lock()
        self.turn_id = 0
        self.in_flight = False
        self.speaking_mark: str | None = None
        self.sent_marks: set[str] = set()
        self.ending_after: tuple[str, str] | None = None  # (mark, "hangup"/"transfer")
        self.stop_speaking = threading.Event()
        self.speaking: tuple[SpokenReply, PlaySchedule] | None = None  # the reply being heard
        self.live: LiveRecognition | None = None  # the recognizer hearing the utterance
        self.paused = False  # silent since a Pause in the utterance being heard
        self.drafted: str | None = None  # the live words the reply was begun on (DRAFT_REPLY)
        asr = rt.engines.asr
        self.live_asr = asr if asr is not None and asr.hears_live and not fork else None
        self.early = EarlyRecognition(
            asr, self.early_told, self.early_heard if rt.settings.draft_reply else None) \
            if asr is not None and not asr.hears_live and not fork \
            and rt.settings.early_asr_sec > 0 else None  # (a live one hears all)
        if fork:
            self.detector.bot_speaking()  # the Plays run: voice over them is a barge-in
        else:
            self.hear_overheard()

    def hear_overheard(self) -> None:
        """What a fork heard of the caller over the Plays before this stream (the start of
        an utterance still being said) is this stream's first audio: the question is whole."""
        frames = self.rt.overheard.take(self.call_sid)
        if frames:
            self.rt.events.emit("OVERHEARD", self.call_sid, sid=self.channel.stream_sid,
                                frames=len(frames))
        for pcm in frames:
            self.feed(pcm)

    # ---- from the receive loop ----------------------------------------------------------------
    def feed(self, pcm: bytes) -> None:
        """One inbound 20 ms frame: endpointing, then a turn, a barge-in, the greeting, or the
        record of voice that is not answered. A fork only listens for a barge-in, then carries
        the frames to the call's next stream."""
        if self.fork:
            return self.feed_fork(pcm)
        with self.detector_lock:
            if self.live is not None and self.detector.state == TurnDetector.SPEAKING:
                self.detector.hear_words(says_backchannel(self.live.partial))  # words so far
            elif self.live is not None and self.detector.state == TurnDetector.LISTENING:
                self.detector.hear_end(silence_to_end(self.live.partial,
                                                      self.rt.settings.min_utt_sec))
            events = self.detector.feed(pcm, audio.rms(pcm))
            if self.live_asr is not None and self.rt.settings.draft_reply:
                self._draft(events)
            ended = self._feed_live(pcm, events) if self.live_asr else None
            if self.early is not None:
                ended = self._early(events) or ended
        for event in events:
            if isinstance(event, Utterance):
                self.dispatch(event, ended)
            elif isinstance(event, BargeIn):
                self.barge_in(event)
            elif isinstance(event, Backchannel):
                self.backchannel(event)
            elif isinstance(event, Greet):
                self.greet()
            elif isinstance(event, Silence):
                self._submit(silent=True)
            elif isinstance(event, Dropped):
                self.dropped(event.reason, event.seconds, event.voiced_frames)

    def _early(self, events: list) -> LiveRecognition | None:
        """EARLY_ASR_SEC: the utterance's transcription begun at its Pause; the one this
        frame's Utterance takes, if any."""
        taken = None
        for event in events:
            if isinstance(event, Pause):
                self.early.pause(event)
            elif isinstance(event, Utterance):
                taken = self.early.take(event)
        if not taken:
            self.early.check(self.detector)
        return taken

    def early_told(self, result: str, seconds: float) -> None:
        """An early transcription ended: taken by its turn, or thrown away (what it costs);
        a reply begun on its words goes with it."""
        self.rt.events.emit("EARLY_ASR", self.call_sid, sid=self.channel.stream_sid,
                            result=result, sec=round(seconds, 2))
        if result == "dropped" and self.drafted is not None:
            self.drafted = None
            self.rt.dialog.drop_draft(self.call_sid, "went-on")
        elif result == "used":
            self.drafted = None  # the turn has the draft now

    def early_heard(self, live: LiveRecognition, text: str) -> None:
        """DRAFT_REPLY with an ASR that does not hear live: the early transcription's words
        came while the turn is not over (the caller is still silent, not yet MIN_UTT_SEC): when
        they read whole, the reply is begun on them; the turn's words are these same ones."""
        with self.detector_lock:
            pending = self.early.pending if self.early is not None else None
            if pending is None or pending[0] is not live:
                return  # the turn took it already (it asks the LLM itself), or it was dropped
            if self.reads_whole(text):
                self.drafted = text
                self.rt.dialog.begin_draft(self.call_sid, text)

    def reads_whole(self, text: str) -> bool:
        """The words read as a whole sentence (not "שלום," or "אני רוצה"): worth a draft."""
        ceiling = self.rt.settings.min_utt_sec
        return silence_to_end(text, ceiling) not in (None, ceiling)

    def _draft(self, events: list) -> None:
        """DRAFT_REPLY: in the silence after the caller's live words read as a whole sentence
        (from the detector's Pause on), the reply is begun on them (again if they change);
        voice again throws it away; the turn that ends the utterance takes it or drops it."""
        run, detector = self.detector.run, self.detector
        if any(isinstance(e, Utterance) for e in events):
            self.paused, self.drafted = False, None  # the turn has the draft now
            return
        if any(isinstance(e, Pause) for e in events):
            self.paused = True
        elif not (detector.state == TurnDetector.LISTENING and run.frames and run.silence):
            self.paused = False
        if not self.paused:
            if self.drafted is not None:
                self.drafted = None
                self.rt.dialog.drop_draft(self.call_sid, "went-on")
            return
        text = self.live.partial.strip() if self.live is not None else ""
        if text and text != self.drafted and self.reads_whole(text):
            self.drafted = text
            self.rt.dialog.begin_draft(self.call_sid, text)

    def feed_fork(self, pcm: bytes) -> None:
        if self.carrying:
            self.carrying = self.rt.overheard.add(self.call_sid, pcm)
            return
        with self.detector_lock:
            events = self.detector.feed(pcm, audio.rms(pcm))
            barge = next((e for e in events if isinstance(e, BargeIn)), None)
            if barge is None:
                for event in events:
                    if isinstance(event, Backchannel):
                        self.backchannel(event)
                return
            self.rt.overheard.begin(self.call_sid, self.detector.buffer)
            self.detector.take_turn()
        self.carrying = True
        self.rt.events.emit("BARGE_IN", self.call_sid, sid=self.channel.stream_sid,
                            voiced=barge.voiced_frames, by="voice", over="play")
        self.rt.turn_pool.submit(self.stop_plays)

    def stop_plays(self) -> None:
        """The caller speaks over the reply's Plays: the fork ends and the call's stream of
        this turn listens at once (calls.update); the rest of the reply is not played. A fork
        outlives the document that started it: if the call is no longer on those Plays (the
        watchdog moved it to <Record>, it moved on), the fork only closes."""
        s = self.rt.settings
        if not self.rt.calls.claim_barge_over_play(self.call_sid, self.turn):
            self.rt.overheard.take(self.call_sid)
            self.rt.events.emit("BARGE_IN_IGNORED", self.call_sid, turn=self.turn,
                                why="the call is no longer on the Plays of this fork")
            self.channel.close(1000, "the call moved on")
            return
        found = self.rt.replies.get(self.call_sid, self.turn)
        if found:  # its continuation will not be asked for
            self.rt.replies.drop(self.call_sid, found[1])
            found[1].cancel()
        doc = twiml.stream_turn(s.public_base_url, s.signing_key, self.call_sid, self.turn,
                                fork_stops=True)
        self.rt.delivery.update(self.call_sid, doc, "BARGE_IN_PLAY", turn=self.turn)

    def _feed_live(self, pcm: bytes, events: list) -> LiveRecognition | None:
        """With an ASR that streams, the recognizer hears the utterance while it is spoken:
        opened at its first voiced frame (over the line's speech: once a burst has
        BARGE_IN_VOICE_FRAMES voiced, and its words so far tell a backchannel from an
        interruption), fed every frame, finished by the turn, cancelled when the detector
        drops it as a click or once a backchannel is over. Returns the session of the
        utterance this frame ended."""
        if self.live is not None:
            self.live.feed(pcm)
        ended = None
        if any(isinstance(e, Utterance) for e in events):
            ended, self.live = self.live, None
        if self.detector.hearing_voice and self.live is None:
            self.live = self.live_asr.live()
            self.live.feed(b"".join(self.detector.buffer))
        elif not self.detector.buffer and self.live is not None:
            self.live.cancel()
            self.live = None
        return ended

    def backchannel(self, event: Backchannel) -> None:
        """The caller said "כן" or "אהה" over the line: it goes on speaking; no turn."""
        words = self.live.partial if self.live is not None else ""
        self.rt.events.emit("BACKCHANNEL", self.call_sid, sid=self.channel.stream_sid,
                            sec=round(event.seconds, 2), voiced=event.voiced_frames,
                            words=words, over="play" if self.fork else "stream")

    def dropped(self, reason: str, seconds: float, voiced: int) -> None:
        """What the caller said is not answered: never without a trace."""
        self.rt.events.emit("UTTERANCE_DROPPED", self.call_sid, sid=self.channel.stream_sid,
                            reason=reason, sec=round(seconds, 2), voiced=voiced)

    def close(self) -> None:
        """The stream is over: an utterance being recognised is dropped; one still being said
        (the caller hung up saying their name) is transcribed into the history, and the call's
        end waits for it (a fork's is in the next stream's hands)."""
        if self.fork:
            return
        with self.detector_lock:
            cut = self.detector.stop()
            if self.live is not None:
                self.live.cancel()
                self.live = None
            if self.early is not None:
                self.early.cancel()
        self.rt.dialog.drop_draft(self.call_sid, "call-ended")
        if cut is None:
            return
        self.dropped(cut.reason, cut.seconds, cut.voiced_frames)
        if cut.pcm:
            self.rt.last_words.begin(self.call_sid)
            self.rt.turn_pool.submit(self.hear_last_words, cut.pcm)

    def hear_last_words(self, pcm: bytes) -> None:
        try:
            turn = self.rt.calls.turn(self.call_sid) or self.turn
            self.rt.dialog.last_words(self.call_sid, turn, pcm)
        finally:
            self.rt.last_words.done(self.call_sid)

    def dispatch(self, utterance: Utterance, live: LiveRecognition | None = None) -> None:
        self.rt.events.emit("UTTERANCE", self.call_sid, sid=self.channel.stream_sid,
                            sec=round(utterance.seconds, 2), voiced=utterance.voiced_frames)
        ended = time.monotonic() - utterance.silence_frames * audio.FRAME_SEC
        if not self._submit(pcm=utterance.pcm, speech_end=ended, live=live):
            self.rt.dialog.drop_draft(self.call_sid, "call-ended")
            self.dropped("call-ended", utterance.seconds, utterance.voiced_frames)

    def dispatch_text(self, text: str) -> None:
        """A key press is a turn of its own (no ASR): it interrupts the line like a barge-in,
        and supersedes a turn still in flight (whose late result is dropped as stale)."""
        with self.detector_lock:
            before = self.detector.take_turn()
        if before == TurnDetector.SPEAKING:
            self.barge_in(BargeIn(0), by="key")
        self._submit(text=text)

    def greet(self) -> None:
        """The caller said nothing GREETING_WAIT_SEC after the stream opened: the greeting."""
        with self.detector_lock:
            self.detector.take_turn()
        self._submit(greeting=True)

    def barge_in(self, event: BargeIn, by: str = "voice") -> None:
        self.stop_speaking.set()
        self.ending_after = None  # the caller spoke over the goodbye: the call goes on
        speaking, self.speaking = self.speaking, None
        if speaking is not None:  # the rest is not played: the history keeps what was heard
            reply, schedule = speaking
            reply.cancel()
            self.rt.turn_pool.submit(self.rt.dialog.keep_heard, self.call_sid, reply,
                                     schedule.heard(time.monotonic()))
        self.speaking_mark = None
        self.channel.send({"event": "clear"})
        self.rt.events.emit("BARGE_IN", self.call_sid, sid=self.channel.stream_sid,
                            voiced=event.voiced_frames, by=by)

    def mark_played(self, name: str) -> bool:
        """Twilio played up to a mark; False for a name this stream never sent."""
        if name not in self.sent_marks:
            return False
        if name == self.speaking_mark:
            self.speaking_mark = self.speaking = None
            with self.detector_lock:
                self.detector.bot_done()
            self.rt.events.emit("MARK", self.call_sid, sid=self.channel.stream_sid,
                                name=name)
        ending, self.ending_after = self.ending_after, None
        if ending is not None and ending[0] == name:
            with self.detector_lock:  # the call leaves this stream: nothing said now is a turn
                self.detector.take_turn()
            self.rt.turn_pool.submit(self.end_after_reply, ending[1])
        return True

    def end_after_reply(self, ending: str) -> None:
        """The reply before a hang-up or a transfer was heard to its end: do it."""
        doc = reply_twiml.listen_twiml(self.rt, ending)  # <Hangup/>, or <Dial> the owner
        reply_twiml.end_listening(self.rt, self.call_sid, ending)
        if self.rt.delivery.update(self.call_sid, doc, "ENDING", ending=ending):
            return
        if ending == "transfer":
            self.rt.calls.back_from_owner(self.call_sid, next_turn=False)  # still streaming
            self.rt.calls.give_back_transfer(self.call_sid)
        with self.detector_lock:  # the call stays on this stream: listen again
            self.detector.listen()

    # ---- on the turn pool ---------------------------------------------------------------------
    def _submit(self, pcm: bytes | None = None, text: str | None = None,
                greeting: bool = False, speech_end: float | None = None,
                live: LiveRecognition | None = None, silent: bool = False) -> bool:
        """Start a turn on the turn pool; False (and none) for a call that is over."""
        if self.rt.watchdog.has_ended(self.call_sid):
            if live is not None:
                live.cancel()
            return False  # audio drained after the hang-up: no turn for a call that is over
        with self.lock:
            self.turn_id += 1
            self.in_flight = True
            my_id = self.turn_id
        if not greeting:  # the greeting is no turn: the call stays on it, waiting for the caller
            self.rt.watchdog.watch_turn(self.call_sid, self.turn)
        hint_ms = self.rt.settings.thinking_hint_ms
        if hint_ms and not greeting and self.rt.settings.reply_mode != "action":
            timer = threading.Timer(hint_ms / 1000, self._thinking_hint, args=(my_id,))
            timer.daemon = True
            timer.start()
        self.rt.turn_pool.submit(self._run, my_id, pcm, text, greeting,
                                 speech_end or time.monotonic(), live, silent)
        return True

    def _thinking_hint(self, my_id: int) -> None:
        """THINKING_HINT_MS: the reply is late, so say "רגע…" and keep the caller on the line."""
        with self.lock:
            if not self.in_flight or my_id != self.turn_id:
                return
        s = self.rt.settings
        url = self.rt.prompt_url(THINKING)
        if s.reply_mode == "stream":
            ulaw = self.rt.cache.ulaw(self.rt.prompts.name(THINKING))
            self.channel.send_media_frames(audio.frames_of(ulaw), self.stop_speaking)
            self.rt.events.emit("THINKING_HINT_TX", self.call_sid, url=url, via="stream")
            return
        hold_sec = round(s.asr_timeout_sec + s.llm_timeout_sec + s.tts_timeout_sec) + 5
        self.rt.delivery.update(self.call_sid, twiml.hold(url, hold_sec), "THINKING_HINT",
                                url=url)

    def _run(self, my_id: int, pcm: bytes | None, text: str | None, greeting: bool,
             speech_end: float, live: LiveRecognition | None = None,
             silent: bool = False) -> None:
        turn = self.rt.calls.turn(self.call_sid) or self.turn
        try:
            if greeting:
                outcome = TurnOutcome(turn=turn, reply=self.prompt_reply(GREETING))
            elif silent:
                outcome = TurnOutcome(turn=turn, reply=self.silent_turn(turn))
            else:
                self.rt.calls.caller_spoke(self.call_sid)
                outcome = self.rt.dialog.start_turn(self.call_sid, turn, pcm=pcm, text=text,
                                                    live=live, source="stream",
                                                    speech_end=speech_end)
            reply = self._first_chunk(outcome)
        except Exception as exc:  # noqa: BLE001 - the dialog never raises; if it does, beep
            log.exception("turn crashed")
            self.rt.events.emit("TURN_ERR", self.call_sid, logging.ERROR, err=repr(exc))
            outcome = TurnOutcome(turn=turn, fallback="turn-crash")
            reply = self.fallback_reply("turn-crash")
        finally:
            with self.lock:
                self.in_flight = False
        # play delivers by REST alone; the greeting is always said on the socket
        socket_needed = greeting or self.rt.settings.reply_mode != "play"
        if my_id != self.turn_id or (socket_needed and self.channel.closed.is_set()):
            outcome.reply.cancel()
            self.rt.events.emit("TURN_STALE", self.call_sid, turn=turn)
            return
        if reply is None:
            with self.detector_lock:
                self.detector.listen()
            return
        try:
            if greeting:
                self.speak_on_socket(reply, my_id, greeting=True)
            else:
                self.deliver(reply, my_id)
        except Exception as exc:  # noqa: BLE001
            log.exception("delivery crashed")
            self.rt.events.emit("DELIVERY_ERR", self.call_sid, logging.ERROR, err=repr(exc))

    def silent_turn(self, turn: int) -> SpokenReply:
        """The caller said nothing STREAM_SILENCE_SEC after the line spoke: the re-prompt the
        webhook modes say, or after MAX_SILENT_TURNS the goodbye, then the line hangs up."""
        s = self.rt.settings
        silent = self.rt.calls.count_silent_turn(self.call_sid)
        self.rt.events.emit("SILENT_TURN", self.call_sid, count=silent, limit=s.max_silent_turns)
        prompt = GOODBYE if silent >= s.max_silent_turns else FALLBACK
        self.rt.store.add_turn(self.call_sid, turn=turn, source="stream",
                               reply_text=self.rt.prompts.texts.get(prompt, ""),
                               audio_url=self.rt.prompts.name(prompt), fallback="silence")
        if prompt == GOODBYE:  # its outcome (silent-hangup) is noted once it is heard
            return self.prompt_reply(GOODBYE, ending="hangup")
        return self.prompt_reply(FALLBACK)

    def fallback_chunk(self, why: str) -> Chunk:
        """The fallback sound (fallback_he.mp3, or the beep) as a chunk that ends a reply."""
        path = self.rt.cache.last_resort()
        return Chunk(LLM_FALLBACK, path, self.rt.cache.duration(path.name), why)

    def fallback_reply(self, why: str) -> SpokenReply:
        """A reply of one chunk: the fallback sound."""
        return one_chunk_reply(self.fallback_chunk(why), why)

    def prompt_reply(self, alias: str, ending: str = "") -> SpokenReply:
        """A reply of one chunk: a fixed prompt's cached MP3 (made once if missing; the
        fallback sound, or the beep, when it cannot be)."""
        name = self.rt.prompts.name(alias)
        why = "" if name == alias else "prompt-missing"
        text = self.rt.prompts.texts.get(alias, "") if name == alias else LLM_FALLBACK
        chunk = Chunk(text, self.rt.cache.path(name), self.rt.cache.duration(name), why)
        return one_chunk_reply(chunk, why, ending)

    def _first_chunk(self, outcome: TurnOutcome) -> SpokenReply | None:
        """The reply to deliver once its first chunk is ready (the thinking hint stays armed
        meanwhile); None when there is nothing to say. A reply later than every stage timeout
        together is cancelled and the fallback phrase said instead."""
        if outcome.skipped:
            return None
        s = self.rt.settings
        try:
            first = outcome.reply.wait(0, s.llm_timeout_sec + s.tts_timeout_sec + 2)
            return outcome.reply if first is not None else None
        except TimeoutError:
            outcome.reply.cancel()
            self.rt.events.emit("REPLY_LATE", self.call_sid, logging.WARNING, part=1)
            return self.fallback_reply("reply-late")

    def deliver(self, reply: SpokenReply, my_id: int) -> None:
        """REPLY_MODE play (calls.update, then continuations), action (close; stream_ended
        answers, then continuations), stream (frames on this socket)."""
        s = self.rt.settings
        if s.reply_mode == "stream":
            return self.speak_on_socket(reply, my_id)
        turn, next_turn = self.turn, self.turn + 1
        if not self.rt.calls.advance_turn(self.call_sid, turn):
            reply.cancel()
            self.rt.events.emit("TURN_STALE", self.call_sid, turn=turn, why="call moved on")
            return
        answer = reply_twiml.first_reply_twiml(self.rt, self.call_sid, next_turn, "stream",
                                           reply, 0)
        url = " ".join(answer.urls)
        if s.reply_mode == "play" and self.rt.delivery.ping_pong(self.call_sid, answer.doc, url):
            reply.audio_out()
        else:
            reason = "calls.update failed" if s.reply_mode == "play" else "REPLY_MODE=action"
            self.rt.calls.hold_reply(self.call_sid, answer.doc)
            self.rt.events.emit("ACTION_DELIVERY", self.call_sid, turn=next_turn, url=url,
                                reason=reason)
            self.channel.close()
            reply.audio_out()
        reply_twiml.watch_after(self.rt, self.call_sid, next_turn, "stream", answer)

    def speak_on_socket(self, reply: SpokenReply, my_id: int, greeting: bool = False) -> None:
        """Bidirectional: a short human pause, then each chunk's frames as soon as it is ready,
        then a mark. A barge-in (or a newer turn) stops it; the history keeps what was heard.
        The greeting (in every REPLY_MODE) has had its pause, and is no turn: the stream's
        turn stays the one the caller's first words will have."""
        s = self.rt.settings
        if not greeting:
            pause = random.uniform(s.resp_min_delay_ms, s.resp_max_delay_ms) / 1000
            time.sleep(max(0.0, reply.marks["speech_end"] + pause - time.monotonic()))
        number = self.rt.calls.turn(self.call_sid) + 1
        mark = "greeting" if greeting else f"reply-{number}"
        with self.detector_lock:
            self.detector.bot_speaking()
        schedule = PlaySchedule()
        self.stop_speaking.clear()
        self.speaking = (reply, schedule)
        self.speaking_mark = mark
        self.sent_marks.add(mark)
        index = sent = 0
        while not self._interrupted(my_id):
            chunk = self._next_chunk(reply, index)
            if chunk is None or self._interrupted(my_id):
                break
            played, last = self._play_chunk(reply, chunk, index == 0, schedule, my_id)
            sent += played
            if last:
                break
            index += 1
        reply.unwatched()  # (when nothing went out) the turn's record need not wait
        interrupted = self._interrupted(my_id)
        if not greeting:  # the same stream carries the next turn: started, its media watched
            self.rt.calls.advance_stream_turn(self.call_sid, number)
            self.rt.watchdog.watch_media(self.call_sid, number)
        if interrupted:
            reply.cancel()  # barge_in kept what the caller heard
        else:
            if reply.ending:  # done when Twilio says the reply was played to its end
                self.ending_after = (mark, reply.ending)
            self.channel.send({"event": "mark", "mark": {"name": mark}})
        self.rt.events.emit("STREAM_REPLY", self.call_sid, sid=self.channel.stream_sid,
                            frames=sent, mark=mark, chunks=index + (not interrupted),
                            interrupted=interrupted)

    def _next_chunk(self, reply: SpokenReply, index: int) -> Chunk | None:
        """Chunk `index` once it is ready (None: the reply ended before it); the fallback
        sound when it is later than the LLM and TTS timeouts together."""
        s = self.rt.settings
        try:
            return reply.wait(index, s.llm_timeout_sec + s.tts_timeout_sec)
        except TimeoutError:
            reply.cancel()
            self.rt.events.emit("REPLY_LATE", self.call_sid, logging.WARNING, part=index + 1)
            return self.fallback_chunk("late")

    def _play_chunk(self, reply: SpokenReply, chunk: Chunk, first: bool,
                    schedule: PlaySchedule, my_id: int) -> tuple[int, bool]:
        """Send a chunk's frames (as they are made, when it is live); (frames sent, whether
        the reply ends with it: a fallback sound)."""
        sent = 0
        if chunk.live is not None:
            sent = self._send_live(chunk, schedule, my_id, reply if first else None)
            if not chunk.live.failed or self._interrupted(my_id):
                return sent, chunk.live.failed
            chunk, first = self.fallback_chunk("tts-error"), False  # after what was heard
        try:
            frames = audio.frames_of(self.rt.cache.ulaw(chunk.audio.name))
        except Exception as exc:  # noqa: BLE001 - an undecodable chunk: the fallback sound
            self.rt.events.emit("DELIVERY_ERR", self.call_sid, logging.ERROR, err=repr(exc))
            reply.cancel()
            chunk = self.fallback_chunk("undecodable")
            frames = audio.frames_of(self.rt.cache.ulaw(chunk.audio.name))
        sent += self.channel.send_media_frames(frames, self.stop_speaking)
        schedule.add(chunk.text, len(frames) * audio.FRAME_SEC)
        if first:
            reply.audio_out()
        return sent, bool(chunk.fallback)

    def _send_live(self, chunk: Chunk, schedule: PlaySchedule, my_id: int,
                   first: SpokenReply | None) -> int:
        """A chunk's frames as its synthesis makes them; `first`: the reply whose first audio
        this is. A stall ends it as a failure (the fallback sound follows)."""
        sent = 0
        schedule.add(chunk.text, 0.0)
        try:
            for frames in chunk.live.frames(self.rt.settings.tts_timeout_sec + 2):
                if self._interrupted(my_id):
                    break
                sent += self.channel.send_media_frames(frames, self.stop_speaking)
                schedule.extend(len(frames) * audio.FRAME_SEC)
                if first is not None and sent:
                    first.audio_out()
                    first = None
        except TimeoutError:
            self.rt.events.emit("REPLY_LATE", self.call_sid, logging.WARNING, streamed=True)
            chunk.live.end(failed=True)
        return sent

    def _interrupted(self, my_id: int) -> bool:
        return self.stop_speaking.is_set() or my_id != self.turn_id or self.channel.closed.is_set()


def greets_on_stream(rt: Runtime) -> bool:
    """Whether a call's first stream says the greeting (STREAM_GREETING, unless
    TWIML_PLAY_GREETING played it before the stream, or there is no greeting text)."""
    s = rt.settings
    return s.stream_greeting and not s.twiml_play_greeting and rt.prompts.has(GREETING)


def one_chunk_reply(chunk: Chunk, why: str = "", ending: str = "") -> SpokenReply:
    """A finished reply of one ready chunk (a fixed prompt or the fallback sound); `ending`:
    what the line does once it is heard ("hangup")."""
    reply = SpokenReply()
    reply.ending = ending
    reply.add(chunk.text)
    reply.set_audio(0, chunk.audio, chunk.seconds, why)
    reply.close()
    return reply


class PlaySchedule:
    """When each chunk sent on the stream plays (Twilio plays them back to back as they come),
    so a barge-in knows what the caller heard."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.chunks: list[tuple[str, float, float]] = []  # text, starts, seconds
        self.end = 0.0

    def add(self, text: str, seconds: float) -> None:
        starts = max(self.clock(), self.end)
        self.chunks.append((text, starts, seconds))
        self.end = starts + seconds

    def extend(self, seconds: float) -> None:
        """More audio of the last chunk went out (a chunk streamed as it is synthesised)."""
        text, starts, _ = self.chunks[-1]
        self.end = max(self.clock(), self.end) + seconds
        self.chunks[-1] = (text, starts, self.end - starts)

    def heard(self, at: float) -> str:
        """The text heard up to `at`: whole chunks, and the words of the one cut short."""
        words: list[str] = []
        for text, starts, seconds in self.chunks:
            if at <= starts:
                break
            chunk_words = text.split()
            share = min(1.0, (at - starts) / seconds) if seconds else 1.0
            kept = chunk_words[:max(1, round(len(chunk_words) * share))]
            words += kept + (["…"] if len(kept) < len(chunk_words) else [])
        return " ".join(words)

