"""Google TTS voices: Standard (MP3) and Chirp 3: HD (streamed μ-law) through the real client."""

import threading

import pytest

from ivr import audio
from ivr.engines import EngineError, build_engines
from ivr.engines.google_engines import GoogleTTS
from ivr.tts_cache import MP3_MAGIC

from ..google_tts_server import FakeGoogleTTS, mulaw_wav_header
from .test_cloud import service_account_json

CHIRP = "he-IL-Chirp3-HD-Kore"
TEXT = "אנחנו פתוחים היום עד שש בערב."
ROOMY_SEC = 30.0  # a timeout no loopback answer misses, however loaded the machine
QUICK_SEC = 1.0  # the TTS timeout where the first audio is held for good


@pytest.fixture
def google_tts():
    server = FakeGoogleTTS()
    yield server
    server.stop()


def spoken(text: str) -> bytes:
    """The μ-law the stand-in makes of `text` at 8 kHz."""
    return audio.pcm16_to_ulaw(audio.beep_pcm16(FakeGoogleTTS.MS_PER_CHAR * len(text)))


def test_a_standard_voice_gives_mp3_and_does_not_stream(google_tts):
    tts = GoogleTTS(google_tts.client(), "he-IL-Standard-A", timeout=ROOMY_SEC)
    assert not tts.speaks_live
    mp3 = tts.synthesize("שלום")
    assert mp3.startswith(MP3_MAGIC)  # as the cache accepts it
    request = google_tts.requests[-1]
    assert (request.voice.name, request.voice.language_code) == ("he-IL-Standard-A", "he-IL")
    with pytest.raises(EngineError, match="only Chirp 3: HD voices"):
        tts.live("שלום")
    assert google_tts.streams == []


def test_a_chirp_voice_also_gives_mp3_for_the_cache(google_tts):
    tts = GoogleTTS(google_tts.client(), CHIRP, timeout=ROOMY_SEC)
    assert tts.speaks_live
    mp3 = tts.synthesize("שלום")
    assert mp3.startswith(MP3_MAGIC)  # as the cache accepts it
    assert google_tts.requests[-1].audio_config.audio_encoding.name == "MP3"


def test_a_chirp_voice_streams_mulaw_before_its_synthesis_ends(google_tts):
    google_tts.hold_after = 1  # the service holds the rest until the test has the first piece
    stream = GoogleTTS(google_tts.client(), CHIRP, timeout=ROOMY_SEC).live(TEXT)
    first = next(stream)
    (held,) = google_tts.streams
    assert held["pieces"] == 1 and held["ended"] == ""  # the synthesis is still going on
    google_tts.proceed()
    rest = list(stream)
    assert len(rest) >= 2 and held["ended"] == "done"
    assert first + b"".join(rest) == spoken(TEXT)  # μ-law at 8 kHz, nothing added or lost
    config = held["config"]
    assert (config.voice.name, config.voice.language_code) == (CHIRP, "he-IL")
    assert config.streaming_audio_config.audio_encoding.name == "MULAW"
    assert config.streaming_audio_config.sample_rate_hertz == 8000
    assert held["text"] == TEXT


def test_a_wav_header_before_the_streamed_audio_is_dropped(google_tts):
    google_tts.wav_header = 8000
    pieces = list(GoogleTTS(google_tts.client(), CHIRP, timeout=ROOMY_SEC).live(TEXT))
    assert b"".join(pieces) == spoken(TEXT)


def test_a_streamed_wav_of_another_rate_is_an_engine_error_and_cancelled(google_tts):
    google_tts.wav_header, google_tts.hold_after = 24000, 1
    stream = GoogleTTS(google_tts.client(), CHIRP, timeout=ROOMY_SEC).live(TEXT)
    with pytest.raises(EngineError, match="not μ-law mono 8000 Hz"):
        next(stream)
    assert google_tts.wait(lambda: google_tts.streams[0]["ended"] == "cancelled")


def test_a_wav_header_is_read_whole_before_the_audio():
    from ivr.engines.google_stream import wav_payload
    head = mulaw_wav_header(24000) + b"\xff" * 10
    with pytest.raises(EngineError, match="not μ-law mono 8000 Hz"):
        wav_payload(head)
    assert wav_payload(mulaw_wav_header(8000)[:30]) is None  # incomplete: wait for more
    assert wav_payload(mulaw_wav_header(8000) + b"\x01\x02") == b"\x01\x02"


def test_closing_the_stream_early_cancels_the_synthesis(google_tts):
    google_tts.hold_after = 1
    stream = GoogleTTS(google_tts.client(), CHIRP, timeout=ROOMY_SEC).live(TEXT)
    assert next(stream)
    stream.close()
    assert google_tts.wait(lambda: google_tts.streams[0]["ended"] == "cancelled")
    assert google_tts.streams[0]["pieces"] == 1
    assert list(stream) == []  # a closed stream ends quietly
    stream.close()  # and closing again is harmless


def test_a_stream_closed_while_waiting_for_its_first_audio_ends_quietly(google_tts):
    """A barge-in: another thread closes the stream its reader is blocked on."""
    google_tts.hold_first = True
    stream = GoogleTTS(google_tts.client(), CHIRP, timeout=ROOMY_SEC).live(TEXT)
    heard: list = []
    reader = threading.Thread(target=lambda: heard.append(list(stream)))
    reader.start()
    assert google_tts.wait(lambda: google_tts.streams and google_tts.streams[0]["text"])
    stream.close()
    reader.join(ROOMY_SEC)
    assert not reader.is_alive() and heard == [[]]
    assert google_tts.wait(lambda: google_tts.streams[0]["ended"] == "cancelled")
    assert google_tts.streams[0]["pieces"] == 0


def test_a_first_audio_later_than_the_tts_timeout_is_an_engine_error(google_tts):
    google_tts.hold_first = True
    stream = GoogleTTS(google_tts.client(), CHIRP, timeout=QUICK_SEC).live(TEXT)
    with pytest.raises(EngineError, match="no audio within 1 s"):
        next(stream)
    assert google_tts.wait(lambda: google_tts.streams[0]["ended"] == "cancelled")


@pytest.mark.parametrize("voice, error", [
    ("he-IL-Chirp3-HD-Korr", "Voice 'he-IL-Chirp3-HD-Korr' does not exist"),
    ("en-US-Chirp3-HD-Kore", "doesn't match the voice"),
])
def test_a_refused_voice_is_an_engine_error_naming_it(google_tts, voice, error):
    tts = GoogleTTS(google_tts.client(), voice, timeout=ROOMY_SEC)
    with pytest.raises(EngineError, match=f"google TTS {voice}: 400 .*{error}"):
        next(tts.live(TEXT))
    with pytest.raises(EngineError, match=error):
        tts.synthesize(TEXT)
    assert google_tts.streams[0]["ended"] == "refused"


def raw_stream(google_tts, *requests):
    """The stand-in's answer to these requests from the real client (not through the engine)."""
    return list(google_tts.client().streaming_synthesize(requests=iter(requests), timeout=30))


def test_the_stand_in_refuses_what_google_refuses_in_a_stream(google_tts):
    from google.api_core.exceptions import InvalidArgument
    from google.cloud import texttospeech_v1 as tts

    def config(voice="he-IL-Chirp3-HD-Kore", encoding=tts.AudioEncoding.MULAW):
        return tts.StreamingSynthesizeRequest(streaming_config=tts.StreamingSynthesizeConfig(
            voice=tts.VoiceSelectionParams(name=voice, language_code="he-IL"),
            streaming_audio_config=tts.StreamingAudioConfig(audio_encoding=encoding)))
    text = tts.StreamingSynthesizeRequest(input=tts.StreamingSynthesisInput(text="שלום"))
    for requests, message in [
            ((config("he-IL-Standard-A"), text), "only Chirp 3: HD voices"),
            ((config(encoding=tts.AudioEncoding.MP3), text), "Unsupported audio encoding"),
            ((config(encoding=tts.AudioEncoding.LINEAR16), text), "Unsupported audio encoding"),
            ((text,), "first request must contain streaming_config"),
            ((config(), text, config()), "Only the first request")]:
        with pytest.raises(InvalidArgument, match=message):
            raw_stream(google_tts, *requests)
    pcm = raw_stream(google_tts, tts.StreamingSynthesizeRequest(
        streaming_config=tts.StreamingSynthesizeConfig(
            voice=tts.VoiceSelectionParams(name=CHIRP, language_code="he-IL"))), text)
    beep = audio.beep_pcm16(FakeGoogleTTS.MS_PER_CHAR * len("שלום"))
    assert b"".join(r.audio_content for r in pcm) == audio.resample(beep, 8000, 24000)


def test_the_stand_in_refuses_pitch_for_a_chirp_voice(google_tts):
    from google.api_core.exceptions import InvalidArgument
    from google.cloud import texttospeech_v1 as tts
    with pytest.raises(InvalidArgument, match="does not support pitch"):
        google_tts.client().synthesize_speech(
            input=tts.SynthesisInput(text="שלום"),
            voice=tts.VoiceSelectionParams(name=CHIRP, language_code="he-IL"),
            audio_config=tts.AudioConfig(audio_encoding=tts.AudioEncoding.MP3, pitch=2.0))


def google_settings(tmp_path, **env):
    from ivr.config import Settings
    return Settings.from_env({"VAR_DIR": str(tmp_path / "var"), "LLM_ENGINE": "fake",
                              "GCP_CREDENTIALS_JSON": service_account_json("a@b.iam"), **env})


def test_a_chirp_voice_is_given_a_grpc_client_and_a_standard_one_rest(tmp_path):
    settings = google_settings(tmp_path, GOOGLE_TTS_VOICE=CHIRP,
                               GOOGLE_TTS_ENDPOINT="https://eu-texttospeech.googleapis.com")
    settings.prepare()
    tts = build_engines(settings).tts
    assert tts.speaks_live and tts.client.transport.kind == "grpc"
    assert tts.client.transport._host == "eu-texttospeech.googleapis.com:443"
    standard = build_engines(settings.replace(google_tts_voice="he-IL-Standard-B")).tts
    assert not standard.speaks_live and standard.client.transport.kind == "rest"


@pytest.mark.parametrize("voice, problem", [
    ("he-IL-Chirp3HD-Kore", "did you mean he-IL-Chirp3-HD-Kore?"),
    ("he-il-standard-a", "did you mean he-IL-Standard-A?"),
    ("he-IL-Chirp3-HD-Korr", "Korr is not a Chirp 3: HD speaker (did you mean "
                             "he-IL-Chirp3-HD-Kore?)"),
    ("en-US-Chirp3-HD-Kore", "a en-US voice, but LANGUAGE=he-IL"),
    ("Kore", "expected <locale>-<type>-<name>"),
])
def test_a_mistyped_voice_is_refused_at_start_up(tmp_path, voice, problem):
    from ivr.config import ConfigError
    with pytest.raises(ConfigError) as refused:
        google_settings(tmp_path, GOOGLE_TTS_VOICE=voice)
    (line,) = refused.value.problems
    assert line.startswith(f"GOOGLE_TTS_VOICE={voice!r}: ") and problem in line


def test_a_voice_google_does_not_list_is_only_a_warning(tmp_path):
    settings = google_settings(tmp_path, GOOGLE_TTS_VOICE="he-IL-Neural2-A")
    assert any("he-IL-Neural2-A" in w and "no such he-IL voice" in w for w in settings.warnings)
    for voice in ("he-IL-Standard-D", "he-IL-Wavenet-B", "he-IL-Chirp3-HD-Zubenelgenubi"):
        assert google_settings(tmp_path, GOOGLE_TTS_VOICE=voice).warnings == ()


def test_the_voice_is_not_checked_when_google_does_not_speak(tmp_path):
    from ivr.config import Settings
    settings = Settings.from_env({"VAR_DIR": str(tmp_path / "var"), "TTS_ENGINE": "espeak",
                                  "GOOGLE_TTS_VOICE": "he-IL-Chirp3HD-Kore"})
    assert settings.tts_engine == "espeak" and settings.warnings == ()
