"""Every thread of a worker process besides the event loop: its name, its size, what runs on it."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass


@dataclass(frozen=True)
class Pool:
    """A kind of thread: `size` threads named `name…` (0: one thread per job, started anew)."""

    name: str
    size: int
    runs: str


POOLS = {pool.name: pool for pool in (
    # the request lanes (ivr/lanes.py, chosen by route in ivr/asgi.py)
    Pool("calls", 16, "incoming_call, call_status, stream_status, /healthz, /livez, /metrics: "
                      "quick, never behind turns"),
    Pool("turns", 32, "handle_gather, handle_recording, dial_result, stream_ended: each waits "
                      "for its reply's first chunks (up to Twilio's 15 s)"),
    Pool("continuations", 8, "reply_continue: waits for a reply's next chunk (8 beyond "
                             "CONTINUE_MAX_WAITING: those over the cap answer at once)"),
    Pool("static", 4, "GET/HEAD /static/…: the <Play> MP3s, never behind webhooks"),
    Pool("other", 4, "the inspector and any other path"),
    # the socket side
    Pool("stream-start", 4, "records a stream's start in the store, so frames keep flowing "
                            "and a start never waits behind turns"),
    Pool("turn", 16, "a stream's turn once its utterance ended (the dialog: ASR, the reply, "
                     "its delivery by REPLY_MODE), what the caller heard after a barge-in, "
                     "the hang-up after a goodbye, a fork's barge-in, the last words"),
    # the dialog (both sides)
    Pool("engine", 32, "each engine call (ASR, LLM, TTS), so its stage timeout is kept "
                       "whatever the client does"),
    Pool("reply", 64, "a reply being written: the LLM's tokens cut into chunks, each chunk's "
                      "synthesis, the turn added to the history"),
    Pool("llm", 0, "reading one reply's tokens from the LLM client"),
    Pool("live", 0, "one live recognition (ASR.live) fed while the caller speaks"),
    Pool("mp3-feed", 0, "a streamed MP3's bytes handed to its decoder as they arrive"),
    Pool("realtime-read", 0, "a Realtime speech session's events (one per kept session)"),
    # keeping the line alive, telling the owner, keeping the record
    Pool("watchdog", 32, "the due checks a sweep claimed: move a stuck call to <Record>, "
                         "replay a stalled turn"),
    Pool("notify-rows", 1, "a notification's row written first, in order"),
    Pool("notify-summary", 4, "the call's summary for the owner (an engine call)"),
    Pool("notify-sms", 4, "sending SMS, so a stalled SMTP server never delays one"),
    Pool("notify-email", 4, "sending e-mail"),
    Pool("store-writer", 1, "the store's single writer: deferred rows in batches, retried while "
                            "the database is locked"),
    Pool("recording-fetch", 0, "a <Record> recording fetched from Twilio for the owner"),
    Pool("engine-probe", 0, "doctor --engines: one real request per engine"),
)}


def size(name: str) -> int:
    return POOLS[name].size


MADE: dict[str, weakref.WeakSet] = {}  # the executors made of each pool, while they live
MADE_LOCK = threading.Lock()


def executor(name: str, threads: int | None = None) -> ThreadPoolExecutor:
    """The pool `name` (its threads carry the name: py-spy and tracebacks say which)."""
    pool = ThreadPoolExecutor(threads or size(name), thread_name_prefix=name)
    with MADE_LOCK:
        MADE.setdefault(name, weakref.WeakSet()).add(pool)
    return pool


def queued() -> dict[str, int]:
    """Jobs waiting for a thread, by pool: each pool this process made an executor of, summed
    over its executors (a lane's queue included)."""
    with MADE_LOCK:
        made = {name: list(pools) for name, pools in MADE.items()}
    return {name: sum(pool._work_queue.qsize() for pool in pools  # the jobs not yet taken
                      if not pool._shutdown)  # (a closed one's queue holds its stop sign)
            for name, pools in made.items()}


def start(name: str, target: Callable[..., object], *args, tag: str = "") -> threading.Thread:
    """One daemon thread of kind `name` (a pool of size 0, or the store's writer)."""
    assert name in POOLS, name
    thread = threading.Thread(target=target, args=args, daemon=True,
                              name=f"{name}-{tag}" if tag else name)
    thread.start()
    return thread
