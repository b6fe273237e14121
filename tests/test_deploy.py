"""A hosted deploy: the line boots without ffmpeg (the beep is made in process), and a missing
espeak-ng or ffmpeg that the configuration needs is a `check` and a `/healthz` problem.

"Missing" is simulated, never uninstalled: PATH is a folder of links to the programs kept."""

import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import requests

from ivr import audio
from ivr.app import create_app
from ivr.tts_cache import BEEP, MP3_MAGIC

from .conftest import BASE, make_settings, sign
from .livehelpers import ROOT, free_port, start_script_env, wait_for

pytestmark = pytest.mark.live  # starts processes

SHELL_TOOLS = ("bash", "dirname")  # what scripts/start.sh itself runs
CALL = "CA" + "e" * 32


def path_with_only(tmp_path: Path, *programs: str) -> str:
    """A PATH on which only `programs` (and this Python's own folder) are found."""
    folder = Path(tempfile.mkdtemp(prefix="bin-", dir=tmp_path))
    for program in programs:
        found = shutil.which(program)
        assert found, f"the test needs {program} on this machine to keep it"
        (folder / program).symlink_to(found)
    return f"{folder}:{Path(sys.executable).parent}"


@pytest.fixture
def line(tmp_path, monkeypatch):
    """`line(keep=(programs...), **settings)`: the app built with only those programs on PATH."""
    built = []

    def build(keep: tuple[str, ...], **changes):
        monkeypatch.setenv("PATH", path_with_only(tmp_path, *keep))
        app = create_app(make_settings(tmp_path, **changes))
        built.append(app)
        return app
    yield build
    for app in built:
        app.extensions["ivr"].close()


def signed_post(client, path: str, **params):
    return client.post(path, data=params, headers={"X-Twilio-Signature": sign(BASE + path, params)})


def test_without_ffmpeg_the_line_boots_healthy_plays_the_beep_and_speaks_espeak_replies(line):
    app = line(keep=("espeak-ng",))
    assert shutil.which("ffmpeg") is None  # really gone for the line
    client = app.test_client()
    health = client.get("/healthz")
    assert health.status_code == 200, health.get_json()["problems"]
    assert health.get_json()["programs"] == {"espeak-ng": "ok", "ffmpeg": "not needed"}
    beep = client.get("/static/tts/" + BEEP)
    assert beep.status_code == 200 and beep.mimetype == "audio/mpeg"
    assert 0.35 < audio.mp3_duration_sec(beep.data) < 0.7  # 400 ms and the encoder's padding
    signed_post(client, "/webhook/incoming_call", CallSid=CALL)
    answer = signed_post(client, "/webhook/handle_gather", CallSid=CALL,
                         SpeechResult="מה שעות הפתיחה?")
    plays = [p.text for p in ET.fromstring(answer.data).iter("Play")]
    assert plays and not any(url.endswith(BEEP) or "fallback" in url for url in plays)
    for url in plays:  # espeak-ng's reply, encoded to MP3 with no program but espeak-ng
        played = client.get(url.removeprefix(BASE))
        assert played.mimetype == "audio/mpeg" and audio.mp3_duration_sec(played.data) > 1.0
    assert "TTS_ERR" not in [e["kind"] for e in app.extensions["ivr"].store.events(CALL)]


def test_without_espeak_ng_healthz_is_503_and_names_the_fix(line):
    app = line(keep=("ffmpeg",))
    response = app.test_client().get("/healthz")
    body = response.get_json()
    assert response.status_code == 503 and body["status"] == "degraded"
    assert body["engines"]["tts"] == "espeak" and body["programs"]["espeak-ng"] == "missing"
    [problem] = body["problems"]
    assert problem.startswith("espeak-ng not found on PATH: TTS_ENGINE=espeak")
    assert "apt-get install espeak-ng" in problem and "TTS_ENGINE=google or openai" in problem


def test_stream_replies_without_ffmpeg_are_a_healthz_problem_yet_the_beep_still_streams(line):
    app = line(keep=("espeak-ng",), reply_mode="stream")
    body = app.test_client().get("/healthz").get_json()
    assert body["status"] == "degraded" and body["programs"]["ffmpeg"] == "missing"
    assert body["problems"] == [
        "ffmpeg not found on PATH: REPLY_MODE=stream decodes every MP3 reply to μ-law with it; "
        "install it (apt-get install ffmpeg) or set REPLY_MODE=play"]
    cache = app.extensions["ivr"].cache
    beep = cache.ulaw(BEEP)  # the sound of last resort needs no decoder
    assert len(beep) == audio.RATE * 400 // 1000 and audio.rms(audio.ulaw_to_pcm16(beep)) > 3000
    cache.write("reply.mp3", audio.pcm16_to_mp3(audio.beep_pcm16(300)))
    with pytest.raises(RuntimeError, match="ffmpeg is not installed"):
        cache.ulaw("reply.mp3")


def env_with_only(tmp_path: Path, *programs: str, **extra: str) -> dict:
    env = start_script_env(tmp_path, free_port(), **extra)
    env["PATH"] = path_with_only(tmp_path, *programs)
    return env


def test_check_refuses_a_needed_program_that_is_missing_and_notes_an_unneeded_one(tmp_path):
    def check(env):
        return subprocess.run([sys.executable, "-m", "ivr", "check"], cwd=ROOT, env=env,
                              text=True, capture_output=True, timeout=60)
    no_espeak = check(env_with_only(tmp_path, "ffmpeg"))
    assert no_espeak.returncode == 1 and "config OK" not in no_espeak.stdout
    assert "espeak-ng not found on PATH" in no_espeak.stderr
    no_ffmpeg = check(env_with_only(tmp_path, "espeak-ng"))
    assert no_ffmpeg.returncode == 0 and "config OK" in no_ffmpeg.stdout
    assert "ffmpeg: not installed; needed only with REPLY_MODE=stream" in no_ffmpeg.stdout
    streaming = check(env_with_only(tmp_path, "espeak-ng", REPLY_MODE="stream"))
    assert streaming.returncode == 1 and "ffmpeg not found on PATH" in streaming.stderr


def test_start_script_boots_without_ffmpeg_and_serves_the_beep(tmp_path):
    env = env_with_only(tmp_path, *SHELL_TOOLS, "espeak-ng")
    proc = subprocess.Popen(["bash", "scripts/start.sh"], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{env['PORT']}"
        health = wait_for(base + "/healthz", proc)
        assert health.status_code == 200 and health.json()["programs"]["ffmpeg"] == "not needed"
        beep = requests.get(base + "/static/tts/" + BEEP, timeout=30)
        assert beep.headers["Content-Type"] == "audio/mpeg" and beep.content.startswith(MP3_MAGIC)
        assert os.path.isfile(tmp_path / "tts" / BEEP)
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.mark.parametrize("switch,read_at_once", [(False, []), (None, ["first"])])
def test_the_pinned_api_core_honours_the_switch_the_live_recognition_sets(switch, read_at_once):
    """GoogleASR sets `_prefetch_first_result_ = False` on streaming_recognize so the call
    returns before Google's first answer (and can be cancelled): a private switch of
    google-api-core, hence its pin in requirements.txt."""
    from google.api_core import grpc_helpers
    read = []

    def streaming_call(*_args, **_kwargs):
        def answers():
            read.append("first")
            yield "first"
        return answers()
    if switch is not None:
        streaming_call._prefetch_first_result_ = switch
    stream = grpc_helpers._wrap_stream_errors(streaming_call)()
    assert read == read_at_once
    assert list(stream) == ["first"] and read == ["first"]


def test_the_container_runs_the_python_of_python_version_and_installs_the_programs():
    """The Dockerfile and .python-version name one Python; the image has every program the
    line may run (ivr.programs), and starts the way a PaaS does."""
    from ivr import programs
    dockerfile = (ROOT / "Dockerfile").read_text()
    minor = (ROOT / ".python-version").read_text().strip()
    assert f"FROM python:{minor}-slim" in dockerfile
    assert all(f" {program}" in dockerfile for program in programs.USES)
    assert 'CMD ["bash", "scripts/start.sh"]' in dockerfile
    assert "pip install --no-cache-dir --disable-pip-version-check -r requirements.txt\n" in (
        dockerfile)
