"""The MP3 cache: content keys, whole files, one synthesis per key, LRU, aliases, prewarm, purge."""

import io
import os
import threading
import time

import pytest

from ivr.engines.base import TTS, EngineError
from ivr.engines.scripted import ScriptedLLM
from ivr.tts_cache import (
    ALIASES,
    BEEP,
    FALLBACK,
    GREETING,
    MP3_MAGIC,
    TTSCache,
    cache_name,
)
from ivr.tts_cache.prompts import Prompts, prewarm, prompt_texts, read_phrases

from .conftest import make_settings


class CountingTTS(TTS):
    name, voice = "counting", "v1"

    def __init__(self, delay=0.0, size=1000, data=None):
        self.calls, self.delay, self.size, self.data = 0, delay, size, data
        self.texts: list[str] = []  # what the engine was given, in order
        self.lock = threading.Lock()

    def synthesize(self, text):
        with self.lock:
            self.calls += 1
            self.texts.append(text)
        time.sleep(self.delay)
        return self.data if self.data is not None else b"ID3" + b"\0" * self.size


def test_the_name_is_an_hmac_of_engine_voice_and_text_under_the_servers_key(tmp_path):
    import hashlib
    key = b"k" * 32
    cache = TTSCache(tmp_path, name_key=key)
    path = cache.synthesize(CountingTTS(), "שלום")
    assert path.name == cache_name(key, "counting", "v1", "שלום")
    assert path.name.startswith("k_") and len(path.name) == len("k_") + 64 + len(".mp3")
    assert cache_name(key, "counting", "v2", "שלום") != path.name
    assert cache_name(b"other" * 8, "counting", "v1", "שלום") != path.name
    guessed = hashlib.sha256("counting|v1|שלום".encode()).hexdigest()
    assert guessed not in path.name  # a text cannot be tested by computing its name


def test_the_same_key_names_a_sentence_alike_in_another_cache(tmp_path):
    key = b"shared by every instance--------"
    one = TTSCache(tmp_path / "a", name_key=key).synthesize(CountingTTS(), "שלום")
    two = TTSCache(tmp_path / "b", name_key=key).synthesize(CountingTTS(), "שלום")
    assert one.name == two.name


def test_the_key_and_the_engine_get_the_text_as_said_so_digits_and_words_share_a_file(tmp_path):
    cache, tts = TTSCache(tmp_path), CountingTTS()
    said = "פתוחים שמונה בבוקר עד שש בערב"
    path = cache.synthesize(tts, "פתוחים 8:00-18:00")
    assert path.name == cache.name_of(tts, said)
    assert tts.texts == [said]
    assert cache.lookup(tts, "פתוחים 8:00-18:00") == path == cache.synthesize(tts, said)
    assert tts.calls == 1


def test_prompts_and_prewarm_synthesise_the_text_as_said(tmp_path):
    cache, tts = TTSCache(tmp_path), CountingTTS()
    assert Prompts(cache, tts, {GREETING: "פתוחים 8:00-18:00"}).name(GREETING) == GREETING
    prewarm(cache, tts, None, make_settings(tmp_path), ["עולה 150 ₪"], out=io.StringIO())
    assert tts.texts[0] == "פתוחים שמונה בבוקר עד שש בערב"
    assert "עולה מאה וחמישים שקלים" in tts.texts and "עולה 150 ₪" not in tts.texts


def test_one_synthesis_per_key_under_concurrency(tmp_path):
    cache, tts = TTSCache(tmp_path), CountingTTS(delay=0.2)
    paths = []
    threads = [threading.Thread(target=lambda: paths.append(cache.synthesize(tts, "אותו משפט")))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert tts.calls == 1 and len(set(paths)) == 1


def test_files_appear_whole_or_not_at_all(tmp_path):
    cache = TTSCache(tmp_path)

    class Broken(CountingTTS):
        def synthesize(self, text):
            raise EngineError("network down")
    with pytest.raises(EngineError):
        cache.synthesize(Broken(), "x")
    with pytest.raises(EngineError, match="not an MP3"):
        cache.synthesize(CountingTTS(data=b"<html>error</html>"), "y")
    assert list(tmp_path.iterdir()) == []  # no partial or temporary files left


def test_lru_eviction_keeps_recent_files_and_never_the_aliases(tmp_path):
    cache = TTSCache(tmp_path, max_mb=1)
    tts = CountingTTS(size=300 * 1024)
    cache.alias(GREETING, cache.synthesize(tts, "greeting"))
    old = cache.synthesize(tts, "old")
    recent = cache.synthesize(tts, "recent")
    past = time.time() - 100
    os.utime(old, (past, past))
    os.utime(recent, (past + 50, past + 50))
    cache.lookup(tts, "old")  # a hit makes it recent again
    newest = cache.synthesize(tts, "newest")
    assert not recent.exists() and old.exists() and newest.exists()
    assert (tmp_path / GREETING).exists()
    total = sum(p.stat().st_size for p in tmp_path.glob("*.mp3"))
    assert total <= 1024 * 1024


def test_key_locks_are_forgotten_when_unused_even_after_failures(tmp_path):
    cache, tts = TTSCache(tmp_path), CountingTTS(size=10)

    class Broken(CountingTTS):
        def synthesize(self, text):
            raise EngineError("down")
    for n in range(300):
        cache.synthesize(tts, f"משפט {n}")
        with pytest.raises(EngineError):
            cache.synthesize(Broken(), f"שבור {n}")
    threads = [threading.Thread(target=cache.synthesize, args=(tts, f"יחד {n % 4}"))
               for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cache.key_locks == {} and tts.calls == 304


def test_remembered_durations_stay_bounded_and_keep_the_recently_asked(tmp_path):
    from ivr import audio
    from ivr.tts_cache import DURATIONS_KEPT
    assert 1000 <= DURATIONS_KEPT <= 10000
    cache = TTSCache(tmp_path, durations_kept=8)
    mp3 = audio.pcm16_to_mp3(audio.beep_pcm16(500))  # encoded once; its length is read from
    for n in range(200):                              # frame headers, never decoded
        (tmp_path / f"{n}.mp3").write_bytes(mp3)
        assert cache.duration(f"{n}.mp3") == pytest.approx(0.5, abs=0.25)
        cache.duration("0.mp3")  # asked again and again: never the one dropped
        assert len(cache.durations) <= 8
    assert "0.mp3" in cache.durations and "199.mp3" in cache.durations


def test_purge_unused_deletes_files_not_used_since_but_never_the_aliases(tmp_path):
    cache, tts = TTSCache(tmp_path), CountingTTS(size=10)
    old, used, recent = (cache.synthesize(tts, t) for t in ("ישן", "ישן אך בשימוש", "חדש"))
    for alias in ALIASES:
        cache.write(alias, b"ID3alias")
    leftover = tmp_path / ".tmp-crashed.mp3"
    leftover.write_bytes(b"ID3half")
    foreign = tmp_path / "notes.txt"
    foreign.write_text("not the cache's")
    then = time.time() - 100 * 86400
    for path in [old, used, leftover, foreign] + [tmp_path / a for a in ALIASES]:
        os.utime(path, (then, then))
    cache.lookup(tts, "ישן אך בשימוש")  # a hit: used today
    assert cache.purge_unused(time.time() - 90 * 86400) == 2
    assert not old.exists() and not leftover.exists()
    assert used.exists() and recent.exists() and foreign.exists()
    assert all((tmp_path / a).exists() for a in ALIASES)


def test_beep_is_generated_when_missing(tmp_path):
    cache = TTSCache(tmp_path)
    assert cache.last_resort().name == BEEP and (tmp_path / BEEP).stat().st_size > 500
    cache.write(FALLBACK, b"ID3x")
    assert cache.last_resort().name == FALLBACK


def test_prompts_fall_back_to_the_beep_when_tts_fails(tmp_path):
    class Failing(CountingTTS):
        def synthesize(self, text):
            raise EngineError("down")
    prompts = Prompts(TTSCache(tmp_path), Failing(), {GREETING: "שלום", FALLBACK: "שוב?"})
    assert prompts.name(GREETING) == BEEP and prompts.name(FALLBACK) == BEEP


def test_prewarm_synthesises_prompts_flow_and_phrases_and_skips_cached(tmp_path):
    settings = make_settings(tmp_path)
    phrases = tmp_path / "phrases.txt"
    phrases.write_text("# extra\nמבצע מיוחד החודש\n\n", encoding="utf-8")
    cache, tts, flow = TTSCache(tmp_path / "cache"), CountingTTS(), ScriptedLLM()
    out = io.StringIO()
    first = prewarm(cache, tts, flow, settings, read_phrases(phrases), out=out)
    assert first["synthesized"] == first["total"] and first["failed"] == 0
    assert "prewarm [" in out.getvalue()
    texts = prompt_texts(settings, flow)
    assert texts[GREETING] == flow.flow["greeting"]
    for alias in (GREETING, FALLBACK, BEEP):
        assert (tmp_path / "cache" / alias).is_file()
    assert cache.lookup(tts, "מבצע מיוחד החודש") is not None
    second = prewarm(cache, tts, flow, settings, read_phrases(phrases), out=io.StringIO())
    assert second["cached"] == second["total"] and second["synthesized"] == 0


def test_a_line_whose_replies_are_not_scripted_greets_with_the_flows_greeting(tmp_path):
    """An OpenAI line (no scripted flow in its LLM) still has the flow file's greeting, and
    prewarm caches it under greeting_he.mp3."""
    from ivr.engines.fake import FakeLLM
    settings = make_settings(tmp_path)
    assert prompt_texts(settings, FakeLLM())[GREETING] == ScriptedLLM().flow["greeting"]
    own = tmp_path / "flow.yaml"
    own.write_text('greeting: "שלום מהמספרה"\n', encoding="utf-8")
    texts = prompt_texts(settings.replace(flow_file=str(own)), FakeLLM())
    assert texts[GREETING] == "שלום מהמספרה"
    cache, tts = TTSCache(tmp_path / "cache"), CountingTTS()
    prewarm(cache, tts, FakeLLM(), settings, out=io.StringIO())
    made = cache.lookup(tts, ScriptedLLM().flow["greeting"])
    assert made is not None
    assert (tmp_path / "cache" / GREETING).read_bytes() == made.read_bytes()


@pytest.mark.live  # starts a process
def test_prewarm_command_makes_greeting_and_fallback_answer_at_once(tmp_path):
    import subprocess
    import sys

    from .livehelpers import ROOT
    env = {**os.environ, "VAR_DIR": str(tmp_path / "var"), "TTS_DIR": str(tmp_path / "tts")}
    proc = subprocess.run([sys.executable, "scripts/prewarm_tts.py"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "0 failed" in proc.stdout
    for alias in ("greeting_he.mp3", "fallback_he.mp3", "goodbye_he.mp3"):
        data = (tmp_path / "tts" / alias).read_bytes()
        assert (data[:3] == b"ID3" or data[0] == 0xFF) and len(data) > 1000


class StreamingTTS(TTS):
    """μ-law in pieces as a streaming engine yields them; `fail` raises after the audio."""

    name, voice, speaks_live = "streaming", "v1", True

    def __init__(self, fail: Exception | None = None):
        self.fail, self.texts, self.closed = fail, [], 0

    def live(self, text):
        self.texts.append(text)
        try:
            for n in range(3):
                yield bytes([0x10 + n]) * 800
            if self.fail is not None:
                raise self.fail
        finally:
            self.closed += 1


def test_a_streamed_text_is_kept_once_whole_and_goes_out_as_it_came(tmp_path, monkeypatch):
    cache, tts = TTSCache(tmp_path), StreamingTTS()
    assert cache.find(tts, "150 ₪") is None
    synthesis = cache.live(tts, "150 ₪")
    pieces = list(synthesis)
    assert tts.texts == ["מאה וחמישים שקלים"]  # in words, as synthesize gives it
    assert synthesis.path == cache.find(tts, "מאה וחמישים שקלים") == cache.find(tts, "150 ₪")
    assert synthesis.path.read_bytes().startswith(MP3_MAGIC)  # an MP3, as every cache file
    decoded = []
    monkeypatch.setattr("ivr.audio.decode_to_pcm16", lambda data: decoded.append(data) or b"")
    cache.synthesize(tts, "150 ₪")  # a hit touches the file (the LRU) …
    assert cache.ulaw(synthesis.path.name) == b"".join(pieces)  # … and it is not decoded again
    assert decoded == []


@pytest.mark.parametrize("how", ["closed", "mismatch"])
def test_a_streamed_text_cut_short_or_misread_is_not_kept(tmp_path, how):
    from ivr.engines.base import TranscriptMismatch
    cache = TTSCache(tmp_path)
    tts = StreamingTTS(TranscriptMismatch("שלום", "מה נשמע") if how == "mismatch" else None)
    synthesis = cache.live(tts, "שלום")
    if how == "closed":
        assert next(iter(synthesis))
        synthesis.close()
    else:
        with pytest.raises(TranscriptMismatch):
            list(synthesis)
    assert tts.closed == 1 and synthesis.path is None and cache.find(tts, "שלום") is None
