"""Twilio's request signatures: X-Twilio-Signature made with the auth token, or with a Webhooks
SharedKey when X-Twilio-Webhooks-Signature-Settings says so (key and algorithm)."""

from __future__ import annotations

from twilio.request_validator import (
    HMAC_SHA1,
    HMAC_SHA256,
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    get_signature_algorithm,
)

from .config import Settings

ALGORITHMS = (HMAC_SHA1, HMAC_SHA256)
__all__ = ["SIGNATURE_HEADER", "SIGNATURE_SETTINGS_HEADER", "problem", "shared_keys"]


def shared_keys(settings: Settings) -> list[str]:
    """The SharedKey secrets of TWILIO_WEBHOOK_SHARED_KEY (two during a key rotation)."""
    return [key.strip() for key in settings.twilio_webhook_shared_key.split(",") if key.strip()]


def problem(settings: Settings, url: str, params: dict, signature: str,
            signature_settings: str = "") -> str | None:
    """Why this signature of `url` and `params` is not Twilio's, or None when it is. Without
    the settings header Twilio signed with the auth token (HMAC-SHA1); with it, with the
    SharedKey the header names and its algorithm (only the hash changes)."""
    if not signature:
        return f"missing {SIGNATURE_HEADER}"
    if not signature_settings:
        if RequestValidator(settings.twilio_auth_token).validate(url, params, signature):
            return None
        return f"{SIGNATURE_HEADER} does not match (check PUBLIC_BASE_URL and TWILIO_AUTH_TOKEN)"
    algorithm = get_signature_algorithm(signature_settings).upper()
    keys = shared_keys(settings)
    if not keys:
        return (f"signed with a Webhooks SharedKey ({SIGNATURE_SETTINGS_HEADER}) but "
                "TWILIO_WEBHOOK_SHARED_KEY is not set")
    if algorithm not in ALGORITHMS:
        return f"unsupported signature algorithm {algorithm[:40]!r} ({', '.join(ALGORITHMS)} known)"
    if any(RequestValidator(key).validate(url, params, signature, algorithm) for key in keys):
        return None
    return (f"{SIGNATURE_HEADER} does not match the Webhooks SharedKey (check "
            "TWILIO_WEBHOOK_SHARED_KEY and PUBLIC_BASE_URL)")
