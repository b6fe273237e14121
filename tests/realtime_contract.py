"""What the pinned `openai` SDK says of the Realtime API, for its stand-in: the models and their
shutdown dates, the client events' param types, the formats and voices; refusals as OpenAI words
them."""

from __future__ import annotations

import datetime
import inspect
import re
import typing

from pydantic import TypeAdapter, ValidationError

VOICES = {"alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar"}
FORMATS = {"audio/pcm": 24000, "audio/pcmu": 8000, "audio/pcma": 8000}


def sdk_models() -> tuple[set[str], dict[str, datetime.date]]:
    """The Realtime session models the pinned SDK lists, and the shutdown date of those its
    notes announce one for (read from the SDK's own source, so they follow its pin)."""
    from openai.types.realtime import realtime_session_create_request_param as module
    hint = typing.get_type_hints(module.RealtimeSessionCreateRequestParam)["model"]
    names = {a for arg in typing.get_args(hint) for a in typing.get_args(arg) if isinstance(a, str)}
    dates = {}
    for names_text, day in re.findall(r'-\s+((?:"[^"]+",?\s*)+):\s*Announced shutdown date:\s*'
                                      r"(\d{4}-\d{2}-\d{2})", inspect.getsource(module)):
        for name in re.findall(r'"([^"]+)"', names_text):
            dates[name] = datetime.date.fromisoformat(day)
    return names, dates


def client_event_types() -> dict[str, TypeAdapter]:
    """Each client event type → a validator of the SDK's param type for it."""
    from openai.types.realtime import RealtimeClientEventParam
    adapters = {}
    for param in typing.get_args(RealtimeClientEventParam):
        kind = typing.get_args(typing.get_type_hints(param)["type"])[0]
        kind = typing.get_args(kind)[0] if typing.get_args(kind) else kind
        adapters[kind] = TypeAdapter(param)
    return adapters


def refusal(exc: ValidationError, path: tuple = ()) -> Refused:
    """The first problem pydantic found, as the service words it (the union branches it tried,
    named in capitals, left out of the parameter's path)."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in (*path, *first["loc"]) if not str(p)[:1].isupper())
    return Refused(f"Invalid value at '{where}': {first['msg']}", param=where)


def read_through(value, path: tuple = ()) -> None:
    """Read a validated value to its end: pydantic checks an Iterable's items only as they
    are read (Refused at the first bad one)."""
    if isinstance(value, dict):
        for key, item in value.items():
            read_through(item, (*path, key))
        return
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        return
    items, index = iter(value), 0
    while True:
        try:
            item = next(items)
        except StopIteration:
            return
        except ValidationError as exc:
            raise refusal(exc, path) from None  # its loc starts with the index
        read_through(item, (*path, index))
        index += 1


class Refused(Exception):
    """A client event the service refuses: sent back as an `error` event."""

    def __init__(self, message: str, code: str = "invalid_value", param: str | None = None,
                 kind: str = "invalid_request_error"):
        super().__init__(message)
        self.code, self.param, self.kind = code, param, kind


class RealtimeContract:
    """The checks the stand-in makes, read once from the SDK's types."""

    def __init__(self):
        from openai.types.realtime import RealtimeServerEvent
        from openai.types.realtime.realtime_response_create_params_param import (
            RealtimeResponseCreateParamsParam,
        )
        from openai.types.realtime.realtime_session_create_request_param import (
            RealtimeSessionCreateRequestParam,
        )
        self.models, self.shutdown_dates = sdk_models()
        self.session_keys = set(typing.get_type_hints(RealtimeSessionCreateRequestParam))
        self.response_keys = set(typing.get_type_hints(RealtimeResponseCreateParamsParam))
        self.adapters = client_event_types()
        self.server_events = TypeAdapter(RealtimeServerEvent)

    def model_problem(self, model: str, today: datetime.date) -> str | None:
        """Why the service refuses this model today (not listed, or shut down), or None."""
        if model not in self.models:
            return f"The model `{model}` does not exist or you do not have access to it."
        ends = self.shutdown_dates.get(model)
        if ends is not None and today >= ends:
            return f"The model `{model}` has been deprecated (shut down on {ends})."
        return None

    def check(self, kind, event: dict) -> None:
        """Refused unless the SDK's param type for `kind` takes the event, naming
        nothing it does not know, with a format and voice the service offers."""
        adapter = self.adapters.get(kind)
        if adapter is None:
            raise Refused(f"Invalid value: '{kind}'. Supported values are: "
                          + ", ".join(f"'{k}'" for k in sorted(self.adapters)) + ".",
                          param="type")
        for field in ("session", "response"):  # the format first: its own clear refusal
            if isinstance(event.get(field), dict):
                output = (event[field].get("audio") or {}).get("output") or {}
                output_problem(output, f"{field}.audio.output")
        try:
            read_through(adapter.validate_python(event))
        except ValidationError as exc:
            raise refusal(exc) from None
        for field, known in (("session", self.session_keys),
                             ("response", self.response_keys)):
            unknown = set(event.get(field) or {}) - known
            if unknown:
                name = sorted(unknown)[0]
                raise Refused(f"Unknown parameter: '{field}.{name}'.", code="unknown_parameter",
                              param=f"{field}.{name}")


def output_problem(output, where: str) -> None:
    """A format or voice the service does not offer (other shapes: the SDK types judge)."""
    if not isinstance(output, dict):
        return
    fmt = output.get("format")
    if isinstance(fmt, dict) and (fmt.get("type") not in FORMATS or fmt.get("rate", FORMATS[
            fmt["type"]]) != FORMATS[fmt["type"]]):
        raise Refused(f"Invalid value: '{fmt.get('type')}'. Supported values are: "
                      "'audio/pcm' (24000 Hz), 'audio/pcmu' and 'audio/pcma'.",
                      param=f"{where}.format.type")
    voice = output.get("voice")
    if isinstance(voice, str) and voice not in VOICES:
        raise Refused(f"Invalid value: '{voice}'. Supported values are: "
                      + ", ".join(sorted(VOICES)) + ".", param=f"{where}.voice")
