"""OpenAI speech heard as its MP3 streams in: the first audio before the last byte is sent."""

import openai
import pytest

from ivr import audio
from ivr.engines.openai_engines import OpenAITTS

from ..providers import ProviderServer


@pytest.fixture
def provider():
    server = ProviderServer()
    server.speech_chars_per_sec = 10  # 3 s of speech for the text below
    yield server
    server.stop()


def test_the_first_audio_comes_while_the_mp3_is_still_streaming(provider):
    tts = OpenAITTS(openai.OpenAI(api_key="sk-test", base_url=provider.url + "/v1",
                                  max_retries=0))
    provider.speech_halfway.set()  # the server sends half the MP3, then waits
    heard = bytearray()
    pieces = iter(tts.live("אנחנו פתוחים עד שש בערב"))
    while not heard:
        heard += next(pieces)
    assert provider.speech_halfway.is_set()  # heard while the second half is still held
    provider.speech_halfway.clear()
    for piece in pieces:
        heard += piece
    assert tts.speaks_live
    assert abs(len(heard) / audio.RATE - 2.3) < 0.3  # the whole text: 23 characters at 10 a second
    assert provider.requests[-1]["json"]["response_format"] == "mp3"


def test_closing_the_stream_early_stops_it(provider):
    tts = OpenAITTS(openai.OpenAI(api_key="sk-test", base_url=provider.url + "/v1",
                                  max_retries=0))
    provider.speech_halfway.set()
    pieces = tts.live("אנחנו פתוחים עד שש בערב")
    while not next(pieces):
        pass
    pieces.close()  # a barge-in: no wait for the held half
    assert provider.speech_halfway.is_set()


def test_a_broken_mp3_raises():
    def chunks():
        yield b"not an mp3 at all" * 40
    with pytest.raises(ValueError, match="ffmpeg"):
        b"".join(audio.mp3_stream_to_ulaw(chunks()))
