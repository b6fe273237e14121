"""MP3 cache: HMAC(server key, engine|voice|speakable(text)) → static/tts/k_<hex>.mp3; atomic,
LRU, shared."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .. import audio
from ..engines.base import TTS, EngineError
from ..speakable import speakable

GREETING, FALLBACK, GOODBYE, BEEP, THINKING = (
    "greeting_he.mp3", "fallback_he.mp3", "goodbye_he.mp3", "beep.mp3", "thinking_he.mp3")
ALIASES = frozenset({GREETING, FALLBACK, GOODBYE, BEEP, THINKING})
MP3_MAGIC = (b"ID3", b"\xff\xfb", b"\xff\xf3", b"\xff\xf2", b"\xff\xe3")
DURATIONS_KEPT = 4096  # remembered file durations (least recently asked dropped first)
ULAW_KEPT = 256  # files kept decoded for the stream (~8 KB a second of audio each)
BEEP_MS = 400
log = logging.getLogger("ivr")


NAME_PREFIX = "k_"  # keyed names; the unkeyed sha256 names of before are never served
KEYED_NAME = re.compile(NAME_PREFIX + r"[0-9a-f]{64}\.mp3")  # fullmatch


def cache_name(key: bytes, engine: str, voice: str, text: str) -> str:
    """A sentence's public file name: an HMAC of what is said under the server's key, so the
    same sentence has the same name on every instance, but a guessed text (a caller's name)
    cannot be tested by asking for its file."""
    digest = hmac.new(key, f"{engine}|{voice}|{text}".encode(), hashlib.sha256).hexdigest()
    return f"{NAME_PREFIX}{digest}.mp3"


def is_public_name(name: str) -> bool:
    """A name /static/tts serves: a prompt's alias or a keyed sentence name."""
    return name in ALIASES or KEYED_NAME.fullmatch(name) is not None


def version(path: Path) -> tuple[int, int]:
    """Which version of a cache file this is: every write is a new file (a temp file renamed
    over it, a new inode), while a hit only touches its time (the LRU's), not its version."""
    info = path.stat()
    return info.st_ino, info.st_size


@dataclass
class _KeyLock:
    """The lock of one key being synthesised and how many threads hold or wait for it."""

    lock: threading.Lock
    users: int = 0


class TTSCache:
    """MP3 files Twilio can fetch; each key is synthesised once, even under concurrency.

    With `shared` (a blob_store.SharedMedia: PostgreSQL, several instances) every file
    written is also put in the shared table before its URL can go out, a hit makes sure its
    row is there, and a file missing here is taken from the table rather than made again."""

    def __init__(self, directory: str | Path, max_mb: int = 500,
                 durations_kept: int = DURATIONS_KEPT, shared=None, name_key: bytes = b""):
        self.name_key = name_key or secrets.token_bytes(32)  # Settings.tts_name_key: shared
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_mb * 1024 * 1024
        self.lock = threading.Lock()
        self.key_locks: dict[str, _KeyLock] = {}  # only keys being synthesised right now
        self.durations: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self.durations_kept = durations_kept
        self.ulaws: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self.shared = shared
        self.bytes_estimate: int | None = None  # the directory's size, known at the last scan

    @contextmanager
    def _key_lock(self, key: str) -> Iterator[None]:
        """Hold the key's lock; the lock is forgotten when its last user leaves, even on error."""
        with self.lock:
            entry = self.key_locks.setdefault(key, _KeyLock(threading.Lock()))
            entry.users += 1
        try:
            with entry.lock:
                yield
        finally:
            with self.lock:
                entry.users -= 1
                if not entry.users:
                    del self.key_locks[key]

    def path(self, name: str) -> Path:
        return self.dir / name

    def name_of(self, tts: TTS, said: str) -> str:
        """The file name of a text as said (already `speakable`) by this engine and voice."""
        return cache_name(self.name_key, tts.name, tts.voice, said)

    def lookup(self, tts: TTS, text: str) -> Path | None:
        """The cached file for this text (as said), touched as recently used, or None."""
        path = self.dir / self.name_of(tts, speakable(text))
        if path.is_file():
            self._used(path)
            return path
        return None

    def find(self, tts: TTS, text: str) -> Path | None:
        """The cached file for this text (as said): here, or another instance's; else None."""
        found = self.lookup(tts, text)
        if found is None and self.shared is not None:
            name = self.name_of(tts, speakable(text))
            if self.restore(name) is not None and self.path(name).is_file():
                found = self.path(name)
        return found

    def live(self, tts: TTS, text: str) -> LiveSynthesis:
        """The text's synthesis as the engine makes it (in words, as `synthesize`); kept
        as the text's cache file once it is whole."""
        return LiveSynthesis(self, tts, speakable(text))

    def keep(self, tts: TTS, text: str, ulaw: bytes) -> Path | None:
        """A streamed text's whole μ-law, kept as its cache file (MP3, as every cache file, so
        it plays the same in every REPLY_MODE) and remembered decoded, so the next time it is a
        hit that goes out at once; None (logged) if it cannot be encoded."""
        name = self.name_of(tts, text)
        try:
            path = self.write(name, audio.pcm16_to_mp3(audio.ulaw_to_pcm16(ulaw)))
            stamp = version(path)
        except Exception as exc:  # noqa: BLE001 - the caller heard it; only the cache loses
            log.error("TTS_CACHE_ERR name=%s err=%r", name, exc)
            return None
        with self.lock:
            self.ulaws[name] = (stamp, ulaw)
            self.ulaws.move_to_end(name)
            while len(self.ulaws) > ULAW_KEPT:
                self.ulaws.popitem(last=False)
        return path

    def _used(self, path: Path) -> None:
        """A hit: recent again for the LRU, and in the shared table (refreshed, or put back)."""
        os.utime(path)
        if self.shared is not None:
            self._share(self.shared.touch, path.name, "tts", path.read_bytes)

    def synthesize(self, tts: TTS, text: str) -> Path:
        """Cached file for this text, synthesised once if missing, in words ("150 ₪" → "מאה
        וחמישים שקלים": the key is of what is said); EngineError on failure."""
        text = speakable(text)
        path = self.dir / self.name_of(tts, text)
        with self._key_lock(path.name):
            if path.is_file():
                self._used(path)
                return path
            if self.restore(path.name) is not None and path.is_file():  # another instance's
                return path
            data = tts.synthesize(text)
            if not data or not data.startswith(MP3_MAGIC):
                raise EngineError(f"{tts.name} TTS returned {len(data or b'')} bytes, not an MP3")
            self.write(path.name, data)
        return path

    def _evict_if_full(self, added: int) -> None:
        """Count a file written; scan the directory (a stat of every file) only when the count
        says the budget may be exceeded, not after every write (a rewrite counts twice: an
        over-estimate costs one scan, which resets it)."""
        with self.lock:
            if self.bytes_estimate is not None:
                self.bytes_estimate += added
            full = self.bytes_estimate is None or self.bytes_estimate > self.max_bytes
        if full:
            self.evict()  # the first time, to learn the size; then whenever it is over

    def write(self, name: str, data: bytes, share: bool = True) -> Path:
        """Write a file whole: a temp file in the same directory renamed over the name; then
        (`share`) into the shared table, so it answers on every instance once this returns."""
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".tmp-", suffix=".mp3")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.dir / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        if share and self.shared is not None:
            self._share(self.shared.put, name, "tts", data)
        self._evict_if_full(len(data))
        return self.dir / name

    def _share(self, action: Callable, name: str, *args) -> None:
        """A write to the shared table; a failure is logged: the file still plays from here."""
        try:
            action(name, *args)
        except Exception as exc:  # noqa: BLE001 - the local file is what this call needs
            log.error("MEDIA_SHARE_ERR name=%s err=%r", name, exc)

    def restore(self, name: str) -> bytes | None:
        """A file missing here, from the shared table (None when nobody has it). A
        content-addressed file is kept here from then on; an alias is not: its text may
        differ between instances (a changed AI_GREETING_HE), so this instance's own prompt
        is still made from its own text when it needs one."""
        if self.shared is None:
            return None
        try:
            data = self.shared.get(name)
        except Exception as exc:  # noqa: BLE001 - as if nobody had it
            log.error("MEDIA_SHARE_ERR name=%s err=%r", name, exc)
            return None
        if data is not None and name not in ALIASES and data.startswith(MP3_MAGIC):
            self.write(name, data, share=False)
        return data

    def share_aliases(self) -> None:
        """Put the aliases this instance has (made before sharing, perhaps) in the shared
        table when it has none of that name: a prompt's URL answers on every instance."""
        if self.shared is not None:
            for alias in sorted(ALIASES):
                path = self.dir / alias
                if path.is_file():
                    self._share(self.shared.touch, alias, "tts", path.read_bytes)

    def alias(self, name: str, source: Path) -> Path:
        """Publish a cached file under a fixed name (greeting_he.mp3, fallback_he.mp3…)."""
        return self.write(name, source.read_bytes())

    def _remembered(self, table: OrderedDict, kept: int, name: str, derive: Callable):
        """`derive(file bytes)` of a cache file, computed once per version of the file (see
        `version`) and kept in `table`, least recently used dropped first; OSError if gone."""
        path = self.dir / name
        stamp = version(path)
        with self.lock:
            known = table.get(name)
            if known and known[0] == stamp:
                table.move_to_end(name)
                return known[1]
        value = derive(path.read_bytes())
        with self.lock:
            table[name] = (stamp, value)
            table.move_to_end(name)
            while len(table) > kept:
                table.popitem(last=False)
        return value

    def duration(self, name: str) -> float:
        """Seconds of audio in a cache file (0.0 when it is missing or undecodable)."""
        try:  # from the MP3's frame headers: no ffmpeg
            return self._remembered(self.durations, self.durations_kept, name,
                                    audio.mp3_duration_sec)
        except OSError:
            return 0.0

    def ulaw(self, name: str) -> bytes:
        """A cache file as 8 kHz μ-law, what a stream sends: decoded once (ffmpeg), then kept
        in memory, so a cached sentence goes out at once. The beep is made, not decoded: the
        sound of last resort needs no program."""
        if name == BEEP:
            return audio.pcm16_to_ulaw(audio.beep_pcm16(BEEP_MS))
        return self._remembered(self.ulaws, ULAW_KEPT, name,
                                lambda data: audio.pcm16_to_ulaw(audio.decode_to_pcm16(data)))

    def ensure_beep(self) -> Path:
        """The beep of last resort, generated (never a shipped file) when missing: an MP3
        encoded in process, so the line starts without ffmpeg."""
        path = self.dir / BEEP
        if not path.is_file():
            self.write(BEEP, audio.pcm16_to_mp3(audio.beep_pcm16(BEEP_MS)))
        return path

    def last_resort(self) -> Path:
        """fallback_he.mp3 when it exists, else the beep."""
        fallback = self.dir / FALLBACK
        return fallback if fallback.is_file() else self.ensure_beep()

    def evict(self) -> int:
        """Delete least recently used files over the budget; aliases are never evicted."""
        files = [p for p in self.dir.glob("*.mp3") if p.name not in ALIASES]
        stats = {p: p.stat() for p in files if p.is_file()}
        total = sum(s.st_size for s in stats.values()) + sum(
            (self.dir / a).stat().st_size for a in ALIASES if (self.dir / a).is_file())
        removed = 0
        for path in sorted(stats, key=lambda p: stats[p].st_mtime):
            if total <= self.max_bytes:
                break
            path.unlink(missing_ok=True)
            total -= stats[path].st_size
            removed += 1
        with self.lock:
            self.bytes_estimate = total
        return removed

    def purge_unused(self, before: float) -> int:
        """Delete files not used since `before` (a hit touches a file, as the LRU uses it) and
        leftover temporary files; the aliases are kept. Returns how many were deleted."""
        removed = 0
        for path in self.dir.glob("*.mp3"):  # also matches .tmp-*.mp3
            if path.name in ALIASES:
                continue
            try:
                if path.stat().st_mtime >= before:
                    continue
                path.unlink()
            except OSError:  # gone meanwhile (evicted, or another purge)
                continue
            removed += 1
            with self.lock:
                self.durations.pop(path.name, None)
                self.ulaws.pop(path.name, None)
        return removed


class LiveSynthesis:
    """One text synthesised as a stream: iterate it for the μ-law as the engine makes it; once
    whole it is the text's cache file (`path`). `close()` early cancels it and keeps nothing;
    an engine that streamed no audio, or other words than the text, leaves nothing kept."""

    def __init__(self, cache: TTSCache, tts: TTS, text: str):
        self.cache, self.tts, self.text = cache, tts, text
        self.path: Path | None = None
        self.pieces = self._pieces()

    def __iter__(self) -> Iterator[bytes]:
        return self.pieces

    def close(self) -> None:
        self.pieces.close()

    def _pieces(self) -> Iterator[bytes]:
        made: list[bytes] = []
        stream = self.tts.live(self.text)
        try:
            for piece in stream:
                if piece:
                    made.append(piece)
                yield piece  # even empty: the reader checks whether to stop
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()  # an engine's generator: its own cancel
        if not made:
            raise EngineError(f"{self.tts.name} TTS streamed no audio")
        self.path = self.cache.keep(self.tts, self.text, b"".join(made))
