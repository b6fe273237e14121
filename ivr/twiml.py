"""Pure TwiML builders for every turn of a call, plus URL helpers; no I/O."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlsplit, urlunsplit

from twilio.twiml.voice_response import Connect, Gather, Start, Stop, VoiceResponse

from .config import is_loopback_host

STREAM_PATH = "/ws/twilio-media"
SUBPROTOCOL = "audio.twilio.com"  # Media Streams' WebSocket subprotocol
RECORD_MAX_SEC = 20
RECORD_SILENCE_SEC = 2
GATHER_TIMEOUT_SEC = 5
CONTINUE_GATHER_TIMEOUT_SEC = 1  # Twilio's least: a continuation listens this long between parts


def abs_url(base: str, path: str) -> str:
    """Join the public base URL and a path with exactly one slash between them."""
    return base.rstrip("/") + "/" + path.lstrip("/")


def dial_url(url: str) -> str:
    """The URL to open for a stream URL: wss:// to a loopback host is dialled as plain ws://
    (there is no TLS terminator locally; the emulator and the doctor do this)."""
    parts = urlsplit(url)
    if parts.scheme == "wss" and is_loopback_host(parts.hostname):
        return urlunsplit(("ws",) + tuple(parts[1:]))
    return url


def stream_url(base: str) -> str:
    """The wss:// URL of the media stream (Twilio accepts only wss and drops query strings)."""
    host = urlsplit(base).netloc
    return f"wss://{host}{STREAM_PATH}"


def stream_token(key: str, call_sid: str, turn: int) -> str:
    """HMAC of call_sid and turn, sent as a Stream Parameter and checked by the WebSocket."""
    message = f"{call_sid}:{turn}".encode()
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()[:32]


def check_stream_token(key: str, call_sid: str, turn: int, token: str) -> bool:
    """Constant-time check of a Stream `token` Parameter."""
    return hmac.compare_digest(stream_token(key, call_sid, turn), token or "")


def _connect(base: str, key: str, call_sid: str, turn: int) -> Connect:
    """The `<Connect><Stream>` of `turn`; its action names the turn, so that a request for an
    interrupted action that newer TwiML replaced is told apart (Twilio keeps an action's
    query, unlike a Stream url's)."""
    connect = Connect(action=abs_url(base, f"/webhook/stream_ended?turn={turn}"), method="POST")
    stream = connect.stream(url=stream_url(base),
                            status_callback=abs_url(base, "/webhook/stream_status"),
                            status_callback_method="POST")
    stream.parameter(name="call_sid", value=call_sid)
    stream.parameter(name="turn", value=str(turn))
    stream.parameter(name="token", value=stream_token(key, call_sid, turn))
    return connect


def fork_name(turn: int) -> str:
    """The name of the fork that hears the caller over the Plays before `turn`'s stream."""
    return f"listen-{turn}"


def start_fork(base: str, key: str, call_sid: str, turn: int) -> Start:
    """`<Start><Stream>`: a one-way fork of the caller's audio, heard while the `<Play>`s
    after it run (so the line hears a caller who speaks over them); its Parameters are those
    of `turn`'s stream, and `fork`."""
    start = Start()
    stream = start.stream(name=fork_name(turn), url=stream_url(base))
    stream.parameter(name="call_sid", value=call_sid)
    stream.parameter(name="turn", value=str(turn))
    stream.parameter(name="token", value=stream_token(key, call_sid, turn))
    stream.parameter(name="fork", value="1")
    return start


def stop_fork(turn: int) -> Stop:
    """`<Stop><Stream name>`: the fork ends (before `turn`'s own stream hears the caller)."""
    stop = Stop()
    stop.stream(name=fork_name(turn))
    return stop


def plays(play_url: str | list[str]) -> list[str]:
    """One URL or several (a reply's chunks) as a list; "" is none."""
    return [play_url] if isinstance(play_url, str) and play_url else list(play_url or [])


def _play_all(parent, play_url: str | list[str]) -> None:
    for url in plays(play_url):
        parent.play(url)


def stream_turn(base: str, key: str, call_sid: str, turn: int,
                play_url: str | list[str] = "", fork_starts: bool = False,
                fork_stops: bool = False) -> str:
    """Optional `<Play>`s then `<Connect><Stream>`: the first turn and every ping-pong turn.
    `fork_starts`: a fork hears the caller over the Plays; `fork_stops`: the fork (started
    here or by an earlier part of the reply) ends before the stream."""
    response = VoiceResponse()
    if fork_starts:
        response.append(start_fork(base, key, call_sid, turn))
    _play_all(response, play_url)
    if fork_stops:
        response.append(stop_fork(turn))
    response.append(_connect(base, key, call_sid, turn))
    return str(response)


def record_turn(base: str, play_url: str | list[str] = "") -> str:
    """Optional `<Play>`s, `<Record>` to handle_recording, a `<Redirect>` for empty ones."""
    response = VoiceResponse()
    _play_all(response, play_url)
    target = abs_url(base, "/webhook/handle_recording")
    response.record(action=target, method="POST", max_length=RECORD_MAX_SEC,
                    timeout=RECORD_SILENCE_SEC, play_beep=False, trim="trim-silence")
    response.redirect(target, method="POST")
    return str(response)


def _gather(base: str, language: str, num_digits: int,
            timeout: int = GATHER_TIMEOUT_SEC) -> Gather:
    """`<Gather input="speech dtmf">` (Twilio recognises) to handle_gather: `num_digits` 1
    answers a menu key at once; 0 takes keys until `#` (a phone number)."""
    extra = {"num_digits": num_digits} if num_digits else {}
    return Gather(input="speech dtmf", language=language,
                  action=abs_url(base, "/webhook/handle_gather"), method="POST",
                  speech_timeout="auto", timeout=timeout, finish_on_key="#", **extra)


def gather_turn(base: str, language: str, play_url: str | list[str] = "",
                num_digits: int = 1) -> str:
    """The `<Gather>` around the prompt, then a Redirect (nothing heard: handle_gather)."""
    response = VoiceResponse()
    gather = _gather(base, language, num_digits)
    _play_all(gather, play_url)
    response.append(gather)
    response.redirect(abs_url(base, "/webhook/handle_gather"), method="POST")
    return str(response)


def continue_reply(base: str, play_url: str | list[str], turn: int, part: int,
                   gather_language: str | None = None, num_digits: int = 1,
                   fork: Start | None = None) -> str:
    """The reply's chunks ready so far, then a `<Redirect>` for the next ones (`part` is the
    index of the first chunk still to play). With `gather_language` (a call that listens by
    `<Gather>`) the chunks play inside a `<Gather>`, so the caller who speaks or presses a key
    over them is heard; silent, it listens CONTINUE_GATHER_TIMEOUT_SEC before going on.
    `fork` (a stream call's first part): it hears the caller over this part and the next."""
    response = VoiceResponse()
    if fork is not None:
        response.append(fork)
    if gather_language is None:
        _play_all(response, play_url)
    else:
        gather = _gather(base, gather_language, num_digits, CONTINUE_GATHER_TIMEOUT_SEC)
        _play_all(gather, play_url)
        response.append(gather)
    response.redirect(abs_url(base, f"/webhook/reply_continue?turn={turn}&part={part}"),
                      method="POST")
    return str(response)


def hold(play_url: str, seconds: int) -> str:
    """`<Play>` a filler, then `<Pause>` until a calls.update brings the reply."""
    response = VoiceResponse()
    response.play(play_url)
    response.pause(length=seconds)
    return str(response)


def goodbye(play_url: str | list[str] = "", fork_stops: int = 0) -> str:
    """Optional goodbye `<Play>`s and `<Hangup/>` (`fork_stops`: that turn's fork ends first:
    the caller cannot talk the line out of its goodbye once it is said)."""
    response = VoiceResponse()
    _play_all(response, play_url)
    if fork_stops:
        response.append(stop_fork(fork_stops))
    response.hangup()
    return str(response)


def dial_owner(base: str, phone: str, timeout: int, why: str,
               play_url: str | list[str] = "", fork_stops: int = 0) -> str:
    """Optional `<Play>`s, then `<Dial>` the owner; Twilio asks dial_result how it went (`why`:
    ring_first or transfer), and the line takes the call back unless the owner answered.
    `fork_stops`: the turn whose fork (started by an earlier part of the reply) ends before
    the Dial, so nothing the caller says to the owner is taken for a barge-in."""
    response = VoiceResponse()
    _play_all(response, play_url)
    if fork_stops:
        response.append(stop_fork(fork_stops))
    dial = response.dial(timeout=timeout, method="POST",
                         action=abs_url(base, f"/webhook/dial_result?why={why}"))
    dial.number(phone)
    return str(response)


def empty() -> str:
    """`<Response/>`: nothing more to do (the call is ending)."""
    return str(VoiceResponse())
