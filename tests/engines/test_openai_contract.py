"""The local OpenAI server refuses what OpenAI refuses, to the real `openai` client; the OpenAI
engines send each model the request it accepts, and the classic one to compatible servers."""

from datetime import date

import openai
import pytest

from ivr.engines.base import TRANSFER
from ivr.engines.openai_engines import OpenAIASR, OpenAILLM, chat_shape, lowest_effort

from ..conftest import make_settings
from ..providers import ProviderServer

SPEECH = b"\x10\x20" * 8000  # one second of PCM16
HELLO = [{"role": "user", "content": "שלום"}]
TOOL = [{"type": "function", "function": {"name": "end_call", "parameters": {"type": "object",
                                                                              "properties": {}}}}]


@pytest.fixture
def provider():
    server = ProviderServer()
    yield server
    server.stop()


def client(provider):
    return openai.OpenAI(api_key="sk-test", base_url=provider.url + "/v1", max_retries=0)


def refused(call, status: int, code: str | None, message: str):
    with pytest.raises(openai.APIStatusError) as info:
        call()
    body = info.value.body
    assert info.value.status_code == status and body["type"] == "invalid_request_error"
    assert body["code"] == code and body["message"] == message
    return body


@pytest.mark.parametrize("request_, code, message", [
    ({"model": "gpt-6-luna", "max_tokens": 50}, "unsupported_parameter",
     "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
     "'max_completion_tokens' instead."),
    ({"model": "gpt-5.4-mini", "temperature": 0.5}, "unsupported_value",
     "Unsupported value: 'temperature' does not support 0.5 with this model. Only the default "
     "(1) value is supported."),
    ({"model": "gpt-6-luna", "reasoning_effort": "minimal"}, "unsupported_value",
     "Unsupported value: 'reasoning_effort' does not support 'minimal' with this model. "
     "Supported values are: 'none', 'low', 'medium', 'high', 'xhigh', 'max'."),
    ({"model": "gpt-6-luna", "tools": TOOL}, None,  # tools and no effort: the default one
     "Function tools with reasoning_effort are not supported for gpt-6-luna in "
     "/v1/chat/completions. To use function tools, use /v1/responses or set reasoning_effort "
     "to 'none'."),
    ({"model": "gpt-5.4-mini", "tools": TOOL, "reasoning_effort": "low"}, None,
     "Function tools with reasoning_effort are not supported for gpt-5.4-mini in "
     "/v1/chat/completions. Please use /v1/responses instead."),
    ({"model": "gpt-4o-mini", "reasoning_effort": "none"}, None,
     "Unrecognized request argument supplied: reasoning_effort"),
    ({"model": "gpt-6-luna", "extra_body": {"thinking": "off"}}, None,
     "Unrecognized request argument supplied: thinking"),
])
def test_chat_shapes_openai_refuses_are_refused(provider, request_, code, message):
    provider.today = date(2027, 1, 1)
    body = refused(lambda: client(provider).chat.completions.create(messages=HELLO, **request_),
                   400, code, message)
    assert body["param"] in (None, "max_tokens", "temperature", "reasoning_effort")


@pytest.mark.parametrize("request_", [
    {"model": "gpt-6-luna", "tools": TOOL, "reasoning_effort": "none",
     "max_completion_tokens": 50},
    {"model": "gpt-5.4-mini", "tools": TOOL},  # GPT-5.4's default effort is none
    {"model": "gpt-5.4-mini", "temperature": 1},  # the default may be named
    {"model": "gpt-4o-mini", "tools": TOOL, "max_tokens": 50, "temperature": 0.5},
])
def test_the_shapes_each_model_takes_are_answered(provider, request_):
    provider.today = date(2027, 1, 13)  # gpt-4o-mini's last day
    result = client(provider).chat.completions.create(messages=HELLO, **request_)
    assert result.choices[0].message.content == provider.reply_text


def test_an_unknown_model_and_a_model_on_its_shutdown_day_are_not_found(provider):
    chat = client(provider).chat.completions
    refused(lambda: chat.create(model="gpt-7-imaginary", messages=HELLO), 404,
            "model_not_found",
            "The model `gpt-7-imaginary` does not exist or you do not have access to it.")
    provider.today = date(2027, 1, 14)
    refused(lambda: chat.create(model="gpt-4o-mini", messages=HELLO), 404, "model_not_found",
            "The model `gpt-4o-mini` has been deprecated, learn more here: "
            "https://platform.openai.com/docs/deprecations")
    provider.today = date(2027, 1, 13)
    assert chat.create(model="gpt-4o-mini", messages=HELLO).choices


def test_transcription_refuses_retired_models_and_keywords_they_do_not_take(provider):
    transcribe = client(provider).audio.transcriptions.create
    upload = ("a.wav", b"RIFF", "audio/wav")
    provider.today = date(2027, 2, 25)
    refused(lambda: transcribe(model="gpt-4o-mini-transcribe", file=upload, keywords=["ביט"]),
            400, "unsupported_parameter",
            "Unsupported parameter: 'keywords' is not supported with this model.")
    assert transcribe(model="gpt-4o-mini-transcribe", file=upload, language="he").text
    refused(lambda: transcribe(model="gpt-transcribe", file=upload,
                               response_format="verbose_json"), 400, "unsupported_value",
            "response_format 'verbose_json' is not compatible with model 'gpt-transcribe'. "
            "Use 'json' or 'text' instead.")
    provider.today = date(2027, 2, 26)
    refused(lambda: transcribe(model="gpt-4o-mini-transcribe", file=upload), 404,
            "model_not_found", "The model `gpt-4o-mini-transcribe` has been deprecated, learn "
            "more here: https://platform.openai.com/docs/deprecations")
    assert transcribe(model="gpt-transcribe", file=upload, keywords=["ביט"]).text


def test_speech_refuses_its_models_from_their_shutdown_day(provider):
    speak = client(provider).audio.speech.create
    provider.today = date(2027, 1, 5)
    assert speak(model="gpt-4o-mini-tts", voice="alloy", input="שלום").content
    provider.today = date(2027, 1, 6)
    refused(lambda: speak(model="gpt-4o-mini-tts", voice="alloy", input="שלום"), 404,
            "model_not_found", "The model `gpt-4o-mini-tts` has been deprecated, learn more "
            "here: https://platform.openai.com/docs/deprecations")


@pytest.mark.parametrize("model,shape,effort", [
    ("gpt-6-luna", "reasoning", "none"), ("gpt-5.4-mini", "reasoning", "none"),
    ("gpt-5-mini", "reasoning", "minimal"), ("o4-mini", "reasoning", "low"),
    ("gpt-4o-mini", "classic", None), ("llama-3.1-8b-instruct", "classic", None)])
def test_the_request_shape_follows_the_model_family(model, shape, effort):
    assert chat_shape(model) == shape and chat_shape(model, "classic") == "classic"
    if effort:
        assert lowest_effort(model) == effort


def llm_for(tmp_path, provider, **changes) -> OpenAILLM:
    settings = make_settings(tmp_path, openai_api_key="sk-test",
                             openai_base_url=provider.url + "/v1", **changes)
    return OpenAILLM.from_settings(settings)


@pytest.mark.parametrize("model", ["gpt-6-luna", "gpt-5.4-mini", "gpt-5.5"])
def test_reply_stream_and_summary_are_accepted_by_current_models(tmp_path, provider, model):
    llm = llm_for(tmp_path, provider, openai_model=model)
    provider.tool_call = "transfer_to_person"
    assert list(llm.reply_tokens([], "אפשר לדבר עם מישהו?"))[-1] == TRANSFER
    assert llm.reply([], "מה שעות הפתיחה?") == provider.reply_text
    assert llm.summarize([{"role": "user", "text": "שלום"}], None).startswith(
        provider.reply_text[:10])
    assert all(r["json"]["reasoning_effort"] == "none" for r in provider.requests)


def test_a_compatible_server_gets_the_classic_request(tmp_path, provider):
    provider.compatible = True  # an older OpenAI-compatible server: any model, classic fields
    llm = llm_for(tmp_path, provider, openai_model="llama-3.1-8b-instruct")
    assert "".join(p for p in llm.reply_tokens([], "שלום") if isinstance(p, str)) == \
        provider.reply_text
    sent = provider.requests[-1]["json"]
    assert sent["max_tokens"] == 210 and sent["temperature"] == 0.5
    assert "reasoning_effort" not in sent and "max_completion_tokens" not in sent
    asr = OpenAIASR.from_settings(make_settings(tmp_path, openai_api_key="sk-test",
                                                openai_base_url=provider.url + "/v1",
                                                openai_asr_model="whisper-large-v3"))
    assert asr.transcribe(SPEECH) and provider.requests[-1]["form"] == {
        "model": "whisper-large-v3", "language": "he"}


def test_openai_chat_shape_overrides_the_family_rule(tmp_path, provider):
    provider.compatible = True
    reasoning = llm_for(tmp_path, provider, openai_model="qwen3-8b", openai_chat_shape="reasoning")
    with pytest.raises(openai.BadRequestError, match="reasoning_effort"):
        reasoning.reply([], "שלום")  # an older server does not know the reasoning fields
    provider.compatible = False
    classic = llm_for(tmp_path, provider, openai_chat_shape="classic")  # gpt-6-luna, classic
    with pytest.raises(openai.BadRequestError, match="max_completion_tokens"):
        classic.reply([], "שלום")
