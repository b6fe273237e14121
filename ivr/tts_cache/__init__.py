"""Content-addressed MP3 cache: sha256(engine|voice|text) → static/tts/<key>.mp3, atomic, LRU."""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .. import audio
from ..engines.base import TTS, EngineError

GREETING, FALLBACK, GOODBYE, BEEP, THINKING = (
    "greeting_he.mp3", "fallback_he.mp3", "goodbye_he.mp3", "beep.mp3", "thinking_he.mp3")
ALIASES = frozenset({GREETING, FALLBACK, GOODBYE, BEEP, THINKING})
MP3_MAGIC = (b"ID3", b"\xff\xfb", b"\xff\xf3", b"\xff\xf2", b"\xff\xe3")
DURATIONS_KEPT = 4096  # remembered file durations (least recently asked dropped first)
ULAW_KEPT = 256  # files kept decoded for the stream (~8 KB a second of audio each)


def cache_key(engine: str, voice: str, text: str) -> str:
    return hashlib.sha256(f"{engine}|{voice}|{text}".encode()).hexdigest()


@dataclass
class _KeyLock:
    """The lock of one key being synthesised and how many threads hold or wait for it."""

    lock: threading.Lock
    users: int = 0


class TTSCache:
    """MP3 files Twilio can fetch; each key is synthesised once, even under concurrency."""

    def __init__(self, directory: str | Path, max_mb: int = 500,
                 durations_kept: int = DURATIONS_KEPT):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_mb * 1024 * 1024
        self.lock = threading.Lock()
        self.key_locks: dict[str, _KeyLock] = {}  # only keys being synthesised right now
        self.durations: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self.durations_kept = durations_kept
        self.ulaws: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

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

    def lookup(self, tts: TTS, text: str) -> Path | None:
        """The cached file for this text, touched as recently used, or None."""
        path = self.dir / f"{cache_key(tts.name, tts.voice, text)}.mp3"
        if path.is_file():
            os.utime(path)
            return path
        return None

    def synthesize(self, tts: TTS, text: str) -> Path:
        """Cached file for this text, synthesising it once if missing; EngineError on failure."""
        key = cache_key(tts.name, tts.voice, text)
        path = self.dir / f"{key}.mp3"
        with self._key_lock(key):
            if path.is_file():
                os.utime(path)
                return path
            data = tts.synthesize(text)
            if not data or not data.startswith(MP3_MAGIC):
                raise EngineError(f"{tts.name} TTS returned {len(data or b'')} bytes, not an MP3")
            self.write(path.name, data)
        self.evict()
        return path

    def write(self, name: str, data: bytes) -> Path:
        """Write a file whole: a temp file in the same directory renamed over the name."""
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".tmp-", suffix=".mp3")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.dir / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return self.dir / name

    def alias(self, name: str, source: Path) -> Path:
        """Publish a cached file under a fixed name (greeting_he.mp3, fallback_he.mp3…)."""
        return self.write(name, source.read_bytes())

    def _remembered(self, table: OrderedDict, kept: int, name: str, derive: Callable):
        """`derive(file bytes)` of a cache file, computed once per version of the file (its
        mtime) and kept in `table`, least recently used dropped first; OSError if it is gone."""
        path = self.dir / name
        stamp = path.stat().st_mtime
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
        in memory, so a cached sentence goes out at once."""
        return self._remembered(self.ulaws, ULAW_KEPT, name,
                                lambda data: audio.pcm16_to_ulaw(audio.decode_to_pcm16(data)))

    def ensure_beep(self) -> Path:
        """The beep of last resort, generated (never a shipped file) when missing."""
        path = self.dir / BEEP
        if not path.is_file():
            self.write(BEEP, audio.pcm16_to_mp3(audio.beep_pcm16(400)))
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
