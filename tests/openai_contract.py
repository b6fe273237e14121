"""What OpenAI's HTTP API refuses, with its error shapes: the contract the local server keeps.

Sources: the pinned SDK (its request TypedDicts, model Literals and shutdown notes, read through
ivr.engines.openai_models) and the errors OpenAI's API returned to others, quoted in public issue
threads (`Unsupported parameter: 'max_tokens' …`, `Function tools with reasoning_effort …`,
`Unrecognized request argument supplied: …`, `The model … has been deprecated …`).
Function calling: the messages' fields are the SDK's message TypedDicts (a tool result needs its
`tool_call_id`, an assistant's call its `id`, `type` and `function`); a tool result must answer a
call of the assistant message just before it, and every call must be answered before the next
message (`messages with role 'tool' must be a response to a preceeding message with
'tool_calls'`, `An assistant message with 'tool_calls' must be followed by tool messages
responding to each 'tool_call_id'…`, `Missing parameter 'tool_call_id'…`); a function's name is
`^[a-zA-Z0-9_-]+$`; a `strict` function's schema has `additionalProperties: false` and every
property in `required` on each object (`Invalid schema for function …`).
Where the real API's behaviour is not known, the stand-in refuses (the safe side for our
engines) and says so here: `keywords` sent to a model that does not take it (the real
transcription endpoint is reported to ignore unknown multipart fields); a message field the
SDK's TypedDict for its role does not have (the wording of that refusal is the stand-in's).
"""

from __future__ import annotations

import re
import typing
from datetime import date

from ivr.engines.openai_models import is_listed, shutdown_date

DEPRECATIONS = "https://platform.openai.com/docs/deprecations"
REASONING = re.compile(r"^(o\d|gpt-(?:[5-9]|\d\d))")  # gpt-5*, gpt-6*…, o1/o3/o4…
FIRST_GPT5 = re.compile(r"^gpt-5(?:-mini|-nano)?(?:-\d{4}-\d\d-\d\d)?$")
TOOLS_NEED_NONE = re.compile(r"^gpt-(?:5\.6|6)")  # tools refused unless effort is "none" (set)
TOOLS_REFUSE_EFFORT = re.compile(r"^gpt-5\.[1-5]")  # tools refused with any effort but "none"
KEYWORD_MODELS = ("gpt-transcribe",)  # "keywords: … Supported by `gpt-transcribe`." (the SDK)
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
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


def required_keys(typed_dict) -> set[str]:
    """The keys a TypedDict marks Required (the SDK's modules postpone their annotations, so
    `__required_keys__` does not know them: the hints are read)."""
    hints = typing.get_type_hints(typed_dict, include_extras=True)
    return {k for k, v in hints.items() if typing.get_origin(v) is typing.Required} | set(
        typed_dict.__required_keys__)


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


def message_types() -> dict[str, type]:
    """Each role's message as the SDK types it."""
    from openai.types import chat
    return {"system": chat.ChatCompletionSystemMessageParam,
            "developer": chat.ChatCompletionDeveloperMessageParam,
            "user": chat.ChatCompletionUserMessageParam,
            "assistant": chat.ChatCompletionAssistantMessageParam,
            "tool": chat.ChatCompletionToolMessageParam,
            "function": chat.ChatCompletionFunctionMessageParam}


def message_refusal(i: int, message: dict) -> tuple[dict, int] | None:
    """What is wrong with one message's fields (its role's TypedDict, an assistant's calls)."""
    kind = message_types().get(message.get("role"))
    if kind is None:
        return error(400, f"Invalid value: '{message.get('role')}'. Supported values are: "
                          "'system', 'assistant', 'user', 'function', 'tool', and 'developer'.",
                     f"messages[{i}].role", "invalid_value")
    missing = sorted(required_keys(kind) - set(message))
    if "tool_call_id" in missing:
        return error(400, "Missing parameter 'tool_call_id': messages with role 'tool' must have "
                          "a 'tool_call_id'.", f"messages.[{i}].tool_call_id")
    if missing:
        return error(400, f"Missing required parameter: 'messages[{i}].{missing[0]}'.",
                     f"messages[{i}].{missing[0]}", "missing_required_parameter")
    unknown = sorted(set(message) - typed_keys(kind))
    if unknown:
        return error(400, f"Additional properties are not allowed ('{unknown[0]}' was "
                          f"unexpected) - 'messages.{i}'", f"messages[{i}]")
    if message["role"] == "assistant" and message.get("content") is None \
            and not message.get("tool_calls"):
        return error(400, f"Missing required parameter: 'messages[{i}].content'.",
                     f"messages[{i}].content", "missing_required_parameter")
    for j, call in enumerate(message.get("tool_calls") or []):
        where = f"messages[{i}].tool_calls[{j}]"
        for key in ("id", "type", "function"):
            if key not in call:
                return error(400, f"Missing required parameter: '{where}.{key}'.",
                             f"{where}.{key}", "missing_required_parameter")
        arguments = call["function"].get("arguments")
        if not isinstance(arguments, str):
            return error(400, f"Invalid type for '{where}.function.arguments': expected a "
                              f"string, but got {type(arguments).__name__} instead.",
                         f"{where}.function.arguments", "invalid_type")
    return None


def messages_refusal(messages: list[dict]) -> tuple[dict, int] | None:
    """Tool results that answer no call, or calls left unanswered; any message's fields."""
    waiting: list[str] | None = None  # the calls of the assistant message being answered
    asked_at = 0
    for i, message in enumerate(messages):
        refusal = message_refusal(i, message)
        if refusal:
            return refusal
        if message["role"] == "tool":
            if waiting is None:
                return error(400, "Invalid parameter: messages with role 'tool' must be a "
                                  "response to a preceeding message with 'tool_calls'.",
                             f"messages.[{i}].role")
            if message["tool_call_id"] not in waiting:
                return error(400, f"Invalid parameter: 'tool_call_id' of "
                                  f"'{message['tool_call_id']}' not found in 'tool_calls' of "
                                  f"previous message.", f"messages.[{i}].tool_call_id")
            waiting.remove(message["tool_call_id"])
            continue
        if waiting:
            break
        waiting = [c["id"] for c in message.get("tool_calls") or []] or None
        asked_at = i
    if waiting:
        return error(400, "An assistant message with 'tool_calls' must be followed by tool "
                          "messages responding to each 'tool_call_id'. The following "
                          f"tool_call_ids did not have response messages: {', '.join(waiting)}",
                     f"messages.[{asked_at}].role")
    return None


def strict_problem(schema: dict) -> str:
    """Why a strict function's parameters schema is refused ("" when it is not)."""
    if schema.get("type") != "object":
        return ""
    if schema.get("additionalProperties") is not False:
        return "'additionalProperties' is required to be supplied and to be false."
    properties = schema.get("properties") or {}
    missing = [k for k in properties if k not in (schema.get("required") or [])]
    if missing or "required" not in schema:
        return ("'required' is required to be supplied and to be an array including every key "
                f"in properties. Missing '{missing[0] if missing else ''}'.")
    return next((p for p in map(strict_problem, properties.values()) if p), "")


def functions_refusal(body: dict) -> tuple[dict, int] | None:
    """The functions offered: names, strict schemas, and the options that need them."""
    tools = body.get("tools") or []
    for option in ("parallel_tool_calls", "tool_choice"):
        if option in body and not tools:
            return error(400, f"Invalid value for '{option}': '{option}' is only allowed when "
                              f"'tools' are specified.", option)
    for i, tool in enumerate(tools):
        function = tool.get("function") or {}
        name = function.get("name", "")
        if tool.get("type") != "function" or not TOOL_NAME.match(name):
            return error(400, f"Invalid 'tools[{i}].function.name': string does not match "
                              f"pattern. Expected a string that matches the pattern "
                              f"'^[a-zA-Z0-9_-]+$'.", f"tools[{i}].function.name",
                         "invalid_value")
        problem = strict_problem(function.get("parameters") or {}) \
            if function.get("strict") else ""
        if problem:
            return error(400, f"Invalid schema for function '{name}': In context=(), {problem}",
                         f"tools[{i}].function.parameters", "invalid_function_parameters")
    return None


def chat_refusal(body: dict, today: date, compatible: bool) -> tuple[dict, int] | None:
    """Why OpenAI (or, `compatible`, an older OpenAI-compatible server) refuses this chat."""
    if compatible:
        return unknown_fields(body, CLASSIC_FIELDS) or functions_refusal(body) or \
            messages_refusal(body.get("messages") or [])
    model = body.get("model", "")
    refusal = unknown_fields(body, chat_fields()) or model_refusal(model, "chat", today) or \
        functions_refusal(body) or messages_refusal(body.get("messages") or [])
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
