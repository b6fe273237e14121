"""Errors of engines read the same way whatever raised them: OpenAI's status errors (status, code,
type, param), Google's (status, ErrorInfo reason and metadata, REST or gRPC), google-auth's, and
the network's; with the chain of causes behind an engine's own error."""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass, field


class EmptyAnswer(RuntimeError):
    """The engine answered with nothing the line could use (no text, no audio)."""


MARKERS = ("network", "timeout", "credentials_refused", "credentials_file")  # ours, not codes


@dataclass(frozen=True)
class Signal:
    """One error of a failure's chain, read the same way whatever raised it."""

    status: int = 0  # HTTP status (Google maps its gRPC codes to one); 0 when there is none
    codes: tuple[str, ...] = ()  # most specific first: code or reason, type or status name…
    message: str = ""
    metadata: dict = field(default_factory=dict)

    def has(self, *names: str) -> bool:
        return any(name in self.codes for name in names)

    @property
    def account(self) -> str:
        """`403 SERVICE_DISABLED: Cloud Text-to-Speech API has not been used…`, on one line."""
        code = next((c for c in self.codes if c not in MARKERS), "")
        label = " ".join(part for part in (str(self.status or ""), code) if part)
        text = " ".join(self.message.split())
        text = text if len(text) <= 200 else text[:199] + "…"
        return f"{label}: {text}" if label else text


def codes(*values) -> tuple[str, ...]:
    return tuple(dict.fromkeys(str(v) for v in values if v))


def read_openai(error: BaseException) -> Signal | None:
    try:
        import openai
    except ImportError:
        return None
    if isinstance(error, openai.APITimeoutError):
        return Signal(codes=codes("timeout"), message=str(error))
    if isinstance(error, openai.APIConnectionError):
        return Signal(codes=codes("network"), message=str(error))
    if not isinstance(error, openai.APIStatusError):
        return None
    body = error.body if isinstance(error.body, dict) else {}
    param = f"param:{error.param}" if error.param else ""
    return Signal(error.status_code, codes(error.code, error.type, param),
                  str(body.get("message") or error.message))


def read_google(error: BaseException) -> Signal | None:
    try:
        from google.api_core import exceptions
    except ImportError:
        return None
    if not isinstance(error, exceptions.GoogleAPICallError):
        return None
    status_name = getattr(error.grpc_status_code, "name", "") or rest_status(error)
    message = re.sub(r"^[A-Z]+ \S+: ", "", str(error.message))  # REST: "POST url: message"
    return Signal(error.code or 0, codes(error.reason, status_name), message,
                  dict(error.metadata or {}))


def rest_status(error) -> str:
    """The `status` of a REST error body (INVALID_ARGUMENT…: api_core maps 400 to BadRequest)."""
    try:
        return str(error.response.json()["error"]["status"])
    except Exception:  # noqa: BLE001 - a gRPC call, or a body that is not Google's JSON
        return ""


def read_google_auth(error: BaseException) -> Signal | None:
    try:
        from google.auth import exceptions
    except ImportError:
        return None
    message = str(error.args[0]) if error.args else str(error)
    if isinstance(error, exceptions.TransportError):  # the token endpoint was not reached
        return Signal(codes=codes("network"), message=message)
    if isinstance(error, exceptions.RefreshError):  # the token endpoint refused the key
        return Signal(401, codes("credentials_refused"), message)
    if isinstance(error, exceptions.DefaultCredentialsError):
        return Signal(codes=codes("credentials_file"), message=message)
    return None


KNOWN_CODES = ("invalid_api_key", "insufficient_quota", "model_not_found", "rate_limit_exceeded",
               "unsupported_parameter", "unsupported_value", "SERVICE_DISABLED",
               "BILLING_DISABLED")  # as an engine's own error may quote them (Realtime events)


def read_other(error: BaseException) -> Signal:
    """Any other error: the network's, a timeout, or an engine's own (with the provider codes it
    quotes, and the HTTP status of a refused WebSocket handshake)."""
    import requests
    name, message = type(error).__name__, str(error) or type(error).__name__
    if isinstance(error, (TimeoutError, requests.Timeout)) and \
            not isinstance(error, requests.ConnectionError):
        return Signal(codes=codes("timeout"), message=message)
    if isinstance(error, (requests.ConnectionError, ConnectionError, socket.gaierror)):
        return Signal(codes=codes("network"), message=message)
    status = getattr(getattr(error, "response", None), "status_code", 0)
    return Signal(status if isinstance(status, int) else 0,
                  codes(*(c for c in KNOWN_CODES if c in message), name), message)


def signals(exc: BaseException) -> list[Signal]:
    """The failure and the errors behind it (causes, then contexts), each read once."""
    chain: list[Signal] = []
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo and len(chain) < 12:
        error = todo.pop(0)
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        chain.append(next((s for reader in (read_openai, read_google, read_google_auth)
                           if (s := reader(error)) is not None), None) or read_other(error))
        todo += [error.__cause__, error.__context__]
    return chain


def with_root(account: str, chain: list[Signal]) -> str:
    """The account, and for a network failure the deepest error's words (errno, host…)."""
    root = " ".join(chain[-1].message.split())[:120]
    if not root or root in account or not any(s.has("network", "timeout") for s in chain):
        return account
    return f"{account} ({root})"
