"""Settings read from the environment, validated at start-up with every problem listed at once.

Each variable is declared once, as a `Settings` field made by `setting()`: its default (the value
used when the variable is unset), its parser (which also checks the value) and one line of help.
The variable is the field's name upper-cased. `Settings.from_env` reads and checks; the files
the line needs are written by `Settings.prepare`, once, at start-up.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import hmac
import importlib.util
import ipaddress
import json
import os
import secrets
import stat
import tempfile
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import phonenumbers

from . import google_voices

ROOT = Path(__file__).resolve().parent.parent
LOCAL_ACCOUNT_SID = "AC" + "0" * 32
TWILIO_API = "https://api.twilio.com"
GCP_CREDENTIALS_FILE = "gcp-credentials.json"  # in VAR_DIR: one private copy per deployment
EMULATOR_TOKEN_FILE = "emulator_auth_token"  # in VAR_DIR: shared by `make run` and `make call`
ASR_CHOICES = ("auto", "google", "openai", "whisper", "fake", "none")
LLM_CHOICES = ("auto", "google", "openai", "scripted", "fake")
TTS_CHOICES = ("auto", "google", "openai", "espeak", "fake")


class ConfigError(ValueError):
    """Start-up configuration problems, one per line."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("bad configuration:\n  " + "\n  ".join(problems))


def boolean(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def int_range(low: int, high: int) -> Callable[[str], int]:
    """A parser of integers from low to high (also the CLI's --days)."""
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError(f"expected an integer from {low} to {high}") from None
        if not low <= value <= high:
            raise ValueError(f"expected an integer from {low} to {high}")
        return value
    return parse


def float_range(low: float, high: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise ValueError(f"expected a number from {low} to {high}") from None
        if not low <= value <= high:
            raise ValueError(f"expected a number from {low} to {high}")
        return value
    return parse


def one_of(*options: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in options:
            raise ValueError("expected one of " + "|".join(options))
        return value
    return parse


def upper_one_of(*options: str) -> Callable[[str], str]:
    lower = one_of(*(o.lower() for o in options))
    return lambda raw: lower(raw).upper()


def text(raw: str) -> str:
    return raw.strip()


def phone_number(raw: str) -> str:
    """An E.164 number: + then the country code and the number as dialled from abroad (spaces
    and hyphens are dropped). Read with `phonenumbers`: a trunk prefix kept after the country
    code (+9720…, the 0 dialled only inside the country) is refused with the number to write."""
    value = "".join(raw.split()).replace("-", "")
    if not value:
        return value
    if not (value[:1] == "+" and value[1:].isdigit() and 8 <= len(value) - 1 <= 15):
        raise ValueError("expected an E.164 number like +972501234567")
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        raise ValueError("expected an E.164 number like +972501234567 (unknown country "
                         "code)") from None
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if e164 != value:  # the library dropped what follows +CC and is not part of the number
        raise ValueError(f"the {value[1 + len(str(number.country_code)):][:1]} after "
                         f"+{number.country_code} is dialled only inside the country; "
                         f"write {e164}")
    if not phonenumbers.is_possible_number(number):
        region = phonenumbers.region_code_for_number(number) or f"+{number.country_code}"
        raise ValueError(f"not a possible phone number of {region}; expected E.164 like "
                         "+972501234567")
    return value


def time_zone(raw: str) -> str:
    value = raw.strip()
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError("expected a time zone name like Asia/Jerusalem") from None
    return value


def email_list(raw: str) -> str:
    """Comma-separated e-mail addresses."""
    addresses = [a.strip() for a in raw.split(",") if a.strip()]
    for address in addresses:
        local, _, domain = address.partition("@")
        if not local or not domain or " " in address:
            raise ValueError(f"{address!r} is not an e-mail address")
    return ", ".join(addresses)


def smtp_url(raw: str) -> str:
    """smtp://[user:password@]host[:port][?starttls=true] or smtps://… (TLS from the start).
    Plain smtp:// (password and caller details in clear) only to this machine."""
    value = raw.strip()
    if value:
        parts = urlsplit(value)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("expected smtp://user:password@host:587 or smtps://…")
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            raise ValueError("expected a port number after the host") from None
        if parts.scheme == "smtp" and not smtp_starttls(value) \
                and not is_loopback_host(parts.hostname):
            raise ValueError(f"plain SMTP to {parts.hostname} would send the password and the "
                             "messages unencrypted: add ?starttls=true or use smtps://")
    return value


def smtp_starttls(url: str) -> bool:
    """The `starttls` query value of an SMTP URL (false when absent; a typo is an error)."""
    values = parse_qs(urlsplit(url).query, keep_blank_values=True).get("starttls", ["false"])
    try:
        return boolean(values[-1])
    except ValueError:
        raise ValueError(f"starttls={values[-1]!r}: expected true or false") from None


def json_text(raw: str) -> str:
    value = raw.strip()
    if value:
        try:
            json.loads(value)
        except ValueError:
            raise ValueError("expected a service-account JSON") from None
    return value


def setting(default: Any, parse: Callable[[str], Any], help: str, secret: bool = False) -> Any:
    """A field read from the environment variable named like it, upper-cased; `default` is the
    value when the variable is unset (before from_env resolves `auto` and the like)."""
    return field(default=default, repr=not secret,
                 metadata={"parse": parse, "help": help, "secret": secret})


def env_fields() -> tuple[dataclasses.Field, ...]:
    """The fields read from the environment, in declaration order."""
    return tuple(f for f in dataclasses.fields(Settings) if "parse" in f.metadata)


def env_name(f: dataclasses.Field) -> str:
    """A field's environment variable."""
    return f.name.upper()


@dataclass(frozen=True)
class Settings:
    """Validated configuration of one process; build it with `Settings.from_env`."""

    public_base_url: str = setting(
        "", text, "the https address Twilio reaches (unset: 127.0.0.1, the emulator's)")
    port: int = setting(5000, int_range(1, 65535), "the port gunicorn listens on")
    bind_host: str = setting("0.0.0.0", text, "the address gunicorn listens on")
    workers: int = setting(
        1, int_range(1, 64), "gunicorn worker processes (more than 1 needs PostgreSQL)")
    twilio_account_sid: str = setting(
        "", text, "Twilio account (none and a loopback URL: the local emulator's)")
    twilio_auth_token: str = setting(
        "", text, "signs webhooks and REST requests; needed with TWILIO_ACCOUNT_SID",
        secret=True)
    twilio_api_base_url: str = setting(
        TWILIO_API, text, "Twilio's REST API (locally the emulator's)")
    google_application_credentials: str = setting(
        "", text, "a Google credentials JSON file for Google ASR/TTS")
    gcp_credentials_json: str = setting(
        "", json_text, "the Google service-account JSON itself, kept in VAR_DIR/"
        + GCP_CREDENTIALS_FILE, secret=True)
    openai_api_key: str = setting("", text, "OpenAI ASR/LLM/TTS", secret=True)
    openai_base_url: str = setting("", text, "an OpenAI-compatible API instead of OpenAI's")
    database_url: str = setting(
        "sqlite:///var/ivr.sqlite3", text, "SQLite (relative to the project) or PostgreSQL")
    asr_engine: str = setting(
        "auto", one_of(*ASR_CHOICES), "speech recognition; auto: google, openai, whisper or none")
    llm_engine: str = setting(
        "auto", one_of(*LLM_CHOICES), "replies; auto: openai with a key, else scripted")
    tts_engine: str = setting(
        "auto", one_of(*TTS_CHOICES), "speech synthesis; auto: google, openai or espeak")
    language: str = setting("he-IL", text, "recognition language")
    gather_language: str = setting(
        "", text, "<Gather>'s speech language (default: iw-IL for he-IL, else LANGUAGE)")
    turn_mode: str = setting(
        "auto", one_of("auto", "stream", "record", "gather"),
        "how a turn is heard; auto: stream with an ASR engine, else gather")
    reply_mode: str = setting(
        "play", one_of("play", "action", "stream"), "how a reply in chunks reaches the caller")
    ws_mode: str = setting(
        "AI", upper_one_of("AI", "ECHO"), "ECHO streams the caller's audio back (a diagnostic)")
    twiml_play_greeting: bool = setting(
        False, boolean, "stream mode: play the greeting whole before the stream opens instead")
    stream_greeting: bool = setting(
        True, boolean, "stream mode: greet a caller silent 0.8 s; false: wait for them to speak")
    ai_greeting_he: str = setting(
        "", text, "the greeting's words in every mode (empty: the flow's `greeting:`)")
    min_utt_sec: float = setting(0.48, float_range(0.1, 5.0), "shortest utterance")
    vad_hangover_ms: int = setting(140, int_range(0, 5000), "silence that ends an utterance")
    early_asr_sec: float = setting(
        0.1, float_range(0, 5.0), "transcribe after this silence, before the turn ends; 0: off")
    draft_reply: bool = setting(
        True, boolean, "the LLM asked on the caller's words before the turn surely ends")
    vad_rms: int = setting(210, int_range(0, 32767),
                           "loudness always voice (less on a quiet line); barge-in needs it")
    max_utt_sec: float = setting(7.0, float_range(0.5, 60.0), "longest utterance")
    resp_min_delay_ms: int = setting(220, int_range(0, 5000), "shortest pause before a reply")
    resp_max_delay_ms: int = setting(360, int_range(0, 5000), "longest pause before a reply")
    reply_refractory_ms: int = setting(
        750, int_range(0, 10000), "from a reply's start: voice begun and ended in it is echo")
    barge_in: bool = setting(True, boolean, "the caller may interrupt the line")
    barge_in_voice_frames: int = setting(
        3, int_range(1, 100),
        "voiced 20 ms frames that interrupt (BACKCHANNEL_SEC=0, or live words say so)")
    backchannel_sec: float = setting(
        0.5, float_range(0, 5.0), "voice over the line shorter than this (כן, אהה) goes on; 0: off")
    dedup_window_sec: float = setting(
        14.0, float_range(0, 3600), "the same caller text within this window is ignored")
    thinking_hint_ms: int = setting(
        0, int_range(0, 60000), "play the thinking hint when a reply takes this long (0: off)")
    llm_min_chars: int = setting(160, int_range(0, 4000), "shortest reply")
    llm_max_chars: int = setting(420, int_range(20, 4000), "longest reply")
    stream_start_timeout_sec: float = setting(
        6.0, float_range(0.5, 120), "watchdog: a stream that has not started moves to Record")
    no_media_timeout_sec: float = setting(
        6.0, float_range(0.5, 120), "watchdog: a stream without media moves to Record")
    max_silent_turns: int = setting(
        3, int_range(1, 20), "silent turns before a goodbye and hang-up")
    stream_silence_sec: float = setting(
        5.0, float_range(0.5, 120),
        "stream mode: a caller silent this long after the line spoke is re-prompted")
    validate_twilio_signature: bool | None = setting(
        None, boolean, "check X-Twilio-Signature (default: when a token is set)")
    twilio_webhook_shared_key: str = setting(
        "", text, "Webhooks SharedKey secret(s), comma-separated, for webhooks signed with one",
        secret=True)
    inspector_token: str = setting(
        "", text, "unlocks /inspector (not needed on loopback)", secret=True)
    metrics_token: str = setting(
        "", text, "unlocks /metrics alone (Bearer); unset: the inspector's lock", secret=True)
    tts_cache_max_mb: int = setting(500, int_range(1, 100000), "TTS MP3 cache budget")
    asr_timeout_sec: float = setting(8.0, float_range(0.1, 120), "ASR stage timeout")
    llm_timeout_sec: float = setting(8.0, float_range(0.1, 120), "LLM stage timeout")
    tts_timeout_sec: float = setting(6.0, float_range(0.1, 120), "TTS stage timeout")
    recover_to_stream: bool = setting(
        False, boolean, "after a Record fallback, try streaming again")
    continue_max_waiting: int = setting(
        40, int_range(1, 1000), "continuations that may wait for a chunk; more: the fallback")
    health_max_wait_sec: float = setting(
        3.0, float_range(0, 60), "/healthz is 503 past this wait for a thread, or loop lag")
    whisper_model: str = setting("tiny", text, "faster-whisper model name or path")
    openai_model: str = setting("gpt-6-luna", text, "OpenAI chat model")
    openai_chat_shape: str = setting(
        "auto", one_of("auto", "reasoning", "classic"),
        "chat request shape; auto: reasoning for gpt-5*, gpt-6* and o*, else classic")
    openai_asr_model: str = setting("gpt-transcribe", text, "OpenAI transcription model")
    openai_tts_model: str = setting(
        "gpt-realtime-2.1-mini", text,
        "OpenAI speech: a Realtime model (gpt-realtime…) or a /v1/audio/speech one")
    openai_tts_voice: str = setting("marin", text, "OpenAI voice")
    openai_websocket_base_url: str = setting(
        "", text, "the Realtime API's WebSocket base (default: OPENAI_BASE_URL as ws(s)://)")
    google_tts_voice: str = setting(
        "he-IL-Standard-A", text, "Google TTS voice of LANGUAGE; a Chirp3-HD voice streams")
    google_speech_endpoint: str = setting("", text, "another Speech-to-Text endpoint")
    google_tts_endpoint: str = setting("", text, "another Text-to-Speech endpoint")
    espeak_voice: str = setting("he", text, "espeak-ng voice")
    espeak_speed: int = setting(160, int_range(80, 450), "espeak-ng words per minute")
    flow_file: str = setting(  # the running line reads an edit; keeps the last good one
        "", text, "the flow (default ivr/flows/default_he.yaml); edits apply without restart")
    facts_file: str = setting(  # and its reviewed facts_imported.yaml; keeps the last good one
        "", text, "the business's facts (default ivr/flows/facts_he.yaml); edits apply live")
    system_prompt_file: str = setting(
        "", text, "the LLM's system prompt (default ivr/prompts/system_he.txt)")
    tts_dir: str = setting(str(ROOT / "static" / "tts"), text, "TTS MP3 cache")
    var_dir: str = setting(str(ROOT / "var"), text, "local state (tokens, credentials copy)")
    min_free_disk_mb: int = setting(
        200, int_range(0, 10**7), "/healthz answers 503 below this much free space")
    retention_days: int = setting(
        90, int_range(1, 3650), "calls, events and recordings older than this are deleted")
    owner_phone: str = setting(
        "", phone_number, "the owner's phone (E.164, no trunk 0): transfers, ring-first in hours")
    owner_ring_first: bool = setting(
        False, boolean, "in business hours ring OWNER_PHONE first; the line answers if not")
    owner_dial_timeout_sec: int = setting(
        20, int_range(5, 120), "seconds the owner's phone rings before the line takes the call")
    owner_max_transfers: int = setting(
        1, int_range(0, 10), "transfers one call may have (ring-first not counted); then a "
        "message is taken")
    timezone: str = setting(
        "Asia/Jerusalem", time_zone, "time zone of the business hours and of the times in SMS, "
        "e-mail and inspector")
    notify_sms_to: str = setting("", phone_number, "send each message left to this phone")
    notify_sms_from: str = setting(
        "", phone_number, "your Twilio number SMS go from (yours; callers' bookings, reminders)")
    smtp_url: str = setting(
        "", smtp_url, "mail server for notifications: smtp://user:pass@host:587?starttls=true",
        secret=True)
    notify_email_to: str = setting("", email_list, "send each message left to these e-mails")
    notify_email_from: str = setting(
        "", email_list, "the notifications' From address (default: the SMTP user)")
    notify_every_call: bool = setting(
        False, boolean, "notify after every call, not only when a message was left")
    inbox_digest_hour: int = setting(
        19, int_range(0, 23), "the hour (TIMEZONE) the day's new unanswered questions are sent")
    notify_retry_sec: float = setting(
        5.0, float_range(0.01, 3600), "first wait before a failed notification is retried")
    calendar_url: str = setting(
        "", text, "the CalDAV calendar's own URL (not the server's): bookings in, busy out")
    calendar_user: str = setting("", text, "the CalDAV user name (often the e-mail address)")
    calendar_password: str = setting(
        "", text, "an app-specific CalDAV password (Google needs OAuth: use the feed)",
        secret=True)
    calendar_timeout_sec: float = setting(
        5.0, float_range(0.5, 60), "a CalDAV request's wait; then the booking syncs later")
    reminder_hours: int = setting(
        24, int_range(0, 336), "the reminder SMS goes this long before an appointment (0: none)")
    calendar_feed_token: str = setting(
        "", text, "the secret in the appointments feed's address (unset: no feed)",
        secret=True)
    # resolved by from_env, not read from the environment
    local_mode: bool = False
    # origins (scheme://host:port) whose pre-signed URLs a recording may redirect to besides
    # https S3 and Google Cloud Storage: set by tests for the emulator's storage stand-in only
    recording_storage_origins: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    stream_secret: str = field(default_factory=lambda: secrets.token_hex(16), repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read, default, check and resolve every variable; raise ConfigError naming all bad
        ones. It writes nothing, except that local mode creates the emulator's token file when
        it is missing (see `local_auth_token`); `prepare` writes what the line needs."""
        env = dict(os.environ if env is None else env)
        values, problems = _parse_all(env)
        _check_gcp_credentials(values, problems)
        _check_base_url(values, problems)
        _check_urls(values, problems)
        _resolve_engines(values, problems)
        _check_google_voice(values, problems)
        _resolve_gather_language(values)
        _check_ranges(values, problems)
        _check_workers(values, problems)
        _check_owner(values, problems)
        _resolve_twilio(values, problems)
        if problems:
            raise ConfigError(problems)
        return cls(**values)

    def prepare(self) -> None:
        """The start-up step (create_app, `check`, `prewarm`): write GCP_CREDENTIALS_JSON to its
        0600 file, which the Google engines are given by path; ConfigError if it cannot be."""
        if not self.gcp_credentials_json:
            return
        target = Path(self.google_application_credentials)
        try:
            write_private_file(target, self.gcp_credentials_json)
        except OSError as exc:
            problem = f"GCP_CREDENTIALS_JSON=(set): cannot write {target}: {exc.strerror or exc}"
            raise ConfigError([problem]) from None

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed (tests and the CLI use this)."""
        return dataclasses.replace(self, **changes)

    @property
    def public_on_loopback(self) -> bool:
        """PUBLIC_BASE_URL names this machine: a local line, not one published through a proxy."""
        return is_loopback_host(urlsplit(self.public_base_url).hostname)

    @property
    def twilio_gateway(self) -> str:
        """TWILIO_API_BASE_URL when it is not one of Twilio's hosts (the emulator, a proxy):
        Twilio's other API hosts (Monitor, a regional recording's) are reached through it.
        "" for Twilio itself."""
        url = self.twilio_api_base_url
        return "" if is_twilio_host(urlsplit(url).hostname) else url

    @property
    def signing_key(self) -> str:
        """Key of the Stream `token` Parameter HMAC: the auth token, else a per-process secret."""
        return self.twilio_auth_token or self.stream_secret

    @property
    def tts_name_key(self) -> bytes:
        """Key of the public MP3 names (tts_cache.cache_name), derived from the signing key:
        every instance with the same TWILIO_AUTH_TOKEN (or local emulator token) names a
        sentence alike; a new token renames every file (they are synthesised again)."""
        return hmac.new(self.signing_key.encode(), b"ivr tts cache names", hashlib.sha256).digest()

    @property
    def slot_key(self) -> bytes:
        """Key of the booking tools' slot ids (ivr/booking/tools.py), derived from the signing
        key: every worker and instance with the same TWILIO_AUTH_TOKEN reads the others' ids."""
        return hmac.new(self.signing_key.encode(), b"ivr booking slot ids", hashlib.sha256).digest()

    @property
    def session_key(self) -> bytes:
        """Key of the inspector's session cookie (its forms' CSRF token), derived from the
        signing key: a form shown by one instance is accepted by every other."""
        return hmac.new(self.signing_key.encode(), b"ivr inspector session", hashlib.sha256
                        ).digest()

    def secrets(self) -> list[str]:
        """Secret values that must never reach a log line or an event row."""
        values = [getattr(self, f.name) for f in env_fields() if f.metadata["secret"]]
        for url in (self.smtp_url, self.calendar_url):
            password = urlsplit(url).password or ""  # alone, as an SMTP error shows it,
            values += [password, unquote(password)]  # as written in the URL and as sent
        return [value for value in values if value]


def _parse_all(env: dict[str, str]) -> tuple[dict[str, Any], list[str]]:
    values: dict[str, Any] = {}
    problems: list[str] = []
    for f in env_fields():
        name, default = env_name(f), f.default
        raw = env.get(name)
        if raw is None or (raw.strip() == "" and default not in ("", None)):
            values[f.name] = default
            continue
        try:
            values[f.name] = f.metadata["parse"](raw)
        except ValueError as exc:
            shown = "(set)" if f.metadata["secret"] else repr(raw)
            problems.append(f"{name}={shown}: {exc}")
            values[f.name] = default
    values["warnings"] = []
    return values, problems


def gcp_credentials_path(var_dir: str) -> Path:
    """Where `prepare` keeps GCP_CREDENTIALS_JSON: one private file per deployment."""
    return Path(var_dir).absolute() / GCP_CREDENTIALS_FILE


def _check_gcp_credentials(values: dict, problems: list[str]) -> None:
    """GCP_CREDENTIALS_JSON names its future file in GOOGLE_APPLICATION_CREDENTIALS, unless
    that variable names another file, which then wins (the JSON is ignored)."""
    target = str(gcp_credentials_path(values["var_dir"]))
    if values["gcp_credentials_json"] and values["google_application_credentials"] in ("", target):
        values["google_application_credentials"] = target
        return
    values["gcp_credentials_json"] = ""
    creds = values["google_application_credentials"]
    if creds and not Path(creds).is_file():
        problems.append(f"GOOGLE_APPLICATION_CREDENTIALS={creds!r}: expected a readable JSON file")


def write_private_file(path: Path, content: str) -> bool:
    """Make `path` a 0600 regular file holding `content`: left alone when it already is, else
    replaced atomically (a temporary file in the same folder, then os.replace). True if written."""
    try:
        info = os.lstat(path)
        if (stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600
                and path.read_text(encoding="utf-8") == content):
            return False
    except (FileNotFoundError, UnicodeDecodeError):
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:  # mkstemp made it 0600
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    return True


def is_loopback_host(host: str | None) -> bool:
    """True for localhost and loopback addresses (where plain http/ws is acceptable)."""
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_twilio_host(host: str | None) -> bool:
    """twilio.com or one of its hosts (api.twilio.com, api.dublin.ie1.twilio.com, …)."""
    return bool(host) and (host == "twilio.com" or host.endswith(".twilio.com"))


def _check_base_url(values: dict, problems: list[str]) -> None:
    base = values["public_base_url"].rstrip("/")
    if not base:
        base = f"http://127.0.0.1:{values['port']}"
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        problems.append(f"PUBLIC_BASE_URL={base!r}: expected https://your-host (no path)")
    elif parts.path or parts.query or parts.fragment:
        problems.append(f"PUBLIC_BASE_URL={base!r}: expected scheme and host only, no path")
    elif parts.scheme == "http" and not is_loopback_host(parts.hostname):
        problems.append(f"PUBLIC_BASE_URL={base!r}: Twilio needs https:// (wss:// for the stream)")
    values["public_base_url"] = base


def _check_urls(values: dict, problems: list[str]) -> None:
    for name in ("twilio_api_base_url", "openai_base_url"):
        url = values[name].rstrip("/")
        values[name] = url
        if url and (urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname):
            problems.append(f"{name.upper()}={url!r}: expected an http(s) URL")
    url = values["calendar_url"]  # a CalDAV collection keeps its trailing slash
    if url and (urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname):
        problems.append("CALENDAR_URL: expected the calendar's http(s) URL")
    url = values["openai_websocket_base_url"].rstrip("/")
    values["openai_websocket_base_url"] = url
    if url and (urlsplit(url).scheme not in ("ws", "wss") or not urlsplit(url).hostname):
        problems.append(f"OPENAI_WEBSOCKET_BASE_URL={url!r}: expected a ws(s):// URL")
    for name in ("flow_file", "facts_file", "system_prompt_file"):
        if values[name] and not Path(values[name]).is_file():
            problems.append(f"{name.upper()}={values[name]!r}: expected a readable file")
    if values["database_url"].startswith("sqlite:///"):
        path = values["database_url"][len("sqlite:///"):]
        if path and path != ":memory:" and not Path(path).is_absolute():
            values["database_url"] = "sqlite:///" + str(ROOT / path)


def _resolve_engines(values: dict, problems: list[str]) -> None:
    google = bool(values["google_application_credentials"])
    openai = bool(values["openai_api_key"])
    cloud = "google" if google else "openai" if openai else ""
    if values["asr_engine"] == "auto":
        whisper = importlib.util.find_spec("faster_whisper") is not None
        values["asr_engine"] = cloud or ("whisper" if whisper else "none")
    if values["llm_engine"] == "auto":
        values["llm_engine"] = "openai" if openai else "scripted"
    if values["tts_engine"] == "auto":
        values["tts_engine"] = cloud or "espeak"
    needs = {"google": ("GOOGLE_APPLICATION_CREDENTIALS or GCP_CREDENTIALS_JSON", google),
             "openai": ("OPENAI_API_KEY", openai)}
    for kind in ("asr", "llm", "tts"):
        engine = values[f"{kind}_engine"]
        if engine in needs and not needs[engine][1]:
            problems.append(f"{kind.upper()}_ENGINE={engine}: set {needs[engine][0]}")
    if values["llm_engine"] == "google":
        problems.append("LLM_ENGINE=google: not available; use openai or scripted")
    mode = values["turn_mode"]
    if mode == "auto":
        values["turn_mode"] = "gather" if values["asr_engine"] == "none" else "stream"
    elif mode in ("stream", "record") and values["asr_engine"] == "none":
        problems.append(f"TURN_MODE={mode}: needs an ASR engine (set ASR_ENGINE or credentials)")


def _check_google_voice(values: dict, problems: list[str]) -> None:
    """When Google speaks, GOOGLE_TTS_VOICE names a voice of LANGUAGE (a typo is refused here,
    not heard as a beep on every call); one Google does not list is only warned about."""
    if values["tts_engine"] != "google":
        return
    voice, language = values["google_tts_voice"], values["language"]
    if problem := google_voices.problem(voice, language):
        problems.append(f"GOOGLE_TTS_VOICE={voice!r}: {problem}")
    elif note := google_voices.unlisted(voice, language):
        values["warnings"].append(f"WARNING: GOOGLE_TTS_VOICE={voice!r}: {note}")


HEBREW_GATHER_TAG = "iw-IL"  # Hebrew as Twilio's <Gather> language table lists it (docs/twilio.md)


def _resolve_gather_language(values: dict) -> None:
    """GATHER_LANGUAGE unset: LANGUAGE, except that he-IL is Twilio's iw-IL."""
    if not values["gather_language"]:
        language = values["language"]
        values["gather_language"] = HEBREW_GATHER_TAG if language == "he-IL" else language


def _check_ranges(values: dict, problems: list[str]) -> None:
    if values["resp_min_delay_ms"] > values["resp_max_delay_ms"]:
        problems.append("RESP_MIN_DELAY_MS must not exceed RESP_MAX_DELAY_MS")
    if values["llm_min_chars"] > values["llm_max_chars"]:
        problems.append("LLM_MIN_CHARS must not exceed LLM_MAX_CHARS")
    if values["min_utt_sec"] >= values["max_utt_sec"]:
        problems.append("MIN_UTT_SEC must be below MAX_UTT_SEC")


def _check_workers(values: dict, problems: list[str]) -> None:
    """Several workers (or instances) share one database: only PostgreSQL is shared safely."""
    if values["workers"] > 1 and values["database_url"].startswith("sqlite"):
        problems.append(f"WORKERS={values['workers']}: several workers need PostgreSQL "
                        "(DATABASE_URL=postgresql+psycopg://…); SQLite is for one worker only")


def _check_owner(values: dict, problems: list[str]) -> None:
    """What reaching and telling the owner needs, set together."""
    if values["owner_ring_first"] and not values["owner_phone"]:
        problems.append("OWNER_RING_FIRST=true needs OWNER_PHONE (the number to ring)")
    if values["notify_sms_to"] and not values["notify_sms_from"]:
        problems.append("NOTIFY_SMS_TO needs NOTIFY_SMS_FROM (your Twilio number that sends it)")
    smtp_refused = any(p.startswith("SMTP_URL=") for p in problems)  # set, named already
    if values["notify_email_to"] and not values["smtp_url"] and not smtp_refused:
        problems.append("NOTIFY_EMAIL_TO needs SMTP_URL (the mail server that sends it)")


def _resolve_twilio(values: dict, problems: list[str]) -> None:
    """Local mode (no account, loopback URL): the emulator's account, its carrier on PORT+1."""
    host = urlsplit(values["public_base_url"]).hostname
    sid, token = values["twilio_account_sid"], values["twilio_auth_token"]
    if not sid and not token and is_loopback_host(host):
        values["local_mode"] = True
        values["twilio_account_sid"] = LOCAL_ACCOUNT_SID
        if values["twilio_api_base_url"] == TWILIO_API:
            values["twilio_api_base_url"] = f"http://127.0.0.1:{values['port'] + 1}"
        try:
            values["twilio_auth_token"] = local_auth_token(Path(values["var_dir"]))
        except OSError as exc:
            problems.append(f"VAR_DIR={values['var_dir']!r}: cannot keep the emulator's token: "
                            f"{exc.strerror or exc}")
    elif sid and not (sid.startswith("AC") and len(sid) == 34):
        problems.append("TWILIO_ACCOUNT_SID: expected AC followed by 32 characters")
    validate = values["validate_twilio_signature"]
    if validate is None:
        validate = bool(values["twilio_auth_token"])
        if not validate:  # not the owner's choice: said after its real cause
            values["warnings"].append(
                "WARNING: webhook signatures are not checked: no TWILIO_AUTH_TOKEN is set; "
                "anyone who finds this URL can drive calls")
    elif validate and not values["twilio_auth_token"]:
        problems.append("VALIDATE_TWILIO_SIGNATURE=true needs TWILIO_AUTH_TOKEN "
                        "(set it, or VALIDATE_TWILIO_SIGNATURE=false to accept unsigned webhooks)")
    elif not validate:
        values["warnings"].append(
            "WARNING: VALIDATE_TWILIO_SIGNATURE=false: anyone who finds this URL can drive calls")
    values["validate_twilio_signature"] = validate
    values["warnings"] = tuple(values["warnings"])


def account_problems(settings: Settings) -> list[str]:
    """What a line on a real Twilio account cannot work without (`check` refuses it; the
    emulator's tools may run so): the auth token, which signs the webhooks and every REST
    request (recordings, redirects, SMS), and a public address Twilio can reach; and a public
    address with no account at all (loopback with none is the local emulator)."""
    if settings.local_mode:
        return []
    if not settings.twilio_account_sid:
        if settings.public_on_loopback:
            return []
        return [f"PUBLIC_BASE_URL={settings.public_base_url!r} is a public address but "
                "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are not both set: Twilio's webhooks "
                "would go unchecked and every REST request (recordings, SMS, redirects) has no "
                "account; set both (or leave PUBLIC_BASE_URL unset to try the line here on the "
                "emulator)"]
    problems = []
    if not settings.twilio_auth_token:
        problems.append("TWILIO_ACCOUNT_SID is set but TWILIO_AUTH_TOKEN is not: webhook "
                        "signatures would be off and every REST request (recordings, SMS, "
                        "redirects) refused; set the account's auth token")
    if not settings.twilio_gateway and settings.public_on_loopback:
        problems.append(f"PUBLIC_BASE_URL={settings.public_base_url!r} (unset or loopback) "
                        "with a real Twilio account: Twilio cannot reach this machine there; "
                        "set the https address of the line (a tunnel for a trial)")
    return problems


def local_auth_token(var_dir: Path) -> str:
    """The local emulator's auth token, kept in the 0600 file VAR_DIR/emulator_auth_token that
    `make run` and `make call` share. Read-or-create: the first process that needs it writes it.
    The file only ever appears whole (a private temporary file hard-linked into place, which
    fails if it exists), so two processes starting at once end up with the same token."""
    path = var_dir / EMULATOR_TOKEN_FILE
    token = _read_token(path)
    if token:
        return token
    var_dir.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=var_dir, prefix=f".{EMULATOR_TOKEN_FILE}.")  # 0600
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(16))
        try:
            os.link(temp, path)
        except FileExistsError:  # another process was first, or the file is empty: replace that
            if not _read_token(path):
                os.replace(temp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
    return _read_token(path)


def _read_token(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""
