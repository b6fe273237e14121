"""Two instances of the line on one database (each with its own TTS_DIR and VAR_DIR): an MP3, a
prompt and a recording made by one are served by the other (PostgreSQL), and a streamed reply
one writes is continued by the other, waiting for its chunks, or ends with the fallback phrase."""

import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import update

from ivr import recordings
from ivr.app import create_app
from ivr.blob_store import SharedMedia
from ivr.retention import purge
from ivr.schema import media
from ivr.tts_cache import ALIASES, FALLBACK
from ivr.web import webhooks

from .conftest import ACCOUNT_SID, BASE, CALL_SID, make_settings, sign, wait_until
from .providers import (  # noqa: F401 - streamed_reply_provider: the fixture
    CHUNKS,
    REPLY,
    SPEECH_API_LAST_DAY,
    streamed_reply_provider,
)

pytestmark = pytest.mark.usefixtures("database")

RE_SID = "RE" + "4" * 32
TOKEN = "inspector-token-0123456789"


@pytest.fixture
def instances(tmp_path, provider):
    """`instances(**changes)`: apps A and B on the test's database, each with its own folders."""
    built = []

    def build(**changes):
        for name in "ab":
            settings = make_settings(tmp_path).replace(
                tts_dir=str(tmp_path / name / "tts"), var_dir=str(tmp_path / name / "var"),
                inspector_token=TOKEN, **changes)
            built.append(create_app(settings))
        return built
    yield build
    for app in built:
        app.extensions["ivr"].close()


def openai_gather(provider) -> dict:
    """OpenAI's chat and speech, the speech on /v1/audio/speech (its chunks can be held) as on
    that endpoint's last day."""
    provider.today = SPEECH_API_LAST_DAY
    return {"asr_engine": "none", "llm_engine": "openai", "tts_engine": "openai",
            "turn_mode": "gather", "openai_api_key": "sk-test-key-123456",
            "openai_base_url": provider.url + "/v1", "openai_tts_model": "gpt-4o-mini-tts"}


def post(app, path: str, **params):
    """A webhook signed like Twilio's, to one instance (the load balancer's choice)."""
    params = {"CallSid": CALL_SID, "AccountSid": ACCOUNT_SID, **params}
    headers = {"X-Twilio-Signature": sign(BASE + path, params)}
    response = app.test_client().post(path, data=params, headers=headers)
    assert response.status_code == 200
    return ET.fromstring(response.data)


def plays(root) -> list[str]:
    return [p.text.rsplit("/", 1)[-1] for p in root.iter("Play")]


def redirect_path(root) -> str | None:
    found = root.find("Redirect")
    if found is None or "reply_continue" not in found.text:
        return None
    parts = urlsplit(found.text)
    return f"{parts.path}?{parts.query}"


def runtime(app):
    return app.extensions["ivr"]


def tts_dir(app) -> Path:
    return Path(runtime(app).settings.tts_dir)


def test_an_mp3_made_by_one_instance_is_served_by_the_other(instances, database):
    a, b = instances()
    made = runtime(a).cache.synthesize(runtime(a).engines.tts, "שלום, כאן בדיקה.")
    response = b.test_client().get(f"/static/tts/{made.name}")
    if database == "sqlite":  # one process: no blobs in the database, as before
        assert response.status_code == 404
        return
    assert response.status_code == 200 and response.mimetype == "audio/mpeg"
    assert response.data == made.read_bytes()
    assert (tts_dir(b) / made.name).read_bytes() == made.read_bytes()  # local from now on
    assert b.test_client().get(f"/static/tts/{made.name}").data == made.read_bytes()
    assert b.test_client().get(f"/static/tts/{'f' * 64}.mp3").status_code == 404

    def no_synthesis(_text):
        raise AssertionError("B synthesised what A had made")
    (tts_dir(b) / made.name).unlink()
    runtime(b).engines.tts.synthesize = no_synthesis
    again = runtime(b).cache.synthesize(runtime(b).engines.tts, "שלום, כאן בדיקה.")
    assert again.read_bytes() == made.read_bytes()  # from the table, not made again


def test_a_prompt_made_by_one_instance_is_served_by_the_other(instances, database):
    a, b = instances()
    assert runtime(a).prompts.name(FALLBACK) == FALLBACK
    assert not (tts_dir(b) / FALLBACK).exists()
    response = b.test_client().get(f"/static/tts/{FALLBACK}")
    if database == "sqlite":
        assert response.status_code == 404
        return
    assert response.status_code == 200 and response.data == (tts_dir(a) / FALLBACK).read_bytes()
    assert not (tts_dir(b) / FALLBACK).exists()  # B still makes its own prompt from its text


def test_a_recording_kept_by_one_instance_is_read_by_the_other(instances, database):
    a, b = instances()
    wav = b"RIFF" + b"\x01\x02" * 500
    recordings.keep(runtime(a).settings.var_dir, RE_SID, wav, {"call_sid": CALL_SID},
                    shared=runtime(a).media)
    runtime(a).store.flush()
    response = b.test_client().get(f"/inspector/recordings/{RE_SID}.wav",
                                   headers={"Authorization": f"Bearer {TOKEN}"})
    if database == "sqlite":
        assert response.status_code == 404
        return
    assert response.status_code == 200 and response.data == wav
    kept = Path(runtime(b).settings.var_dir) / "recordings"
    assert (kept / f"{RE_SID}.wav").read_bytes() == wav
    assert '"call_sid"' in (kept / f"{RE_SID}.json").read_text()


def test_media_rows_follow_the_retention_of_the_files_they_mirror(instances, database):
    if database == "sqlite":
        pytest.skip("media rows are written on PostgreSQL only")
    (a,) = instances()[:1]
    rt = runtime(a)
    rt.prompts.name(FALLBACK)
    old, new = (rt.cache.write(f"{c * 64}.mp3", b"ID3" + c.encode()) for c in "cd")
    long_ago = time.time() - 100 * 86400
    with rt.store.engine.begin() as conn:
        conn.execute(update(media).where(media.c.name.in_([old.name, *ALIASES]))
                     .values(used_at=long_ago))
    counts = purge(rt.settings, rt.store, rt.events, rt.cache)
    shared = SharedMedia(rt.store)
    assert counts["media_rows"] == 1 and shared.get(old.name) is None
    assert shared.get(new.name) == b"ID3d" and shared.get(FALLBACK) is not None


def start_reply(a, provider) -> str:
    """A's answer to a gather turn: the first chunk, then a continuation (the second chunk's
    speech is held); the continuation's path."""
    provider.held_speech = CHUNKS[1]
    first = post(a, "/webhook/handle_gather", SpeechResult="מה שעות הפתיחה שלכם?")
    assert len(plays(first)) == 1
    path = redirect_path(first)
    assert path and path.endswith("part=1")
    return path


def continuation_asked(app) -> bool:
    return any(e["kind"] == "WEBHOOK" and e["detail"].get("route") == "/webhook/reply_continue"
               for e in runtime(app).store.events(CALL_SID))


def test_a_continuation_is_answered_by_the_other_instance_while_the_reply_is_written(
        instances, provider, database):
    a, b = instances(**openai_gather(provider))
    path = start_reply(a, provider)
    heard = []
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(post, b, path)
        wait_until(lambda: continuation_asked(b))
        provider.speech_go.set()  # B is waiting: A synthesises the second chunk now
        root = answer.result()
    heard += plays(root)
    while path := redirect_path(root):
        root = post(b, path)
        heard += plays(root)
    assert root.find("Gather") is not None  # the reply is over: the call listens again
    turn = wait_until(lambda: runtime(a).store.turns(CALL_SID))[0]
    names = turn["audio_url"].split()
    assert len(names) == len(CHUNKS) and turn["fallback"] == ""
    assert heard == names[1:]  # every later chunk, in order, from B
    kinds = [e["kind"] for e in runtime(b).store.events(CALL_SID)]
    assert "REPLY_LOST" not in kinds and "REPLY_LATE" not in kinds
    if database == "postgresql":  # and each MP3 of A's answers on B
        for name in names:
            response = b.test_client().get(f"/static/tts/{name}")
            assert response.data == (tts_dir(a) / name).read_bytes()


def test_a_continuation_whose_writer_closed_ends_with_the_fallback_and_listens(
        instances, provider):
    a, b = instances(**openai_gather(provider))
    path = start_reply(a, provider)
    runtime(a).close()  # A goes away mid-reply: its reply is cancelled in the store
    root = post(b, path)
    assert plays(root) == [runtime(b).prompts.name(FALLBACK)]
    assert root.find("Gather") is not None and redirect_path(root) is None


def test_a_continuation_whose_writer_vanished_waits_then_ends_with_the_fallback(
        instances, provider, monkeypatch):
    monkeypatch.setattr(webhooks, "CONTINUE_WAIT_SEC", 0.5)
    a, b = instances(**openai_gather(provider))
    path = start_reply(a, provider)  # A's second chunk never comes (a killed process)
    root = post(b, path)
    assert plays(root) == [runtime(b).prompts.name(FALLBACK)]
    assert root.find("Gather") is not None and redirect_path(root) is None
    assert "REPLY_LATE" in [e["kind"] for e in runtime(b).store.events(CALL_SID)]
