"""Cloud engines through their real client libraries against local protocol servers."""

import base64
import io
import json
import wave

import pytest

from ivr import audio
from ivr.dialog import Dialog
from ivr.engines import EngineError, Engines, build_engines
from ivr.engines.base import HANG_UP, TRANSFER, LiveRecognition
from ivr.engines.fake import FakeASR, FakeLLM, FakeTTS
from ivr.engines.google_engines import CHUNK_BYTES, GoogleASR, GoogleLiveRecognition, GoogleTTS
from ivr.engines.openai_engines import OpenAIASR, OpenAILLM, OpenAITTS, clip
from ivr.eventlog import EventLog
from ivr.phrases import LLM_FALLBACK, REPEAT_PROMPT
from ivr.store import Store
from ivr.tts_cache import FALLBACK, MP3_MAGIC, TTSCache

from ..conftest import make_settings
from ..providers import (  # noqa: F401 - plain_provider, fake_google_speech: the fixtures
    SPEECH_API_LAST_DAY,
    FakeGoogleSpeech,
    ProviderServer,
    fake_google_speech,
    plain_provider,
)

SPEECH = b"\x10\x20" * 8000  # one second of PCM16
ROOMY_SEC = 30.0  # a timeout no answer from a loopback server misses, however loaded the machine
QUICK_SEC = 1.0  # the dialog's stage timeout where the provider stalls for good ("slow")


def openai_settings(tmp_path, provider, **changes):
    """Speech on /v1/audio/speech (test_openai_realtime covers the Realtime API), as OpenAI
    serves it on its last day."""
    provider.today = SPEECH_API_LAST_DAY
    return make_settings(tmp_path).replace(openai_api_key="sk-test-key-123456",
                                           openai_base_url=provider.url + "/v1",
                                           openai_tts_model="gpt-4o-mini-tts", **changes)


def dialog_with(tmp_path, settings, **engines):
    store = Store(settings.database_url)
    parts = {"asr": FakeASR(["שלום"]), "llm": FakeLLM(), "tts": FakeTTS(), **engines}
    cache = TTSCache(settings.tts_dir)
    cache.ensure_beep()
    return Dialog(settings, store, EventLog(store), Engines(**parts), cache), store


# ---- OpenAI ----------------------------------------------------------------------------------


def test_openai_engines_speak_the_protocol(tmp_path, provider):
    settings = openai_settings(tmp_path, provider, asr_engine="openai", llm_engine="openai",
                               tts_engine="openai")
    engines = build_engines(settings)
    assert engines.asr.transcribe(SPEECH) == "מה שעות הפתיחה?"
    upload = provider.requests[-1]["fields"]
    assert upload["model"] == ["gpt-transcribe"]
    assert upload["languages[]"] == ["he"] and "language" not in upload  # gpt-transcribe's hint
    assert upload["keywords[]"][:5] == ["הרצל", "תל אביב", "שירות בסיסי", "שירות מלא", "ביט"]
    assert "שעות הפתיחה" in upload["keywords[]"] and len(upload["keywords[]"]) <= 30
    upload = provider.requests[-1]
    with wave.open(io.BytesIO(upload["file"])) as parsed:
        assert parsed.getframerate() == 8000 and parsed.getnframes() == 8000
    history = [{"role": "user", "text": "שלום"}, {"role": "assistant", "text": "שלום, במה לעזור?"}]
    assert engines.llm.reply(history, "מה שעות הפתיחה?") == "אנחנו פתוחים עד שש בערב."
    chat = provider.requests[-1]
    assert chat["auth"] == "Bearer sk-test-key-123456"
    messages = chat["json"]["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert "160" in messages[0]["content"] and "420" in messages[0]["content"]
    assert chat["json"]["model"] == "gpt-6-luna"  # a current model, in the shape it accepts:
    assert chat["json"]["max_completion_tokens"] == 210 and "max_tokens" not in chat["json"]
    assert chat["json"]["reasoning_effort"] == "none" and "temperature" not in chat["json"]
    mp3 = engines.tts.synthesize("שלום")
    assert mp3.startswith(MP3_MAGIC)  # as the cache accepts it
    assert provider.requests[-1]["json"]["response_format"] == "mp3"


def test_system_prompt_keeps_a_neutral_persona():
    from ivr.engines.openai_engines import PROMPT_FILE
    text = PROMPT_FILE.read_text(encoding="utf-8")
    assert "אל תציג את עצמך" in text and "{min_chars}" in text and "{max_chars}" in text


def test_long_llm_replies_are_clipped_to_phone_length():
    long = "משפט ראשון קצר. " * 60
    assert len(clip(long, 420)) <= 420 and clip(long, 420).endswith(".")


def stage_timeouts(seconds: float, **other: float) -> dict:
    return {"asr_timeout_sec": seconds, "llm_timeout_sec": seconds, "tts_timeout_sec": seconds,
            **other}


def test_openai_chat_streams_the_reply_as_it_is_written(tmp_path, provider):
    settings = openai_settings(tmp_path, provider, llm_engine="openai", llm_max_chars=20)
    llm = build_engines(settings).llm
    provider.reply_text = "כן, בשמחה. אנחנו פתוחים עד שש בערב."
    pieces = list(llm.reply_tokens([], "מה שעות הפתיחה?"))
    assert len(pieces) > 1 and "".join(pieces) == provider.reply_text[:20]  # LLM_MAX_CHARS
    sent = provider.requests[-1]["json"]
    assert sent["stream"] is True and sent["tools"] and sent["reasoning_effort"] == "none"


@pytest.mark.parametrize("tool, action", [("transfer_to_person", TRANSFER),
                                          ("end_call", HANG_UP)])
def test_a_tool_the_model_calls_is_the_lines_action(tmp_path, provider, tool, action):
    llm = build_engines(openai_settings(tmp_path, provider, llm_engine="openai")).llm
    provider.reply_text, provider.tool_call = "בשמחה.", tool
    pieces = list(llm.reply_tokens([], "אפשר לדבר עם בעל העסק?"))
    assert "".join(p for p in pieces if isinstance(p, str)) == "בשמחה."
    assert [p for p in pieces if not isinstance(p, str)] == [action]
    offered = provider.requests[-1]["json"]["tools"]
    assert {t["function"]["name"] for t in offered} == {
        "transfer_to_person", "end_call", "cannot_answer"}


def test_key_0_asks_for_a_person_whatever_the_model_says(tmp_path, provider):
    llm = build_engines(openai_settings(tmp_path, provider, llm_engine="openai")).llm
    provider.reply_text = "אשמח לעזור."
    pieces = list(llm.reply_tokens([], "0"))
    assert pieces[0] == TRANSFER and "".join(pieces[1:]) == "אשמח לעזור."
    assert provider.requests[-1]["json"]["messages"][-1]["content"] != "0"  # said in words


def test_an_engine_that_cannot_stream_gives_its_reply_whole(tmp_path):
    from ivr.engines.fake import FakeLLM
    llm = FakeLLM()
    assert list(llm.reply_tokens([], "שלום")) == [llm.reply([], "שלום")]


@pytest.mark.parametrize("mode", ["429", "500", "slow"])
def test_openai_failures_still_give_the_caller_a_sound(tmp_path, provider, mode):
    provider.mode = mode
    # The clients' own HTTP timeout is roomy, so a stalled provider is cut by the dialog's
    # stage timeout; errors are answered at once and must not be mistaken for a timeout.
    settings = openai_settings(tmp_path, provider, **stage_timeouts(ROOMY_SEC))
    engines = {"asr": OpenAIASR.from_settings(settings), "llm": OpenAILLM.from_settings(settings),
               "tts": OpenAITTS.from_settings(settings)}
    limit = QUICK_SEC if mode == "slow" else ROOMY_SEC
    dialog, store = dialog_with(tmp_path, settings.replace(**stage_timeouts(limit)), **engines)
    outcome = dialog.run_turn("CA" + "1" * 32, 1, pcm=SPEECH)
    assert outcome.reply_text == REPEAT_PROMPT and outcome.fallback == "tts-error"
    assert outcome.audio.is_file() and outcome.audio.name == "beep.mp3"
    kinds = [e["kind"] for e in store.events("CA" + "1" * 32)]
    assert "ASR_ERR" in kinds and "TTS_ERR" in kinds
    dialog.engines.asr = FakeASR(["שלום"])
    dialog.s = dialog.s.replace(asr_timeout_sec=ROOMY_SEC)  # the fake ASR is healthy
    outcome = dialog.run_turn("CA" + "2" * 32, 1, pcm=SPEECH)
    assert outcome.reply_text == LLM_FALLBACK
    assert "LLM_ERR" in [e["kind"] for e in store.events("CA" + "2" * 32)]
    err = [e for e in store.events("CA" + "2" * 32) if e["kind"] == "LLM_ERR"][0]
    expected = "took longer" if mode == "slow" else mode
    assert expected in err["detail"]["err"]


def test_tts_failure_plays_the_cached_fallback_mp3(tmp_path, provider):
    provider.mode = "500"
    settings = openai_settings(tmp_path, provider)
    dialog, _ = dialog_with(tmp_path, settings, tts=OpenAITTS.from_settings(settings))
    dialog.cache.write(FALLBACK, b"ID3fallback")
    outcome = dialog.run_turn("CA" + "3" * 32, 1, text="שלום")
    assert outcome.audio.name == FALLBACK and outcome.fallback == "tts-error"


# ---- Google ----------------------------------------------------------------------------------


def test_google_speech_streams_mulaw_8k_hebrew_with_interim_results(tmp_path, google_speech):
    asr = GoogleASR(google_speech.client(), "he-IL")
    results = asr.transcribe_detailed(SPEECH)
    assert results == [("interim", "מה שעות"), ("final", "מה שעות הפתיחה?")]
    config = google_speech.configs[-1]
    assert config.interim_results is True
    assert config.config.language_code == "he-IL" and config.config.sample_rate_hertz == 8000
    assert config.config.encoding.name == "MULAW"
    assert google_speech.audio_bytes[-1] == 8000  # one μ-law byte a sample
    assert asr.recognize(SPEECH) == "מה שעות הפתיחה?"


def test_google_speech_results_are_logged_as_hebrew_speech(tmp_path, google_speech):
    settings = make_settings(tmp_path)
    dialog, store = dialog_with(tmp_path, settings, asr=GoogleASR(google_speech.client()))
    outcome = dialog.run_turn("CA" + "4" * 32, 1, pcm=SPEECH)
    assert outcome.user_text == "מה שעות הפתיחה?"
    speech = [e["detail"] for e in store.events("CA" + "4" * 32) if e["kind"] == "HEBREW_SPEECH"]
    assert [s["kind"] for s in speech] == ["interim", "final"]


@pytest.mark.parametrize("mode", ["unavailable", "exhausted", "slow"])
def test_google_speech_failures_fall_back_to_a_sound(tmp_path, google_speech, mode):
    google_speech.mode = mode
    limit = QUICK_SEC if mode == "slow" else ROOMY_SEC
    settings = make_settings(tmp_path).replace(**stage_timeouts(ROOMY_SEC, asr_timeout_sec=limit))
    # The gRPC deadline is roomy: a stalled recognizer is cut by the dialog's own stage timeout.
    dialog, store = dialog_with(tmp_path, settings,
                                asr=GoogleASR(google_speech.client(), timeout=ROOMY_SEC))
    outcome = dialog.run_turn("CA" + "5" * 32, 1, pcm=SPEECH)
    assert google_speech.answered == 0  # the turn did not wait for the stalled call
    assert outcome.reply_text == REPEAT_PROMPT and outcome.audio.is_file()
    (err,) = [e["detail"]["err"] for e in store.events("CA" + "5" * 32) if e["kind"] == "ASR_ERR"]
    assert ("took longer" in err) == (mode == "slow"), err


# ---- Live recognition: fed while the caller speaks ---------------------------------------------


def spoken_frames() -> tuple[bytes, list[bytes]]:
    """A real utterance (espeak-ng) and its 20 ms frames of PCM16, as a call streams them."""
    pcm = audio.espeak_pcm16("מה שעות הפתיחה שלכם?")
    size = 2 * audio.FRAME_BYTES  # 160 samples
    return pcm, [pcm[i:i + size] for i in range(0, len(pcm), size)]


def test_google_live_recognition_is_answered_while_the_caller_speaks(google_speech):
    pcm, frames = spoken_frames()
    live = GoogleASR(google_speech.client(), timeout=ROOMY_SEC).live()
    assert isinstance(live, GoogleLiveRecognition)
    for frame in frames:
        live.feed(frame)
    ulaw = len(pcm) // 2  # a μ-law byte a sample
    # Before finish the recognizer has the audio of every whole 100 ms request, and has
    # answered an interim result for each half second it heard.
    assert google_speech.wait_streamed(ulaw - ulaw % CHUNK_BYTES)
    results = live.finish(ROOMY_SEC)
    interims = (ulaw - 1) // google_speech.INTERIM_BYTES
    assert interims >= 2
    assert results == [("interim", google_speech.interim)] * interims + [
        ("final", google_speech.final)]
    assert google_speech.audio_bytes == [ulaw]  # one call; the remainder went out at finish
    config = google_speech.configs[-1]
    assert config.interim_results is True and config.config.encoding.name == "MULAW"
    assert config.config.language_code == "he-IL" and config.config.sample_rate_hertz == 8000
    live.cancel()  # harmless once finished
    assert live.finish(ROOMY_SEC) == results


def test_a_live_recognition_never_fed_makes_no_call(google_speech):
    asr = GoogleASR(google_speech.client())
    assert asr.live().finish(ROOMY_SEC) == []
    unused = asr.live()
    unused.cancel()
    unused.cancel()
    assert unused.finish(ROOMY_SEC) == []
    assert google_speech.configs == [] and google_speech.audio_bytes == []


@pytest.mark.parametrize("mode, seconds", [("ok", 1.0), ("slow", 0.2)])
def test_cancelling_a_live_recognition_ends_its_thread_and_call(google_speech, mode, seconds):
    """Mid-utterance, after interim results ("ok") or before any answer from a recognizer that
    would never answer ("slow": without the cancel the thread would wait out the deadline)."""
    google_speech.mode = mode
    pcm, frames = spoken_frames()
    live = GoogleASR(google_speech.client(), timeout=ROOMY_SEC).live()
    for frame in frames[:int(seconds / audio.FRAME_SEC)]:
        live.feed(frame)
    assert google_speech.wait_streamed(CHUNK_BYTES)
    live.cancel()
    live.thread.join(timeout=ROOMY_SEC)
    assert not live.thread.is_alive()
    assert live.error is None  # the call's CANCELLED error is the cancel's own doing
    live.feed(frames[-1])  # a frame already on its way is dropped
    live.cancel()
    assert google_speech.answered == 0


@pytest.mark.parametrize("mode, error", [("unavailable", "ServiceUnavailable"),
                                         ("exhausted", "ResourceExhausted")])
def test_a_live_recognition_raises_the_recognizer_error_at_finish(google_speech, mode, error):
    from google.api_core import exceptions
    google_speech.mode = mode
    _, frames = spoken_frames()
    live = GoogleASR(google_speech.client(), timeout=ROOMY_SEC).live()
    for frame in frames:
        live.feed(frame)
    with pytest.raises(getattr(exceptions, error)):
        live.finish(ROOMY_SEC)


def test_a_stalled_live_recognition_times_out_and_is_cancelled(google_speech):
    google_speech.mode = "slow"
    _, frames = spoken_frames()
    live = GoogleASR(google_speech.client(), timeout=ROOMY_SEC).live()
    for frame in frames:
        live.feed(frame)
    with pytest.raises(TimeoutError, match="took longer"):
        live.finish(QUICK_SEC)
    live.thread.join(timeout=ROOMY_SEC)
    assert not live.thread.is_alive() and google_speech.answered == 0


def test_an_engine_that_cannot_stream_recognizes_the_utterance_whole_at_finish(tmp_path,
                                                                              provider):
    asr = OpenAIASR.from_settings(openai_settings(tmp_path, provider))
    pcm, frames = spoken_frames()
    live = asr.live()
    assert type(live) is LiveRecognition
    for frame in frames:
        live.feed(frame)
    assert provider.requests == []  # nothing leaves before the end of the utterance
    results = live.finish(ROOMY_SEC)
    (upload,) = provider.requests
    assert results == asr.transcribe_detailed(pcm) == [("final", provider.transcript)]
    assert provider.requests[-1]["file"] == upload["file"]  # the whole utterance, as one WAV
    assert asr.live().finish(ROOMY_SEC) == [] and len(provider.requests) == 2
    cancelled = asr.live()
    cancelled.feed(pcm)
    cancelled.cancel()
    assert cancelled.finish(ROOMY_SEC) == [] and len(provider.requests) == 2


def test_the_buffered_live_recognition_raises_the_engine_error_or_times_out(stall):
    live = FakeASR(fail=True).live()
    live.feed(SPEECH)
    with pytest.raises(EngineError, match="fake ASR failure"):
        live.finish(ROOMY_SEC)
    live = stall(FakeASR(["שלום"]), "asr").live()
    live.feed(SPEECH)
    with pytest.raises(TimeoutError, match="took longer"):
        live.finish(QUICK_SEC)
    assert stall.entered == 1 and stall.answered == 0


def google_tts(provider):
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud.texttospeech_v1 import TextToSpeechClient
    client = TextToSpeechClient(credentials=AnonymousCredentials(), transport="rest",
                                client_options=ClientOptions(api_endpoint=provider.url))
    return GoogleTTS(client, "he-IL-Standard-A")


def test_google_tts_rest_returns_mp3_for_a_hebrew_voice(provider):
    mp3 = google_tts(provider).synthesize("שלום")
    assert mp3.startswith(MP3_MAGIC)  # as the cache accepts it
    body = provider.requests[-1]["json"]
    assert body["voice"] == {"languageCode": "he-IL", "name": "he-IL-Standard-A"}
    assert body["audioConfig"]["audioEncoding"] == "MP3" and body["input"]["text"] == "שלום"


@pytest.mark.parametrize("mode", ["429", "500", "slow"])
def test_google_tts_failures_fall_back_to_a_sound(tmp_path, provider, mode):
    provider.mode = mode
    limit = QUICK_SEC if mode == "slow" else ROOMY_SEC
    settings = make_settings(tmp_path).replace(**stage_timeouts(ROOMY_SEC, tts_timeout_sec=limit))
    dialog, store = dialog_with(tmp_path, settings, tts=google_tts(provider))
    dialog.engines.tts.timeout = ROOMY_SEC  # the dialog's stage timeout cuts a stalled provider
    outcome = dialog.run_turn("CA" + "6" * 32, 1, text="שלום")
    assert outcome.audio.name == "beep.mp3" and outcome.fallback == "tts-error"
    (err,) = [e["detail"]["err"] for e in store.events("CA" + "6" * 32) if e["kind"] == "TTS_ERR"]
    assert ("took longer" in err) == (mode == "slow"), err


def test_a_missing_key_names_what_to_set(tmp_path):
    from ivr.config import ConfigError, Settings
    with pytest.raises(ConfigError, match="ASR_ENGINE=google: set GOOGLE_APPLICATION_CREDENTIALS"):
        Settings.from_env({"ASR_ENGINE": "google", "VAR_DIR": str(tmp_path)})


def test_whisper_without_its_package_says_what_to_install():
    import importlib.util

    from ivr.engines import EngineError
    from ivr.engines.local import WhisperASR
    if importlib.util.find_spec("faster_whisper"):
        pytest.skip("faster-whisper is installed here")
    with pytest.raises(EngineError, match="requirements-local.txt"):
        WhisperASR()


def test_a_call_whose_provider_answers_500_still_hears_a_sound(phone_line, provider):
    provider.mode = "500"
    line = phone_line(asr_engine="openai", llm_engine="openai", tts_engine="openai",
                      turn_mode="stream", openai_api_key="sk-test-key-123456",
                      openai_base_url=provider.url + "/v1")
    result = line.carrier.place_call({"steps": [{"say": "שלום, מה שעות הפתיחה שלכם?"}]})
    assert result.error_codes == []
    assert [h["kind"] for h in result.heard] == ["play"]
    assert result.heard[0]["url"].endswith("/static/tts/beep.mp3")
    kinds = [e["kind"] for e in line.store.events(result.call_sid)]
    assert {"ASR_ERR", "TTS_ERR", "PING_PONG_TX"} <= set(kinds)


def service_account_json(email: str) -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return json.dumps({"type": "service_account", "project_id": "line", "private_key_id": "k1",
                       "private_key": pem, "client_email": email, "client_id": "1",
                       "token_uri": "https://oauth2.googleapis.com/token"})


def test_google_engines_are_given_the_credentials_file_written_at_start_up(
        tmp_path, provider, monkeypatch):
    """GCP_CREDENTIALS_JSON → the file `prepare` writes → the client's credentials, with no
    GOOGLE_APPLICATION_CREDENTIALS in the process environment."""
    from ivr.config import Settings
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    email = "line@project.iam.gserviceaccount.com"
    settings = Settings.from_env({"VAR_DIR": str(tmp_path / "var"), "LLM_ENGINE": "fake",
                                  "GCP_CREDENTIALS_JSON": service_account_json(email),
                                  "GOOGLE_TTS_ENDPOINT": provider.url})
    settings.prepare()
    engines = build_engines(settings)
    assert (engines.asr.name, engines.tts.name) == ("google", "google")
    assert engines.tts.synthesize("שלום")
    token = provider.requests[-1]["auth"].removeprefix("Bearer ").split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    assert claims["iss"] == email  # a self-signed JWT of the service account in the file
