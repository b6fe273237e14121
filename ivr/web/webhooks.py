"""Blueprint of the /webhook/* routes Twilio calls, with the X-Twilio-Signature check."""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Callable

from flask import Blueprint, Response, request

from .. import audio, recordings, signatures, twilio_fields, twiml
from ..reply_twiml import (
    CONTINUE_WAIT_SEC,
    ReplyTwiml,
    fallback_twiml,
    first_reply_twiml,
    listen_twiml,
    reply_twiml,
    watch_after,
)
from ..runtime import Runtime, current_runtime
from ..tts_cache import FALLBACK, GOODBYE, GREETING

bp = Blueprint("webhooks", __name__)
CALL_SID = re.compile(r"CA[0-9a-fA-F]{32}")  # fullmatch
OTHER_SIDS = {name: re.compile(rf"{prefix}[0-9a-fA-F]{{32}}") for name, prefix in (
    ("AccountSid", "AC"), ("StreamSid", "MZ"), ("RecordingSid", "RE"))}
MAX_PARAM_CHARS = 1000  # what the caller said (SpeechResult) and any other field, at most
FORM_TYPE = "application/x-www-form-urlencoded"
ENDED_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
OWNER_TALKED = frozenset({"completed", "answered"})  # a <Dial>'s DialCallStatus
TWILIO_WEBHOOK_BUDGET_SEC = 12.0  # Twilio gives up on a webhook after 15 s
DURABLE_WAIT_SEC = 2.0  # an answer waits this long at most for its rows to land
RECORDING_FETCH_BUDGET_SEC = recordings.FETCH_BUDGET_SEC  # part of the webhook's budget
STREAM_ERROR_GRACE_SEC = 1.0  # let Twilio's own <Connect action> request win the race


def xml(body: str, status: int = 200) -> Response:
    return Response(body, status=status, mimetype="text/xml")


def reject(status: int, reason: str) -> Response:
    return Response(reason + "\n", status=status, mimetype="text/plain")


def public_request_url(rt: Runtime) -> str:
    """The URL Twilio signed: the public base (not the proxy's inner URL) + path + query."""
    query = request.query_string.decode("latin-1")
    return rt.url(request.path) + (f"?{query}" if query else "")


def signature_problem(rt: Runtime) -> str | None:
    """Why this request's X-Twilio-Signature is unacceptable (made with the auth token, or with
    a Webhooks SharedKey), or None when it is good."""
    if not rt.settings.validate_twilio_signature:
        return None
    params = request.form.to_dict() if request.method == "POST" else {}
    return signatures.problem(rt.settings, public_request_url(rt), params,
                              request.headers.get(signatures.SIGNATURE_HEADER, ""),
                              request.headers.get(signatures.SIGNATURE_SETTINGS_HEADER, ""))


def form_problem() -> str | None:
    """Why this body is not a Twilio webhook form, or None."""
    if request.method == "POST" and request.mimetype != FORM_TYPE:
        return f"expected {FORM_TYPE}, got {request.mimetype or 'no content type'}"
    call_sid = request.values.get("CallSid", "")
    if not CALL_SID.fullmatch(call_sid):
        return "CallSid missing or malformed (expected CA + 32 hex digits)"
    for name, shape in OTHER_SIDS.items():
        value = request.values.get(name)
        if value is not None and not shape.fullmatch(value):
            return f"{name} malformed (expected {shape.pattern[:2]} + 32 hex digits)"
    return None


def webhook_params() -> dict[str, str]:
    """The form, each value cut to MAX_PARAM_CHARS before it goes anywhere."""
    return {k[:80]: v[:MAX_PARAM_CHARS] for k, v in request.values.to_dict().items()}


def twilio_webhook(fallback: Callable[[Runtime], Response]):
    """Check signature (403) and form (400), record what Twilio said, never answer 500.
    A rejected request is counted, never written row by row, and never waits for the database;
    an accepted one is recorded by the store's writer; the answer waits for those rows (the
    call, its watchdog checks) to land, so a worker killed right after answering loses
    nothing, but never longer than DURABLE_WAIT_SEC: a stuck database cannot hold Twilio."""
    def decorate(handler: Callable[[Runtime, dict, str], Response]):
        @functools.wraps(handler)
        def wrapper() -> Response:
            rt = current_runtime()
            for kind, status, problem in (("SIGNATURE_REJECTED", 403, signature_problem(rt)),
                                          ("WEBHOOK_REJECTED", 400, form_problem())):
                if problem:
                    rt.rejections.add(kind, request.remote_addr or "?", route=request.path,
                                      reason=problem)
                    return reject(status, problem)
            params = webhook_params()
            call_sid = params["CallSid"]
            rt.events.emit("WEBHOOK", call_sid, route=request.path, params=params)
            params = bounded_params(rt, call_sid, params)
            try:
                rt.calls.note(call_sid, params.get("AccountSid", ""), params.get("From", ""),
                              params.get("To", ""))
                response = handler(rt, params, call_sid)
            except Exception as exc:  # noqa: BLE001 - the caller must still hear something
                logging.getLogger("ivr").exception("webhook handler failed")
                rt.events.emit("WEBHOOK_ERR", call_sid, logging.ERROR,
                               route=request.path, err=repr(exc))
                response = fallback(rt)
            if response.mimetype == "text/xml":
                rt.events.emit("TWIML", call_sid, route=request.path,
                               twiml=response.get_data(as_text=True))
            rt.store.flush(DURABLE_WAIT_SEC)  # the call's row and checks outlive this process
            return response
        return wrapper
    return decorate


def bounded_params(rt: Runtime, call_sid: str, params: dict[str, str]) -> dict[str, str]:
    """Twilio's numbers (durations, `?turn=`, `?part=`) within bounds and a Gather's keys at
    most MAX_DIGITS: a value out of range or not a number is treated as missing, each with its
    reason logged (TWILIO_FIELD_IGNORED), so no column ever gets what it cannot hold."""
    params, changes = twilio_fields.bounded(params)
    for field, value, why in changes:
        rt.events.emit("TWILIO_FIELD_IGNORED", call_sid, logging.WARNING, route=request.path,
                       field=field, value=value, reason=why)
    return params


def _no_content(_rt: Runtime) -> Response:
    return Response(status=204)


def _safe_twiml(rt: Runtime) -> Response:
    """What a failing TwiML route answers: a prompt and Twilio's own speech recognition."""
    return xml(twiml.gather_turn(rt.settings.public_base_url, rt.settings.gather_language,
                                 rt.prompt_url(FALLBACK)))


def first_turn_twiml(rt: Runtime, call_sid: str) -> str:
    """The TwiML of a call's first turn in the configured TURN_MODE."""
    s = rt.settings
    greeting = rt.prompt_url(GREETING) if s.twiml_play_greeting else ""
    if s.turn_mode == "stream":
        return twiml.stream_turn(s.public_base_url, s.signing_key, call_sid, 1, greeting)
    if rt.prompts.has(GREETING):
        greeting = rt.prompt_url(GREETING)
    if s.turn_mode == "record":
        return twiml.record_turn(s.public_base_url, greeting)
    return twiml.gather_turn(s.public_base_url, s.gather_language, greeting)


def silent_turn_twiml(rt: Runtime, call_sid: str, mode: str) -> str:
    """Nothing heard: re-prompt, or after MAX_SILENT_TURNS say goodbye and hang up."""
    silent = rt.calls.count_silent_turn(call_sid)
    rt.events.emit("SILENT_TURN", call_sid, count=silent, limit=rt.settings.max_silent_turns)
    prompt = GOODBYE if silent >= rt.settings.max_silent_turns else FALLBACK
    rt.store.add_turn(call_sid, turn=rt.calls.turn(call_sid) or 0, source=mode,  # heard too
                      reply_text=rt.prompts.texts.get(prompt, ""),
                      audio_url=rt.prompts.name(prompt), fallback="silence")
    if prompt == GOODBYE:
        rt.calls.set_outcome(call_sid, "silent-hangup")
        return twiml.goodbye(rt.prompt_url(GOODBYE))
    return listen_twiml(rt, mode, rt.prompt_url(FALLBACK), call_sid)


@bp.route("/webhook/incoming_call", methods=["GET", "POST"])
def incoming_call() -> Response:
    if request.method == "GET" and not request.args:
        return preview()
    return _incoming_call()


def preview() -> Response:
    """An unsigned GET shows the first-turn TwiML of a made-up call (curl checks of seed 001)."""
    rt = current_runtime()
    body = first_turn_twiml(rt, "CA" + "0" * 32)
    return xml(re.sub(r'(name="token" value=")[0-9a-f]+', r"\1preview", body))


@twilio_webhook(_safe_twiml)
def _incoming_call(rt: Runtime, params: dict, call_sid: str) -> Response:
    """Answers without waiting for the database (Twilio allows 15 s): the row lands later.
    OWNER_RING_FIRST in business hours: the owner's phone rings first (see dial_result)."""
    s, owner = rt.settings, rt.owner
    rt.calls.answer(call_sid, s.turn_mode, s.reply_mode, params.get("CallStatus", "in-progress"))
    if owner.ring_first and owner.reachable():
        rt.calls.hand_to_owner(call_sid, s.turn_mode)
        rt.events.emit("RING_OWNER_FIRST", call_sid, to=owner.phone, timeout=owner.dial_timeout)
        return xml(twiml.dial_owner(s.public_base_url, owner.phone, owner.dial_timeout,
                                    "ring_first"))
    return xml(line_answers(rt, call_sid))


def line_answers(rt: Runtime, call_sid: str) -> str:
    """The line takes the call: its first turn, watched when it streams."""
    s = rt.settings
    body = first_turn_twiml(rt, call_sid)
    if s.turn_mode == "stream":
        greeting = rt.cache.duration(GREETING) if s.twiml_play_greeting else 0.0
        rt.watchdog.expect_stream(call_sid, 1, greeting)
    return body


@bp.route("/webhook/dial_result", methods=["POST"])
@twilio_webhook(_safe_twiml)
def dial_result(rt: Runtime, params: dict, call_sid: str) -> Response:
    """The owner's phone rang (`?why=ring_first` or `transfer`): answered, the call is theirs
    and ends with them; otherwise the line takes the call back, never a dead end: the first
    turn (ring-first), or "not available" and a message taken (a transfer). Acted on once,
    only while the call rings the owner (a claim keyed by `DialCallSid`)."""
    why, status = request.args.get("why", "transfer"), params.get("DialCallStatus", "")
    dial_sid = params.get("DialCallSid", "")
    rt.events.emit("DIAL_RESULT", call_sid, why=why, status=status,
                   seconds=params.get("DialCallDuration", ""), dial_sid=dial_sid)
    if status in OWNER_TALKED:
        outcome = "owner-answered" if why == "ring_first" else "transferred"
        if not rt.calls.owner_took_call(call_sid, dial_sid, outcome):
            return dial_result_ignored(rt, call_sid, dial_sid)
        return xml(twiml.goodbye())
    if params.get("CallStatus") in ENDED_STATUSES:
        return xml(twiml.empty())
    started = time.monotonic()
    back = rt.calls.back_from_owner(call_sid, next_turn=why != "ring_first", dial_sid=dial_sid)
    if back is None:
        return dial_result_ignored(rt, call_sid, dial_sid)
    if why == "ring_first":
        return xml(line_answers(rt, call_sid))
    mode, turn = back
    text = f"{rt.owner.unavailable} {rt.owner.take_message}"
    rt.dialog.note_said(call_sid, text)
    outcome = rt.dialog.speak_text(call_sid, turn, text)
    return xml(answer_reply(rt, call_sid, turn, mode, outcome.reply, started).doc)


def dial_result_ignored(rt: Runtime, call_sid: str, dial_sid: str) -> Response:
    """A result acted on already (a replay: the same `DialCallSid`) or for a call that is not
    ringing the owner: nothing changes, and Twilio is told how the call listens now."""
    call = rt.calls.ensure(call_sid)
    replay = bool(dial_sid) and call.get("dial_sid") == dial_sid
    rt.events.emit("DIAL_RESULT_IGNORED", call_sid, logging.WARNING,
                   reason="replay" if replay else "not ringing the owner",
                   turn_mode=call.get("turn_mode") or "", turn=call.get("turn") or 0)
    return xml(what_the_call_does(rt, call_sid, call))


@bp.route("/webhook/stream_status", methods=["POST"])
@twilio_webhook(_no_content)
def stream_status(rt: Runtime, params: dict, call_sid: str) -> Response:
    event = params.get("StreamEvent", "")
    rt.events.emit("STREAM_STATUS", call_sid, event=event, stream=params.get("StreamSid", ""),
                   error=params.get("StreamError", ""))
    call = rt.calls.ensure(call_sid)
    if event == "stream-error" and call["turn_mode"] == "stream" and not call["ended"]:
        rt.watchdog.stream_failed(call_sid, call["turn"], params.get("StreamError", ""),
                                  STREAM_ERROR_GRACE_SEC)
    return Response(status=204)


@bp.route("/webhook/stream_ended", methods=["POST"])
@twilio_webhook(_safe_twiml)
def stream_ended(rt: Runtime, params: dict, call_sid: str) -> Response:
    """A `<Connect>` ended (`?turn=` it was for): its held reply (action delivery), or the
    Record fallback; a request for a `<Connect>` newer TwiML already replaced changes nothing."""
    pending = rt.calls.take_reply(call_sid)
    if pending:
        return xml(pending)
    call = rt.calls.ensure(call_sid)
    if call.get("ended") or params.get("CallStatus") in ENDED_STATUSES:
        return xml(twiml.empty())
    stale = stale_stream_end(rt, call, params.get("turn", ""))
    if stale:
        rt.events.emit("STREAM_ENDED_STALE", call_sid, turn=params.get("turn", ""),
                       call_turn=call["turn"], reason=stale)
        return xml(what_the_call_does(rt, call_sid, call))
    turn = call.get("turn") or 0
    reason = ("stream never started" if (call.get("stream_started_turn") or 0) < turn
              else "stream ended with no reply pending")
    if not rt.calls.fall_back_to_record(call_sid, turn, reason):
        rt.calls.note_record_mode(call_sid, reason)
    rt.events.emit("STREAM_FALLBACK", call_sid, to="record", reason=reason, turn=turn)
    return xml(twiml.record_turn(rt.settings.public_base_url, rt.prompt_url(FALLBACK)))


def stale_stream_end(rt: Runtime, call: dict, turn: str) -> str:
    """Why this stream_ended is for a `<Connect>` that newer TwiML replaced, or "": Twilio may
    request an interrupted `<Connect action>` after a calls.update (seen for `<Dial>`). With
    REPLY_MODE=stream one socket carries many turns, so only a Dial tells it there."""
    if call.get("turn_mode") in ("dial", "owner"):
        return "the call is with the owner's phone"
    newer = bool(turn) and int(turn) < (call.get("turn") or 0)  # bounded digits, or ""
    if newer and call.get("turn_mode") == "stream" and (
            call.get("reply_mode") or rt.settings.reply_mode) != "stream":
        return "a newer turn's stream replaced it"
    return ""


def what_the_call_does(rt: Runtime, call_sid: str, call: dict) -> str:
    """TwiML that keeps the call where it is, should Twilio run it: nothing once it ended,
    `<Hangup/>` once the owner has it, the owner's `<Dial>`, or how the call's turn listens
    (its stream, `<Record>` or `<Gather>`)."""
    if call.get("ended"):
        return twiml.empty()
    mode = call.get("turn_mode") or rt.settings.turn_mode
    if mode == "owner":
        return twiml.goodbye()
    return listen_twiml(rt, "transfer" if mode == "dial" else mode, "", call_sid,
                        max(call.get("turn") or 0, 1))


@bp.route("/webhook/call_status", methods=["POST"])
@twilio_webhook(_no_content)
def call_status(rt: Runtime, params: dict, call_sid: str) -> Response:
    status, duration = params.get("CallStatus", ""), params.get("CallDuration", "")
    ended = {}  # the outcome, the first time the call ends (counted once in the figures)
    if status in ENDED_STATUSES:
        outcome = rt.calls.end(call_sid, status, int(duration) if duration else None)  # digits
        ended = {"outcome": outcome} if outcome else {}
    else:
        rt.calls.set_status(call_sid, status)
    rt.events.emit("CALL_STATUS", call_sid, status=status, duration=params.get("CallDuration"),
                   **ended)
    if status in ENDED_STATUSES:
        rt.watchdog.cancel(call_sid)
        if rt.notifier is not None:  # once words the hang-up cut off are in the history
            rt.last_words.after(call_sid, lambda: rt.notifier.call_ended(call_sid))
    return Response(status=204)


@bp.route("/webhook/handle_recording", methods=["POST"])
@twilio_webhook(_safe_twiml)
def handle_recording(rt: Runtime, params: dict, call_sid: str) -> Response:
    url = params.get("RecordingUrl", "")
    rt.events.emit("RECORDING", call_sid, url=url, sid=params.get("RecordingSid", ""),
                   duration=params.get("RecordingDuration", ""))
    if not url:
        return xml(silent_turn_twiml(rt, call_sid, "record"))
    started = time.monotonic()
    pcm = fetch_recording(rt, call_sid, params)
    if pcm is None or len(pcm) < MIN_RECORDING_BYTES:
        return xml(silent_turn_twiml(rt, call_sid, "record"))
    turn = rt.calls.advance_webhook_turn(call_sid)
    budget = TWILIO_WEBHOOK_BUDGET_SEC - (time.monotonic() - started)  # the fetch spent some
    outcome = rt.dialog.start_turn(call_sid, turn, pcm=pcm, source="record", budget_sec=budget,
                                   speech_end=started)
    s = rt.settings
    tail = "record"
    if s.recover_to_stream and s.asr_engine != "none" and not outcome.fallback \
            and not outcome.skipped:
        rt.calls.recover_to_stream(call_sid)
        rt.events.emit("RECOVER_TO_STREAM", call_sid, turn=turn)
        tail = "stream"
    return xml(answer_reply(rt, call_sid, turn, tail, outcome.reply, started).doc)


def answer_reply(rt: Runtime, call_sid: str, turn: int, tail: str, reply, started: float
                 ) -> ReplyTwiml:
    """A webhook's answer to a reply in chunks: its first chunks (waiting for them within what
    is left of Twilio's 15 s), then a continuation or the listening `tail`."""
    left = TWILIO_WEBHOOK_BUDGET_SEC - (time.monotonic() - started)
    answer = first_reply_twiml(rt, call_sid, turn, tail, reply, max(0.1, left))
    reply.audio_out()
    watch_after(rt, call_sid, turn, tail, answer)
    return answer


MIN_RECORDING_BYTES = 2 * 8000 * 3 // 10  # 0.3 s of 8 kHz PCM16


def fetch_recording(rt: Runtime, call_sid: str, params: dict) -> bytes | None:
    """Download (only from Twilio), keep the file for the owner, return 8 kHz PCM; None if not."""
    url, sid = params["RecordingUrl"], params.get("RecordingSid", "")
    try:
        data = recordings.download(rt.settings, url, budget_sec=RECORDING_FETCH_BUDGET_SEC)
    except recordings.RecordingRefused as exc:
        rt.events.emit("RECORDING_REFUSED", call_sid, logging.WARNING, url=url, reason=str(exc))
        return None
    except Exception as exc:  # noqa: BLE001 - a failed download is a re-prompt, not a 500
        rt.events.emit("RECORDING_ERR", call_sid, logging.WARNING, url=url, err=repr(exc)[:200])
        return None
    path = recordings.keep(rt.settings.var_dir, sid or call_sid, data,
                           {"call_sid": call_sid, "recording_sid": sid, "url": url,
                            "duration": params.get("RecordingDuration", ""), "bytes": len(data)},
                           shared=rt.media)
    rt.events.emit("RECORDING_SAVED", call_sid, path=str(path), bytes=len(data))
    try:
        return audio.decode_to_pcm16(data)
    except Exception as exc:  # noqa: BLE001
        rt.events.emit("RECORDING_ERR", call_sid, logging.WARNING, err=f"undecodable: {exc!r}")
        return None


@bp.route("/webhook/handle_gather", methods=["POST"])
@twilio_webhook(_safe_twiml)
def handle_gather(rt: Runtime, params: dict, call_sid: str) -> Response:
    heard = params.get("SpeechResult", "").strip() or params.get("Digits", "").strip()
    rt.events.emit("GATHER", call_sid, speech=params.get("SpeechResult", ""),
                   digits=params.get("Digits", ""), confidence=params.get("Confidence", ""))
    if not heard:
        return xml(silent_turn_twiml(rt, call_sid, "gather"))
    return xml(answer_text(rt, call_sid, heard, "gather"))


def answer_text(rt: Runtime, call_sid: str, text: str, mode: str) -> str:
    """A turn from text Twilio recognised (or keys): the reply, then listen again."""
    started = time.monotonic()
    turn = rt.calls.advance_webhook_turn(call_sid)
    outcome = rt.dialog.start_turn(call_sid, turn, text=text, source=mode,
                                   budget_sec=TWILIO_WEBHOOK_BUDGET_SEC, speech_end=started)
    if outcome.skipped:
        return listen_twiml(rt, mode, "", call_sid)
    return answer_reply(rt, call_sid, turn, mode, outcome.reply, started).doc


@bp.route("/webhook/reply_continue", methods=["POST"])
@twilio_webhook(_safe_twiml)
def reply_continue(rt: Runtime, params: dict, call_sid: str) -> Response:
    """Twilio played a reply's first chunks and asks for the next ones (`?turn=&part=`):
    from this instance's reply when it is writing it, else from the store (another instance
    is, or was)."""
    turn, part = (int(params.get(k) or 0) for k in ("turn", "part"))  # bounded digits
    found = rt.replies.get(call_sid, turn) or rt.reply_log.find(call_sid, turn)
    if found:
        tail, reply = found
        answer = continue_reply(rt, call_sid, turn, tail, reply, part)
        if not answer.more:
            rt.replies.drop(call_sid, reply)
    else:  # no instance knows it (the call moved on): listen again, with a sound
        call = rt.calls.ensure(call_sid)
        if call.get("ended") or params.get("CallStatus") in ENDED_STATUSES:
            return xml(twiml.empty())
        turn, tail = call.get("turn") or turn, call.get("turn_mode") or "record"
        rt.events.emit("REPLY_LOST", call_sid, logging.WARNING, turn=turn, part=part + 1)
        answer = fallback_twiml(rt, call_sid, turn, tail, part)
    watch_after(rt, call_sid, turn, tail, answer)
    rt.events.emit("REPLY_CONTINUE", call_sid, turn=turn, part=part + 1, more=answer.more,
                   seconds=round(answer.seconds, 2))
    return xml(answer.doc)


def continue_reply(rt: Runtime, call_sid: str, turn: int, tail: str, reply, part: int
                   ) -> ReplyTwiml:
    """The reply's next chunks, waiting for them (CONTINUE_WAIT_SEC) while fewer than
    CONTINUE_MAX_WAITING continuations wait; beyond that no wait at all: the chunks ready now,
    else the fallback phrase at once and the call listens again (CONTINUE_OVER_CAP)."""
    slots = rt.continuations
    if not slots.take():
        rt.events.emit("CONTINUE_OVER_CAP", call_sid, logging.WARNING, turn=turn,
                       part=part + 1, cap=slots.cap)
        return reply_twiml(rt, call_sid, turn, tail, reply, part, 0.0)
    try:
        return reply_twiml(rt, call_sid, turn, tail, reply, part, CONTINUE_WAIT_SEC)
    finally:
        slots.give()
