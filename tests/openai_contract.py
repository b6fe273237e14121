"""What OpenAI's HTTP API refuses, with its error shapes: the contract the local server keeps.

Sources: the pinned SDK (its request TypedDicts, model Literals and shutdown notes, read through
ivr.engines.openai_models) and the errors OpenAI's API returned to others, quoted in public issue
threads (`Unsupported parameter: 'max_tokens' …`, `Function tools with reasoning_effort …`,
`Unrecognized request argument supplied: …`, `The model … has been deprecated …`).
Where the real API's behaviour is not known, the stand-in refuses (the safe side for our
engines) and says so here: `keywords` sent to a model that does not take it (the real
transcription endpoint is reported to ignore unknown multipart fields).
"""

from __future__ import annotations

import re
from datetime import date

from ivr.engines.openai_models import is_listed, shutdown_date

DEPRECATIONS = "https://platform.openai.com/docs/deprecations"
REASONING = re.compile(r"^(o\d|gpt-(?:[5-9]|\d\d))")  # gpt-5*, gpt-6*…, o1/o3/o4…
FIRST_GPT5 = re.compile(r"^gpt-5(?:-mini|-nano)?(?:-\d{4}-\d\d-\d\d)?$")
TOOLS_NEED_NONE = re.compile(r"^gpt-(?:5\.6|6)")  # tools refused unless effort is "none" (set)
TOOLS_REFUSE_EFFORT = re.compile(r"^gpt-5\.[1-5]")  # tools refused with any effort but "none"
KEYWORD_MODELS = ("gpt-transcribe",)  # "keywords: … Supported by `gpt-transcribe`." (the SDK)
TRANSCRIBE_FORMATS = ("json", "text")  # gpt-transcribe refuses verbose_json, srt, vtt
# An older OpenAI-compatible server (the OPENAI_BASE_URL path): the classic request only.
CLASSIC_FIELDS = {"model", "messages", "max_tokens", "temperature", "top_p", "n", "stream",
                  "stream_options", "stop", "presence_penalty", "frequency_penalty", "logit_bias",
                  "user", "seed", "tools", "tool_choice", "response_format", "logprobs",
                  "top_logprobs"}


def error(status: int, message: str, param: str | None = None,
          code: str | None = None) -> tuple[dict, int]:
    """OpenAI's error body and HTTP status."""
    return {"error": {"message": message, "type": "invalid_request_error", "param": param,
                      "code": code}}, status


def typed_keys(typed_dict) -> set[str]:
    return set(typed_dict.__required_keys__ | typed_dict.__optional_keys__)


def chat_fields() -> set[str]:
    """Every field the SDK's Chat Completions request may carry."""
    from openai.types.chat.completion_create_params import CompletionCreateParamsStreaming
    return typed_keys(CompletionCreateParamsStreaming)


def speech_fields() -> set[str]:
    from openai.types.audio.speech_create_params import SpeechCreateParams
    return typed_keys(SpeechCreateParams)


def unknown_fields(body: dict, known: set[str]) -> tuple[dict, int] | None:
    unknown = sorted(set(body) - known)
    if not unknown:
        return None
    plural = "s" if len(unknown) > 1 else ""
    return error(400, f"Unrecognized request argument{plural} supplied: {', '.join(unknown)}")


def model_refusal(model: str, kind: str, today: date) -> tuple[dict, int] | None:
    """404 model_not_found for a model the SDK does not list, or one shut down by `today`."""
    if not is_listed(model, kind):
        return error(404, f"The model `{model}` does not exist or you do not have access to it.",
                     code="model_not_found")
    day = shutdown_date(model)
    if day and today >= day:
        return error(404, f"The model `{model}` has been deprecated, learn more here: "
                          f"{DEPRECATIONS}", code="model_not_found")
    return None


def efforts(model: str) -> tuple[str, ...]:
    """The reasoning efforts a reasoning model takes."""
    if model.startswith("o"):
        return ("low", "medium", "high")
    if FIRST_GPT5.match(model):
        return ("minimal", "low", "medium", "high")
    if TOOLS_NEED_NONE.match(model):
        return ("none", "low", "medium", "high", "xhigh", "max")
    return ("none", "low", "medium", "high", "xhigh")


def reasoning_refusal(body: dict) -> tuple[dict, int] | None:
    """What a reasoning model refuses on Chat Completions."""
    model, effort = body["model"], body.get("reasoning_effort")
    if "max_tokens" in body:
        return error(400, "Unsupported parameter: 'max_tokens' is not supported with this model."
                          " Use 'max_completion_tokens' instead.", "max_tokens",
                     "unsupported_parameter")
    if body.get("temperature") not in (None, 1):
        return error(400, f"Unsupported value: 'temperature' does not support "
                          f"{body['temperature']} with this model. Only the default (1) value "
                          f"is supported.", "temperature", "unsupported_value")
    if effort is not None and effort not in efforts(model):
        allowed = ", ".join(f"'{e}'" for e in efforts(model))
        return error(400, f"Unsupported value: 'reasoning_effort' does not support '{effort}' "
                          f"with this model. Supported values are: {allowed}.",
                     "reasoning_effort", "unsupported_value")
    return tools_refusal(body) if body.get("tools") else None


def tools_refusal(body: dict) -> tuple[dict, int] | None:
    model, effort = body["model"], body.get("reasoning_effort")
    head = (f"Function tools with reasoning_effort are not supported for {model} in "
            f"/v1/chat/completions.")
    if TOOLS_NEED_NONE.match(model) and effort != "none":
        return error(400, f"{head} To use function tools, use /v1/responses or set "
                          f"reasoning_effort to 'none'.", "reasoning_effort")
    if TOOLS_REFUSE_EFFORT.match(model) and effort not in (None, "none"):
        return error(400, f"{head} Please use /v1/responses instead.", "reasoning_effort")
    return None


def chat_refusal(body: dict, today: date, compatible: bool) -> tuple[dict, int] | None:
    """Why OpenAI (or, `compatible`, an older OpenAI-compatible server) refuses this chat."""
    if compatible:
        return unknown_fields(body, CLASSIC_FIELDS)
    model = body.get("model", "")
    refusal = unknown_fields(body, chat_fields()) or model_refusal(model, "chat", today)
    if refusal:
        return refusal
    if REASONING.match(model):
        return reasoning_refusal(body)
    if "reasoning_effort" in body:  # gpt-4o and the like
        return error(400, "Unrecognized request argument supplied: reasoning_effort")
    return None


def transcription_refusal(fields: dict[str, list[str]], today: date,
                          compatible: bool) -> tuple[dict, int] | None:
    """Why OpenAI refuses this transcription (multipart `fields`, lists as the form has them)."""
    if compatible:
        return None
    model = (fields.get("model") or [""])[0]
    refusal = model_refusal(model, "transcription", today)
    if refusal:
        return refusal
    if model not in KEYWORD_MODELS and ({"keywords", "keywords[]"} & set(fields)):
        return error(400, "Unsupported parameter: 'keywords' is not supported with this model.",
                     "keywords", "unsupported_parameter")
    answer_format = (fields.get("response_format") or ["json"])[0]
    if model in KEYWORD_MODELS and answer_format not in TRANSCRIBE_FORMATS:
        return error(400, f"response_format '{answer_format}' is not compatible with model "
                          f"'{model}'. Use 'json' or 'text' instead.", "response_format",
                     "unsupported_value")
    return None


def speech_refusal(body: dict, today: date, compatible: bool) -> tuple[dict, int] | None:
    """Why OpenAI refuses this /v1/audio/speech request."""
    if compatible:
        return None
    return unknown_fields(body, speech_fields()) or model_refusal(
        body.get("model", ""), "speech", today)
