"""bench/latency.py's live hearing (`--asr google`): the Google stand-in's results as words
arrive, the profile's count of chat streams cut off, and a turn heard through it end to end."""

import json

import grpc
import pytest
import requests

from bench.google_profile import GoogleSpeechProfile
from bench.latency import QUESTIONS, VAD_RMS, google_speech, run_mode, voiced_frames
from bench.latency_profile import REPLY, LatencyProfile
from ivr import audio
from ivr.engines.google_engines import GoogleASR
from tests.conftest import wait_until


@pytest.fixture
def profile():
    server = LatencyProfile()
    yield server
    server.stop()


def tls_client(hearing: GoogleSpeechProfile):
    """The real SpeechClient over TLS, trusting the stand-in's own certificate."""
    from google.cloud.speech_v1 import SpeechClient
    from google.cloud.speech_v1.services.speech.transports import SpeechGrpcTransport
    roots = grpc.ssl_channel_credentials(root_certificates=hearing.roots.read_bytes())
    channel = grpc.secure_channel(f"127.0.0.1:{hearing.port}", roots)
    return SpeechClient(transport=SpeechGrpcTransport(channel=channel))


def test_the_words_come_one_by_one_as_their_audio_arrives_then_the_whole_question(profile):
    hearing = GoogleSpeechProfile(profile, [len(voiced_frames(QUESTIONS[0]))], VAD_RMS)
    try:
        asr = GoogleASR(tls_client(hearing))
        results = asr.transcribe_detailed(audio.espeak_pcm16(QUESTIONS[0]))
    finally:
        hearing.stop()
    kinds, texts = zip(*results, strict=True)
    words = texts[-1].split()
    assert kinds == ("interim",) * len(words) + ("final",)
    assert list(texts[:-1]) == [" ".join(words[:k]) for k in range(1, len(words) + 1)]
    assert words[-1] == f"{profile.heard}."  # the reply reads back the number the caller gave
    assert hearing.streams() == {"opened": 1, "finished": 1, "signed": 0}  # no key: unsigned


def test_a_chat_stream_whose_client_goes_away_is_counted_cut_off_with_what_it_got(profile):
    body = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user",
                                                                   "content": "שלום"}]}
    with requests.post(profile.url + "/v1/chat/completions", json=body, stream=True,
                       timeout=30) as whole:
        assert b"[DONE]" in whole.content
    draft = requests.post(profile.url + "/v1/chat/completions", json=body, stream=True,
                          timeout=30)
    for line in draft.iter_lines():  # until the first words
        if line.startswith(b"data: {") and json.loads(line[6:])["choices"][0]["delta"].get(
                "content"):
            break
    draft.close()  # the draft is thrown away
    requests_made, cut_off, chars = wait_until(
        lambda: (counts := profile.chat_counts())[1] and counts)
    assert (requests_made, cut_off) == (2, 1)
    assert 0 < chars < len(REPLY)


@pytest.mark.live  # starts the line and rings a call in real time
def test_a_turn_heard_live_through_googles_client_is_answered_with_the_callers_number(profile):
    hearing = google_speech(profile)
    try:
        summary = run_mode("stream", 1, profile, "speech", None, hearing)
    finally:
        hearing.stop()
    assert summary["answered"] == 1 and summary["errors"] == []
    assert summary["turns_reading_back_the_number"] == 1
    assert summary["asr_streams"] == {"opened": 1, "finished": 1, "signed": 1}
    assert summary["chat_streams"]["requests"] >= 1
