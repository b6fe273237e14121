"""Replies in chunks written through to the store: a continuation on any instance plays them."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from sqlalchemy import and_, delete, select, update

from .reply import Chunk
from .schema import reply_parts, shared_replies
from .store import Store

ENDINGS = ("hangup", "transfer")  # a reply's tail that is not a way of listening
POLL_SEC = 0.1  # how often a continuation re-reads a reply another instance is writing


class ReplyLog:
    """The store's side of the replies continuation webhooks play: written by the instance
    that writes a reply (`observer`), read by whichever instance Twilio asks (`find`)."""

    def __init__(self, store: Store):
        self.store = store

    def observer(self, call_sid: str, turn: int, tail: str) -> ReplyWriter:
        """Register the reply before the answer that points at its continuation goes out (one
        short write), and return what writes its progress: by the store's background writer,
        in order, off the writer's path; a continuation polls for what it needs."""
        statement = self.store.upsert(
            shared_replies, {"call_sid": call_sid, "turn": turn, "tail": tail, "parts": None,
                             "cancelled": False, "created_at": time.time()},
            {"tail": tail, "parts": None, "cancelled": False})
        try:
            with self.store.writing() as conn:
                conn.execute(statement)
        except Exception as exc:  # noqa: BLE001 - this instance still plays it; retried later
            logging.getLogger("ivr").error("REPLY_SHARE_ERR call=%s err=%r", call_sid, exc)
            self.store.defer(statement)
        return ReplyWriter(self.store, call_sid, turn)

    def find(self, call_sid: str, turn: int) -> tuple[str, StoredReply] | None:
        """How the call listens after the reply, and the reply as the store has it; None when
        no instance registered it."""
        with self.store.engine.connect() as conn:
            tail = conn.execute(select(shared_replies.c.tail).where(
                _reply(shared_replies, call_sid, turn))).scalar()
        return (tail, StoredReply(self.store, call_sid, turn)) if tail is not None else None

    def purge_before(self, ts: float) -> int:
        """Delete replies (with their parts) registered before `ts`; how many rows."""
        with self.store.engine.begin() as conn:
            return sum(conn.execute(delete(table).where(table.c.created_at < ts)).rowcount
                       for table in (reply_parts, shared_replies))


def _reply(table, call_sid: str, turn: int):
    return and_(table.c.call_sid == call_sid, table.c.turn == turn)


class ReplyWriter:
    """A SpokenReply's observer: each ready chunk and the reply's end become rows."""

    def __init__(self, store: Store, call_sid: str, turn: int):
        self.store, self.call_sid, self.turn = store, call_sid, turn

    def part(self, index: int, chunk: Chunk) -> None:
        values = {"name": chunk.name, "seconds": chunk.seconds, "fallback": chunk.fallback}
        self.store.defer(self.store.upsert(
            reply_parts, {"call_sid": self.call_sid, "turn": self.turn, "part": index,
                          "created_at": time.time(), **values}, values))

    def end(self, parts: int, cancelled: bool, ending: str) -> None:
        """The reply's length; an ending (hang up, transfer) replaces how the call listens."""
        self.store.defer(update(shared_replies).where(
            _reply(shared_replies, self.call_sid, self.turn)).values(
                parts=parts, cancelled=cancelled, **({"tail": ending} if ending else {})))


class StoredReply:
    """A reply another instance is writing, read from the store with the interface of a
    SpokenReply that replies.reply_twiml uses (wait, ready_from, settle, ends_at, cancel)."""

    def __init__(self, store: Store, call_sid: str, turn: int):
        self.store, self.call_sid, self.turn = store, call_sid, turn
        self.chunks: dict[int, Chunk] = {}
        self.parts: int | None = None
        self.cancelled = False
        self.ending = ""  # "hangup" or "transfer" once the writer said so

    def _read(self) -> None:
        with self.store.engine.connect() as conn:
            head = conn.execute(select(shared_replies.c.parts, shared_replies.c.cancelled,
                                       shared_replies.c.tail)
                                .where(_reply(shared_replies, self.call_sid, self.turn))).first()
            rows = conn.execute(select(reply_parts).where(
                _reply(reply_parts, self.call_sid, self.turn))).mappings().all()
        self.parts, self.cancelled = (head[0], bool(head[1])) if head else (None, True)
        self.ending = head[2] if head and head[2] in ENDINGS else ""
        self.chunks = {r["part"]: Chunk("", Path(r["name"]), r["seconds"] or 0.0,
                                        r["fallback"] or "")
                       for r in rows if self.parts is None or r["part"] < self.parts}

    def wait(self, index: int, timeout: float) -> Chunk | None:
        """Chunk `index` once its row is there (re-read every POLL_SEC); None when the reply
        ended before it; TimeoutError after `timeout` seconds (its writer is slow, or gone)."""
        deadline = time.monotonic() + timeout
        while True:
            self._read()
            if index in self.chunks:
                return self.chunks[index]
            if self.ends_at(index) or self.cancelled:
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"chunk {index + 1} not in the store in {timeout:g} s")
            time.sleep(min(POLL_SEC, left))

    def ready_from(self, index: int) -> list[Chunk]:
        """The chunks from `index` on in the last read, up to the first missing one (or the
        fallback sound that ends the reply)."""
        ready = []
        while index in self.chunks:
            ready.append(self.chunks[index])
            if self.chunks[index].fallback:
                break
            index += 1
        return ready

    def settle(self, index: int, timeout: float) -> None:
        """Nothing to wait for: the writer stores the reply's end once it closed it."""

    def ends_at(self, index: int) -> bool:
        """True when no chunk follows the first `index` ones (as of the last read)."""
        return self.parts is not None and index >= self.parts

    def complete_at(self, index: int) -> bool:
        """As ends_at: the writer stores the reply's end once it closed it."""
        return self.ends_at(index)

    def cancel(self) -> None:
        """A continuation gave up on it: later ones do not wait again."""
        self.store.defer(update(shared_replies).where(
            _reply(shared_replies, self.call_sid, self.turn)).values(cancelled=True))
