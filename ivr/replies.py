"""A streamed reply as TwiML: the chunks ready so far, then a continuation or the next turn."""

from __future__ import annotations

from dataclasses import dataclass

from . import twiml
from .runtime import Runtime
from .shared_replies import StoredReply
from .spoken import SpokenReply
from .tts_cache import FALLBACK

CONTINUE_WAIT_SEC = 11.0  # a continuation waits this long for its chunk: Twilio allows 15 s
SETTLE_WAIT_SEC = 2.0  # a reply whose last chunk is ready waits this long at most for its close


@dataclass
class ReplyTwiml:
    """One answer of a reply: the TwiML, the URLs it plays and their seconds of audio, whether
    more follows."""

    doc: str
    urls: list[str]
    seconds: float
    more: bool
    ending: str = ""  # the reply ends the call's listening: "hangup" or "transfer"


def listen_twiml(rt: Runtime, tail: str, plays: str | list[str] = "", call_sid: str = "",
                 turn: int = 0) -> str:
    """Play `plays`, then listen the way the call listens (`tail`): a `<Record>`, a `<Gather>`,
    or a fresh stream for `call_sid`'s `turn`; or end there: `<Hangup/>` ("hangup"), or
    `<Dial>` the owner ("transfer")."""
    s = rt.settings
    if tail == "hangup":
        return twiml.goodbye(plays)
    if tail == "transfer":
        return twiml.dial_owner(s.public_base_url, rt.owner.phone, rt.owner.dial_timeout,
                                "transfer", plays)
    if tail == "stream":
        return twiml.stream_turn(s.public_base_url, s.signing_key, call_sid, turn, plays)
    if tail == "gather":
        return twiml.gather_turn(s.public_base_url, s.gather_language, plays)
    return twiml.record_turn(s.public_base_url, plays)


def fallback_twiml(rt: Runtime, call_sid: str, turn: int, tail: str) -> ReplyTwiml:
    """The fallback phrase, then listen again: what a reply that cannot go on ends with."""
    name = rt.prompts.name(FALLBACK)
    url = rt.tts_url(name)
    return ReplyTwiml(listen_twiml(rt, tail, [url], call_sid, turn), [url],
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
        return fallback_twiml(rt, call_sid, turn, tail)
    if first is None and not reply.ends_at(part):  # cancelled: the chunk will never come
        return fallback_twiml(rt, call_sid, turn, tail)
    ready = reply.ready_from(part) if first else []
    urls = [rt.tts_url(c.name) for c in ready]
    seconds = sum(c.seconds for c in ready)
    after = part + len(ready)
    reply.settle(after, min(wait_sec, SETTLE_WAIT_SEC))  # the history first: then listen
    if reply.ends_at(after):
        return ReplyTwiml(listen_twiml(rt, reply.ending or tail, urls, call_sid, turn), urls,
                          seconds, False, reply.ending)
    doc = twiml.continue_reply(rt.settings.public_base_url, urls, turn, after)
    return ReplyTwiml(doc, urls, seconds, True)


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
    else:
        rt.calls.set_outcome(call_sid, "line-hangup")
        rt.events.emit("LINE_HANGUP", call_sid)
