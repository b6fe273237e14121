"""A reply in chunks as TwiML: the chunks ready so far, then a continuation or the next turn."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from . import twiml
from .reply import SpokenReply
from .reply_store import StoredReply
from .runtime import Runtime
from .tts_cache import FALLBACK

CONTINUE_WAIT_SEC = 11.0  # a continuation waits this long for its chunk: Twilio allows 15 s
SETTLE_WAIT_SEC = 2.0  # a reply whose last chunk is ready waits this long at most for its close
GATHER_WHOLE_WAIT_SEC = 1.5  # a <Gather> call's answer waits this long for the rest of the reply:
# each continuation plays inside a Gather that listens 1 s (Twilio's least) before going on
ASKS_FOR_NUMBER = re.compile(r"(?<!\w)[וה]?(?:מספר|טלפון|phone|number)(?!\w)", re.IGNORECASE)


@dataclass
class ReplyTwiml:
    """One answer of a reply: the TwiML, the URLs it plays and their seconds of audio, whether
    more follows."""

    doc: str
    urls: list[str]
    seconds: float
    more: bool
    ending: str = ""  # the reply ends the call's listening: "hangup" or "transfer"


def fork_of(rt: Runtime, tail: str, part: int) -> str:
    """The fork (`<Start><Stream>`) that hears the caller over a reply's Plays, for the answer
    that plays the reply from `part`: "start" (the first part of a stream call's reply in
    REPLY_MODE=play), "running" (a later part: the first one started it) or "" (none)."""
    if tail != "stream" or rt.settings.reply_mode != "play":
        return ""
    return "start" if part == 0 else "running"


def listen_twiml(rt: Runtime, tail: str, plays: str | list[str] = "", call_sid: str = "",
                 turn: int = 0, said: str = "", fork: str = "") -> str:
    """Play `plays` (the words `said`, when known), then listen the way the call listens
    (`tail`): a `<Record>`, a `<Gather>` (around the plays), or a fresh stream for `call_sid`'s
    `turn`; or end there: `<Hangup/>` ("hangup"), or `<Dial>` the owner ("transfer"). `fork`
    (fork_of): a fork hears the caller over the plays, and ends before what follows them."""
    s = rt.settings
    running = turn if fork == "running" else 0
    if tail == "hangup":
        return twiml.goodbye(plays, running)
    if tail == "transfer":
        return twiml.dial_owner(s.public_base_url, rt.owner.phone, rt.owner.dial_timeout,
                                "transfer", plays, running)
    if tail == "stream":
        starts = fork == "start" and bool(twiml.plays(plays))
        return twiml.stream_turn(s.public_base_url, s.signing_key, call_sid, turn, plays,
                                 fork_starts=starts, fork_stops=starts or bool(running))
    if tail == "gather":
        return twiml.gather_turn(s.public_base_url, s.gather_language, plays,
                                 gather_digits(rt, call_sid, said))
    return twiml.record_turn(s.public_base_url, plays)


def gather_digits(rt: Runtime, call_sid: str = "", said: str = "") -> int:
    """A `<Gather>`'s numDigits after the line said `said` (unknown: the call's last line in
    its history): 0, keys until `#`, when it asked for a phone number; else 1, so a menu key
    answers at once."""
    if not said and call_sid:
        said = next((m["text"] for m in reversed(rt.calls.history(call_sid))
                     if m["role"] == "assistant"), "")
    return 0 if ASKS_FOR_NUMBER.search(said or "") else 1


def fallback_twiml(rt: Runtime, call_sid: str, turn: int, tail: str,
                   part: int = 0) -> ReplyTwiml:
    """The fallback phrase, then listen again: what a reply that cannot go on ends with."""
    name = rt.prompts.name(FALLBACK)
    url = rt.tts_url(name)
    return ReplyTwiml(listen_twiml(rt, tail, [url], call_sid, turn,
                                   fork=fork_of(rt, tail, part)), [url],
                      rt.cache.duration(name), False)


def reply_twiml(rt: Runtime, call_sid: str, turn: int, tail: str,
                reply: SpokenReply | StoredReply, part: int, wait_sec: float) -> ReplyTwiml:
    """The chunks from `part` on that are ready (waiting up to `wait_sec` for the first), then
    a `<Redirect>` to the continuation while more is coming, or the listening `tail` once the
    reply is complete. A chunk that does not come in time, or never will (a cancelled reply),
    ends the reply with the fallback phrase: never silence. The reply is this instance's own,
    or one another instance is writing, read from the store."""
    try:
        first = reply.wait(part, wait_sec)
    except TimeoutError as exc:
        reply.cancel()
        rt.events.emit("REPLY_LATE", call_sid, turn=turn, part=part + 1, err=str(exc))
        return fallback_twiml(rt, call_sid, turn, tail, part)
    if first is None and not reply.ends_at(part):  # cancelled: the chunk will never come
        return fallback_twiml(rt, call_sid, turn, tail, part)
    ready = reply.ready_from(part) if first else []
    if tail == "gather":
        ready += rest_of_reply(reply, part + len(ready), ready, GATHER_WHOLE_WAIT_SEC)
    urls = [rt.tts_url(c.name) for c in ready]
    seconds = sum(c.seconds for c in ready)
    said = " ".join(c.text for c in ready if c.text and not c.fallback)
    after = part + len(ready)
    reply.settle(after, min(wait_sec, SETTLE_WAIT_SEC))  # the history first: then listen
    if reply.ends_at(after):
        return ReplyTwiml(listen_twiml(rt, reply.ending or tail, urls, call_sid, turn, said,
                                       fork_of(rt, tail, part)),
                          urls, seconds, False, reply.ending)
    s = rt.settings
    language = s.gather_language if tail == "gather" else None  # heard while it plays
    fork = twiml.start_fork(s.public_base_url, s.signing_key, call_sid, turn) \
        if fork_of(rt, tail, part) == "start" else None
    doc = twiml.continue_reply(s.public_base_url, urls, turn, after, language,
                               gather_digits(rt, call_sid, said) if language else 1, fork)
    return ReplyTwiml(doc, urls, seconds, True)


def rest_of_reply(reply: SpokenReply | StoredReply, after: int, ready: list,
                  wait_sec: float) -> list:
    """The chunks from `after` on, each waited for while `wait_sec` lasts in all, so that a
    reply ready soon is played in one answer, with no continuation's gap."""
    deadline, more = time.monotonic() + wait_sec, []
    while ready and not (more or ready)[-1].fallback and not reply.complete_at(after):
        left = deadline - time.monotonic()
        try:
            if left <= 0 or reply.wait(after, left) is None:
                break
        except TimeoutError:
            break
        got = reply.ready_from(after)
        more += got
        after += len(got)
    return more


def first_reply_twiml(rt: Runtime, call_sid: str, turn: int, tail: str,
                      reply: SpokenReply, wait_sec: float) -> ReplyTwiml:
    """The reply's first answer; when more follows, the continuation webhook will find it."""
    answer = reply_twiml(rt, call_sid, turn, tail, reply, 0, wait_sec)
    if answer.more:
        rt.replies.put(call_sid, turn, tail, reply)
    return answer


def watch_after(rt: Runtime, call_sid: str, turn: int, tail: str, answer: ReplyTwiml) -> None:
    """The watchdog expects the next stream once what this answer plays is over (and, when a
    continuation follows, once it had its time to wait for a chunk). An answer that ends in
    a `<Dial>` hands the call to the owner (the watchdog's claims then find it not streaming);
    one that ends in `<Hangup/>` notes why the call ended."""
    if answer.ending:
        return end_listening(rt, call_sid, answer.ending)
    if tail == "stream":
        extra = CONTINUE_WAIT_SEC if answer.more else 0.0
        rt.watchdog.expect_stream(call_sid, turn, answer.seconds + extra)


def end_listening(rt: Runtime, call_sid: str, ending: str) -> None:
    """The line stops listening: the call goes to the owner's phone, or it hangs up."""
    if ending == "transfer":
        rt.calls.hand_to_owner(call_sid)
        rt.events.emit("TRANSFER", call_sid, to=rt.owner.phone,
                       timeout=rt.owner.dial_timeout)
    else:  # the goodbye to a caller silent MAX_SILENT_TURNS (on a stream): silent-hangup
        silent = rt.calls.ensure(call_sid).get("silent_turns") or 0
        rt.calls.set_outcome(call_sid, "silent-hangup" if silent >= rt.settings.max_silent_turns
                             else "line-hangup")
        rt.events.emit("LINE_HANGUP", call_sid)
