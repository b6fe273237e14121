"""Media any instance can serve: MP3s and recordings kept as rows of the shared database."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Connection

from .schema import media
from .store import Store

TOUCH_EVERY_SEC = 3600.0  # a name's used_at is refreshed at most this often by one process
TOUCHED_KEPT = 8192  # names whose last refresh this process remembers
STATEMENT_TIMEOUT_MS = 2000  # a write the database cannot take in this time fails (logged)
PURGE_BATCH = 200


def shared_media(store: Store) -> SharedMedia | None:
    """MP3s and recordings in the database when it is PostgreSQL: the deployment where several
    instances behind a load balancer share it, and Twilio fetches a URL from any of them.
    SQLite means one process, whose files are all there is: None."""
    return SharedMedia(store) if store.engine.dialect.name == "postgresql" else None


class SharedMedia:
    """Rows of the `media` table by file name. A `put` is there when it returns (an MP3 whose
    URL goes out next), or later (a recording nobody fetches yet); `touch` keeps a used
    row from retention and restores one that is missing."""

    def __init__(self, store: Store):
        self.store = store
        self.lock = threading.Lock()
        self.touched: OrderedDict[str, float] = OrderedDict()

    @contextmanager
    def _begin(self) -> Iterator[Connection]:
        """A transaction whose statements give up after STATEMENT_TIMEOUT_MS on PostgreSQL."""
        with self.store.engine.begin() as conn:
            if self.store.engine.dialect.name == "postgresql":
                conn.exec_driver_sql(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}")
            yield conn

    def put(self, name: str, kind: str, data: bytes, later: bool = False) -> None:
        """Keep `data` under `name`, replacing a row of that name."""
        now = time.time()
        statement = self.store.upsert(
            media, {"name": name, "kind": kind, "data": data, "created_at": now, "used_at": now},
            {"kind": kind, "data": data, "used_at": now})
        if later:
            self.store.defer(statement)
            return
        with self._begin() as conn:
            conn.execute(statement)
        self._remember(name, now)

    def get(self, name: str) -> bytes | None:
        """The bytes kept under `name`, or None."""
        with self.store.engine.connect() as conn:
            data = conn.execute(select(media.c.data).where(media.c.name == name)).scalar()
        return bytes(data) if data is not None else None

    def touch(self, name: str, kind: str, read: Callable[[], bytes]) -> None:
        """`name` was used here: refresh its row's used_at (once per TOUCH_EVERY_SEC in this
        process); a missing row (made before sharing, or purged) is put from `read()` at
        once, so that a URL about to go out answers on every instance."""
        now = time.time()
        with self.lock:
            last = self.touched.get(name)
        if last is not None and now - last < TOUCH_EVERY_SEC:
            return
        with self._begin() as conn:
            found = conn.execute(update(media).where(media.c.name == name)
                                 .values(used_at=now)).rowcount
        if found:
            self._remember(name, now)
        else:
            self.put(name, kind, read())

    def _remember(self, name: str, when: float) -> None:
        with self.lock:
            self.touched[name] = when
            self.touched.move_to_end(name)
            while len(self.touched) > TOUCHED_KEPT:
                self.touched.popitem(last=False)

    def purge_before(self, ts: float, keep: Iterable[str] = ()) -> int:
        """Delete rows not used since `ts` (the files they mirror go by the same rule), except
        the names in `keep` (the prompts' aliases); in short batches. How many."""
        old = (media.c.used_at < ts) & media.c.name.not_in(list(keep))
        removed = 0
        while True:
            with self.store.engine.connect() as conn:
                names = list(conn.execute(select(media.c.name).where(old)
                                          .limit(PURGE_BATCH)).scalars())
            if not names:
                return removed
            with self.store.engine.begin() as conn:  # re-checked: a name may be used since
                removed += conn.execute(delete(media).where(old, media.c.name.in_(names))
                                        ).rowcount
            with self.lock:
                for name in names:
                    self.touched.pop(name, None)

