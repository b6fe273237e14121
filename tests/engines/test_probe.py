"""`doctor --engines`: one real request per engine through the real clients, against local servers
that refuse as OpenAI and Google do; each refusal comes back as its cause and the fix."""

import dataclasses
import datetime
import io
import json
import subprocess
import sys

import grpc
import pytest

from ivr.cli import main
from ivr.config import Settings
from ivr.doctor import Doctor, report
from ivr.engines import TTS, EngineError, Engines
from ivr.engines.google_engines import GoogleASR
from ivr.engines.openai_engines import OpenAITTS, openai_client
from ivr.engines.probe import probe_configured, probe_engines
from ivr.engines.probe import report as engines_report
from ivr.tts_cache.prompts import prewarm

from ..conftest import make_settings
from ..livehelpers import ROOT, free_port, start_script_env
from ..providers import (  # noqa: F401 - plain_provider, fake_google_speech: the fixtures
    SPEECH_API_LAST_DAY,
    FakeGoogleSpeech,
    ProviderServer,
    fake_google_speech,
    plain_provider,
)
from ..realtime_server import RealtimeServer

KEY = "sk-test-key-123456"
PROJECT = "123456789012"


def default(name: str):
    """A setting's declared default (the models' defaults change with the line, not here)."""
    return next(f.default for f in dataclasses.fields(Settings) if f.name == name)


def by_kind(probes) -> dict:
    return {probe.kind: probe for probe in probes}


def openai_line(tmp_path, provider, **changes) -> Settings:
    """The three OpenAI engines on the HTTP stand-in: speech on /v1/audio/speech, as on its last
    day (the Realtime speech engine is probed against its own stand-in below)."""
    provider.today = SPEECH_API_LAST_DAY
    line = {"openai_api_key": KEY, "openai_base_url": provider.url + "/v1",
            "asr_engine": "openai", "llm_engine": "openai", "tts_engine": "openai",
            "openai_tts_model": "gpt-4o-mini-tts"}
    return make_settings(tmp_path).replace(**{**line, **changes})


# ---- no keys: the local engines --------------------------------------------------------------


def test_the_local_engines_answer_with_no_keys(tmp_path):
    probes = probe_configured(make_settings(tmp_path))
    assert [(p.kind, p.engine, p.ok) for p in probes] == [
        ("asr", "none", True), ("llm", "scripted", True), ("tts", "espeak", True)]
    assert "Gather" in probes[0].detail
    assert probes[2].detail.startswith("synthesised 'שלום': ") and " bytes in " in probes[2].detail
    assert engines_report(probes).endswith("GO: every engine answered a real request")


@pytest.mark.live  # starts a process
def test_doctor_engines_needs_no_line_and_exits_1_on_a_no_go(tmp_path, provider):
    def doctor_engines(**extra):
        env = start_script_env(tmp_path, free_port(), **extra)
        return subprocess.run([sys.executable, "-m", "ivr", "doctor", "--engines"], cwd=ROOT,
                              env=env, text=True, capture_output=True, timeout=120)
    local = doctor_engines()
    assert local.returncode == 0, local.stdout + local.stderr
    assert [line.split()[:3] for line in local.stdout.splitlines()[:3]] == [
        ["GO", "asr", "none"], ["GO", "llm", "scripted"], ["GO", "tts", "espeak"]]
    provider.refuse_openai(401, "invalid_api_key", f"Incorrect API key provided: {KEY}. You can "
                           "find your API key at https://platform.openai.com/account/api-keys.")
    refused = doctor_engines(OPENAI_API_KEY=KEY, OPENAI_BASE_URL=provider.url + "/v1")
    assert refused.returncode == 1
    lines = refused.stdout.splitlines()
    assert lines[0].startswith("NO-GO  asr openai    bad key: 401 invalid_api_key")
    assert lines[1].strip().startswith("fix: OPENAI_API_KEY is wrong")
    assert KEY not in refused.stdout and "***" in refused.stdout  # the key is never printed
    assert lines[-1] == "NO-GO: 3 of 3 engines failed"


def test_doctor_without_url_or_engines_says_what_it_needs(capsys):
    assert main(["doctor"]) == 2
    assert "--url" in capsys.readouterr().err


# ---- OpenAI: each refusal, as the API sends it, names its fix --------------------------------

OPENAI_REFUSALS = [  # status, code, type, param, message, cause, what the fix says
    (401, "invalid_api_key", "invalid_request_error", None,
     "Incorrect API key provided: sk-test-********3456. You can find your API key at "
     "https://platform.openai.com/account/api-keys.", "bad key", "platform.openai.com/api-keys"),
    (429, "insufficient_quota", "insufficient_quota", None,
     "You exceeded your current quota, please check your plan and billing details. For more "
     "information on this error, read the docs: "
     "https://platform.openai.com/docs/guides/error-codes/api-errors.", "no credit (billing)",
     "settings/organization/billing"),
    (429, "rate_limit_exceeded", "requests", None,
     "Rate limit reached for {model} in organization org-abc on requests per min (RPM): Limit 3,"
     " Used 3, Requested 1. Please try again in 20s.", "rate limit", "usage tier"),
    (403, "model_not_found", "invalid_request_error", None,
     "Project `proj_abc` does not have access to model `{model}`", "no access to the model",
     "allow it in the project's settings"),
    (403, "unsupported_country_region_territory", "request_forbidden", None,
     "Country, region, or territory not supported", "region not served", "supported-countries"),
    (400, "unsupported_parameter", "invalid_request_error", "max_tokens",
     "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
     "'max_completion_tokens' instead.", "request shape refused", "upgrade the line"),
]


@pytest.mark.parametrize("status,code,kind,param,message,cause,fix", OPENAI_REFUSALS,
                         ids=[r[1] for r in OPENAI_REFUSALS])
def test_each_openai_refusal_names_its_fix(tmp_path, provider, status, code, kind, param,
                                           message, cause, fix):
    provider.refuse_openai(status, code, message, kind, param)
    probes = probe_configured(openai_line(tmp_path, provider))
    assert [p.engine for p in probes] == ["openai"] * 3
    for probe in probes:
        assert not probe.ok
        assert probe.detail.startswith(f"{cause}: {status} {code}: "), probe.detail
        assert fix in probe.fix, probe.fix


def test_a_retired_model_is_named_with_the_default_to_set(tmp_path, provider):
    provider.refuse_openai(404, "model_not_found",
                           "The model `{model}` does not exist or you do not have access to it.")
    settings = openai_line(tmp_path, provider, openai_model="gpt-4-0613",
                           openai_asr_model="whisper-0", openai_tts_model="tts-0")
    probes = by_kind(probe_configured(settings))
    for kind, model, setting in (("asr", "whisper-0", "openai_asr_model"),
                                 ("llm", "gpt-4-0613", "openai_model"),
                                 ("tts", "tts-0", "openai_tts_model")):
        assert probes[kind].detail.startswith("model retired or unknown: 404 model_not_found: "
                                              f"The model `{model}` does not exist")
        assert f"the model {model}: set {setting.upper()}={default(setting)} " \
               "(the line's current default)" in probes[kind].fix


def test_a_retired_default_model_says_to_upgrade(tmp_path, provider):
    provider.refuse_openai(404, "model_not_found",
                           "The model `{model}` has been deprecated, learn more here: "
                           "https://platform.openai.com/docs/deprecations")
    settings = openai_line(tmp_path, provider, asr_engine="none", tts_engine="espeak")
    llm = by_kind(probe_configured(settings))["llm"]
    assert settings.openai_model == default("openai_model")
    assert llm.detail.startswith("model retired or unknown: ")
    assert "set OPENAI_MODEL to a current model (https://platform.openai.com/docs/deprecations);" \
        " this is the line's default model, so upgrade the line" in llm.fix


def test_an_engine_wrapping_the_provider_error_is_read_through_its_cause(tmp_path, provider):
    class WrappingTTS(TTS):  # as an engine that reports EngineError from the SDK's error
        name = "openai"

        def __init__(self, inner):
            self.inner, self.voice, self.model = inner, inner.voice, inner.model

        def synthesize(self, text: str) -> bytes:
            try:
                return self.inner.synthesize(text)
            except Exception as exc:
                raise EngineError("speech failed") from exc
    settings = openai_line(tmp_path, provider)
    provider.refuse_openai(429, "insufficient_quota", "You exceeded your current quota, please "
                           "check your plan and billing details.", "insufficient_quota")
    inner = OpenAITTS(openai_client(settings), settings.openai_tts_model, "alloy")
    tts = by_kind(probe_engines(Engines(None, None, WrappingTTS(inner)), settings))["tts"]
    assert tts.detail.startswith("no credit (billing): 429 insufficient_quota: ")
    assert "add credit" in tts.fix


def test_an_engines_own_error_quoting_a_provider_code_is_read(tmp_path):
    """As an engine on a WebSocket API reports an error event: its code in the message."""
    from ivr.engines.faults import FailedEngine, diagnose
    settings = make_settings(tmp_path).replace(openai_api_key=KEY, tts_engine="openai")
    error = EngineError("speech error event: model_not_found: The model `tts-0` does not exist "
                        "or you do not have access to it.")
    fault, account = diagnose(error, FailedEngine("tts", "openai", "tts-0", "alloy", settings))
    assert fault.cause == "model retired or unknown" and "the model tts-0" in fault.fix
    assert account.startswith("model_not_found: speech error event")


def test_an_unreachable_or_stalled_openai_is_network_or_timeout(tmp_path, provider):
    closed = f"http://127.0.0.1:{free_port()}/v1"
    probes = probe_configured(openai_line(tmp_path, provider, openai_base_url=closed))
    for probe in probes:
        assert probe.detail.startswith("network: Connection error.")
        assert f"no answer from OPENAI_BASE_URL={closed}" in probe.fix
    provider.mode = "slow"  # holds each request until the server stops
    quick = openai_line(tmp_path, provider, asr_timeout_sec=0.5, llm_timeout_sec=0.5,
                        tts_timeout_sec=0.5)
    for probe in probe_configured(quick):
        assert probe.detail.startswith("timeout: ")
        assert f"did not answer within {probe.kind.upper()}_TIMEOUT_SEC=0.5" in probe.fix


# ---- Google: REST synthesis through a real service-account sign-in ---------------------------


@pytest.fixture(scope="module")
def private_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def google_line(tmp_path, provider, private_key, **changes) -> Settings:
    """Google TTS from its settings, signing with a service-account file, at the local server."""
    path = tmp_path / "service-account.json"
    path.write_text(json.dumps({
        "type": "service_account", "project_id": "line-test", "private_key_id": "k1",
        "private_key": private_key, "client_email": "line@line-test.iam.gserviceaccount.com",
        "client_id": "1", "token_uri": "https://oauth2.googleapis.com/token"}))  # never asked:
    # the Google clients sign their own requests with a service-account key
    return make_settings(tmp_path).replace(**{
        "google_application_credentials": str(path), "google_tts_endpoint": provider.url,
        "tts_engine": "google", **changes})


GOOGLE_REFUSALS = [  # status, status name, message, ErrorInfo reason, cause, what the fix says
    (403, "PERMISSION_DENIED",
     f"Cloud Text-to-Speech API has not been used in project {PROJECT} before or it is disabled."
     " Enable it by visiting https://console.developers.google.com/apis/api/texttospeech."
     f"googleapis.com/overview?project={PROJECT} then retry. If you enabled this API recently, "
     "wait a few minutes for the action to propagate to our systems and retry.",
     "SERVICE_DISABLED", "API not enabled",
     f"enable texttospeech.googleapis.com in Google Cloud project {PROJECT}: "
     "https://console.developers.google.com/apis/api/texttospeech.googleapis.com/overview"
     f"?project={PROJECT}"),
    (403, "PERMISSION_DENIED",
     f"This API method requires billing to be enabled. Please enable billing on project #"
     f"{PROJECT} by visiting https://console.developers.google.com/billing/enable?project="
     f"{PROJECT} then retry.", "BILLING_DISABLED", "no billing",
     f"https://console.developers.google.com/billing/enable?project={PROJECT}"),
    (429, "RESOURCE_EXHAUSTED",
     "Quota exceeded for quota metric 'Requests' and limit 'Requests per minute' of service "
     f"'texttospeech.googleapis.com' for consumer 'project_number:{PROJECT}'.",
     "RATE_LIMIT_EXCEEDED", "quota", "quota for texttospeech.googleapis.com is used up"),
    (401, "UNAUTHENTICATED",
     "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
     "cookie or other valid authentication credential.", "ACCESS_TOKEN_TYPE_UNSUPPORTED",
     "bad key", "GCP_CREDENTIALS_JSON"),
]


@pytest.mark.parametrize("status,name,message,reason,cause,fix", GOOGLE_REFUSALS,
                         ids=[r[3] for r in GOOGLE_REFUSALS])
def test_each_google_tts_refusal_names_its_fix(tmp_path, provider, private_key, status, name,
                                               message, reason, cause, fix):
    metadata = {"service": "texttospeech.googleapis.com", "consumer": f"projects/{PROJECT}"}
    provider.refuse_google(status, name, message, reason, metadata)
    tts = by_kind(probe_configured(google_line(tmp_path, provider, private_key)))["tts"]
    assert tts.engine == "google" and not tts.ok
    assert tts.detail.startswith(f"{cause}: {status} {reason}: "), tts.detail
    assert fix in tts.fix, tts.fix


def test_a_voice_google_does_not_have_names_the_voice_setting(tmp_path, provider, private_key):
    provider.refuse_google(400, "INVALID_ARGUMENT",
                           "Voice 'he-IL-Standard-Z' does not exist. Is it misspelled?")
    settings = google_line(tmp_path, provider, private_key, google_tts_voice="he-IL-Standard-Z")
    tts = by_kind(probe_configured(settings))["tts"]
    assert tts.detail.startswith("voice not available: 400 INVALID_ARGUMENT: Voice ")
    assert f"set GOOGLE_TTS_VOICE={default('google_tts_voice')}" in tts.fix


@pytest.mark.parametrize("error,cause,fix", [
    # a user's sign-in (gcloud's application-default file) refreshed at Google's token endpoint
    ("RefreshError", "bad key", "create a service-account JSON key"),
    # the same refusal, as a gRPC client reports it (google-auth's metadata plugin)
    ("ServiceUnavailable", "bad key", "create a service-account JSON key"),
    ("clock", "clock off", "synchronise it"),
])
def test_a_refused_google_sign_in_names_its_fix(tmp_path, error, cause, fix):
    """A service-account key signs its own requests (a bad one is refused by the API: the 401
    above); sign-ins that go to the token endpoint fail before it, as google-auth reports."""
    from google.api_core.exceptions import ServiceUnavailable
    from google.auth.exceptions import RefreshError

    from ivr.engines.faults import FailedEngine, diagnose
    revoked = {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
    raised = {
        "RefreshError": RefreshError("invalid_grant: Token has been expired or revoked.", revoked),
        "ServiceUnavailable": ServiceUnavailable(
            "Getting metadata from plugin failed with error: ('invalid_grant: Invalid JWT "
            "Signature.', {'error': 'invalid_grant', 'error_description': 'Invalid JWT "
            "Signature.'})"),
        "clock": RefreshError("invalid_grant: Invalid JWT: Token must be a short-lived token (60 "
                              "minutes) and in a reasonable timeframe. Check your iat and exp "
                              "values in the JWT claim.", {"error": "invalid_grant"}),
    }[error]
    wrapped = EngineError("synthesis failed")
    wrapped.__cause__ = raised
    engine = FailedEngine("tts", "google", "", "he-IL-Standard-A", make_settings(tmp_path))
    fault, account = diagnose(wrapped, engine)
    assert fault.cause == cause and fix in fault.fix
    assert "invalid_grant" in account


def test_a_file_that_is_no_service_account_is_named(tmp_path):
    path = tmp_path / "not-a-key.json"
    path.write_text('{"type": "nonsense"}')
    settings = make_settings(tmp_path).replace(google_application_credentials=str(path),
                                               tts_engine="google")
    tts = by_kind(probe_configured(settings))["tts"]
    assert tts.detail.startswith("bad credentials file: ") and "GCP_CREDENTIALS_JSON" in tts.fix


def test_an_unreachable_google_endpoint_is_network(tmp_path, provider, private_key):
    closed = f"http://127.0.0.1:{free_port()}"
    settings = google_line(tmp_path, provider, private_key, google_tts_endpoint=closed)
    tts = by_kind(probe_configured(settings))["tts"]
    assert tts.detail.startswith("network: ") and f"GOOGLE_TTS_ENDPOINT={closed}" in tts.fix


# ---- Google: gRPC recognition ----------------------------------------------------------------


def probe_google_asr(tmp_path, client):
    settings = make_settings(tmp_path).replace(asr_engine="google")
    return by_kind(probe_engines(Engines(GoogleASR(client, timeout=30.0), None, None),
                                 settings))["asr"]


def test_google_recognition_answers_and_its_refusals_name_their_fix(tmp_path, google_speech):
    heard = probe_google_asr(tmp_path, google_speech.client())
    assert heard.ok and heard.detail.startswith("transcribed a 1 s clip: 'מה שעות הפתיחה?'")
    assert google_speech.audio_bytes == [8000]  # one second of μ-law
    google_speech.refuse(
        grpc.StatusCode.PERMISSION_DENIED,
        f"Cloud Speech-to-Text API has not been used in project {PROJECT} before or it is "
        "disabled. Enable it by visiting https://console.developers.google.com/apis/api/speech."
        f"googleapis.com/overview?project={PROJECT} then retry.", "SERVICE_DISABLED",
        {"service": "speech.googleapis.com", "consumer": f"projects/{PROJECT}"})
    disabled = probe_google_asr(tmp_path, google_speech.client())
    assert disabled.detail.startswith("API not enabled: 403 SERVICE_DISABLED: Cloud Speech")
    assert f"enable speech.googleapis.com in Google Cloud project {PROJECT}" in disabled.fix
    google_speech.refuse(grpc.StatusCode.RESOURCE_EXHAUSTED, "Quota exceeded for quota metric "
                         "'Requests' and limit 'Requests per minute' of service "
                         "'speech.googleapis.com'.", "RATE_LIMIT_EXCEEDED",
                         {"service": "speech.googleapis.com"})
    exhausted = probe_google_asr(tmp_path, google_speech.client())
    assert exhausted.detail.startswith("quota: 429 RATE_LIMIT_EXCEEDED: ")
    assert "quota for speech.googleapis.com is used up" in exhausted.fix


def test_an_unreachable_google_recognizer_is_network(tmp_path):
    from google.cloud.speech_v1 import SpeechClient
    from google.cloud.speech_v1.services.speech.transports import SpeechGrpcTransport
    channel = grpc.insecure_channel(f"127.0.0.1:{free_port()}")
    asr = probe_google_asr(tmp_path, SpeechClient(transport=SpeechGrpcTransport(channel=channel)))
    assert asr.detail.startswith("network: 503 UNAVAILABLE: ")
    assert "no answer from speech.googleapis.com" in asr.fix


# ---- the doctor against a running line -------------------------------------------------------


def test_the_doctor_probes_the_engines_and_says_when_they_are_not_the_servers(phone_line):
    line = phone_line(local=True, turn_mode="stream", asr_engine="fake")
    rt = line.runtime
    prewarm(rt.cache, rt.engines.tts, rt.engines.llm, rt.settings, out=io.StringIO())
    s = rt.settings
    results = Doctor(line.url, s.twilio_auth_token, s.twilio_account_sid, s).run()
    checks = {c.name: c for c in results}
    assert all(c.ok for c in results), report(results)
    assert checks["asr engine fake answers a real request"].detail.startswith("transcribed")
    assert checks["tts engine espeak answers a real request"].ok
    elsewhere = s.replace(tts_engine="fake")  # a doctor whose environment is not the line's
    checks = {c.name: c for c in Doctor(line.url, s.twilio_auth_token, s.twilio_account_sid,
                                        elsewhere).run()}
    mismatch = checks["engines probed are the server's"]
    assert not mismatch.ok and "'tts': 'espeak'" in mismatch.detail
    assert "run the doctor where the line runs" in mismatch.fix


def test_a_retired_realtime_voice_is_named_with_the_default_to_set(tmp_path, provider):
    realtime = RealtimeServer(today=datetime.date(2027, 1, 20))  # gpt-realtime's shutdown day
    try:
        settings = openai_line(tmp_path, provider, llm_engine="scripted", asr_engine="none",
                               openai_tts_model="gpt-realtime",
                               openai_websocket_base_url=realtime.url + "/v1")
        tts = by_kind(probe_configured(settings))["tts"]
    finally:
        realtime.stop()
    assert not tts.ok and tts.detail.startswith("model retired or unknown: "), tts.detail
    assert "OPENAI_TTS_MODEL" in tts.fix and "gpt-realtime-2.1-mini" in tts.fix, tts.fix
