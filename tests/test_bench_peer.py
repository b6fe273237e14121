"""bench/peer.py's own parts, no Pipecat needed: the provider's `pcm` speech, the ratio, the
missing peer virtualenv."""

import time
from pathlib import Path

import pytest
import requests

from bench.latency import audio_heard
from bench.peer import PCM_RATE, PcmProfile, PeerBot, ratios, summarize, table
from ivr import audio


@pytest.fixture(scope="module")
def profile():
    server = PcmProfile()
    yield server
    server.stop()


def speak(profile: PcmProfile, text: str, **extra) -> tuple[requests.Response, bytes, float]:
    began = time.monotonic()
    response = requests.post(profile.url + "/v1/audio/speech", stream=True, timeout=30,
                             json={"model": "gpt-4o-mini-tts", "voice": "alloy", "input": text,
                                   **extra})
    chunks = response.iter_content(None)
    first = next(chunks)
    waited = time.monotonic() - began
    return response, first + b"".join(chunks), waited


def test_pcm_speech_is_raw_24khz_as_long_and_as_late_as_the_mp3(profile):
    text = "א" * 140  # ten seconds of speech in the profile
    response, body, waited = speak(profile, text, response_format="pcm")
    assert response.headers["Content-Type"] == "audio/pcm"
    assert abs(len(body) / 2 / PCM_RATE - 10.0) < 0.01  # no header: 16-bit mono samples only
    assert waited >= 0.3  # the profile's first byte
    response, mp3, waited = speak(profile, text)  # the line's request: MP3 as before
    assert response.headers["Content-Type"] == "audio/mpeg"
    assert abs(audio.mp3_duration_sec(mp3) - 10.0) < 0.2 and waited >= 0.3


def test_the_ratio_is_pipecats_p50_over_each_line_modes():
    def run(first: float, whole: float) -> dict:
        return {"first_audio_sec": {"p50": first, "p95": first + 0.1},
                "whole_reply_sec": {"p50": whole, "p95": whole + 0.1}, "answered": 10,
                "turns": 10}
    runs = {"line stream": run(1.0, 15.0), "line play": run(1.6, 16.0), "pipecat": run(2.0, 16.0)}
    assert ratios(runs) == {"line stream": {"first_audio_sec": 2.0, "whole_reply_sec": 1.07},
                            "line play": {"first_audio_sec": 1.25, "whole_reply_sec": 1.0}}
    assert "Pipecat ÷ line stream: first audio 2.0×" in table(runs)


def test_without_the_peer_virtualenv_it_says_how_to_build_it():
    with pytest.raises(SystemExit, match="make bench-peer"):
        PeerBot("http://127.0.0.1:9/v1", python=Path("/nonexistent/.venv-peer/bin/python"))


def test_the_reply_audio_is_what_was_heard_not_the_wait_or_the_silence():
    times = [(2.0, 15.0, 0.0), (6.5, 8.5, 0.0), (1.4, 12.4, 0.5)]  # (first, whole, silence)
    assert [round(a, 2) for a in audio_heard(times)] == [13.0, 2.0, 10.5]
    assert summarize(times, 3)["reply_audio_sec"] == {"p50": 10.5, "p95": 13.0}
