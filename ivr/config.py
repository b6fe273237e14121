"""Settings read from the environment, validated at start-up with every problem listed at once."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import ipaddress
import json
import os
import secrets
import stat
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
LOCAL_ACCOUNT_SID = "AC" + "0" * 32
GCP_CREDENTIALS_FILE = "gcp-credentials.json"  # in VAR_DIR: one private copy per deployment
ASR_CHOICES = ("auto", "google", "openai", "whisper", "fake", "none")
LLM_CHOICES = ("auto", "google", "openai", "scripted", "fake")
TTS_CHOICES = ("auto", "google", "openai", "espeak", "fake")


class ConfigError(ValueError):
    """Start-up configuration problems, one per line."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("bad configuration:\n  " + "\n  ".join(problems))


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _int(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError(f"expected an integer from {low} to {high}") from None
        if not low <= value <= high:
            raise ValueError(f"expected an integer from {low} to {high}")
        return value
    return parse


def _float(low: float, high: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise ValueError(f"expected a number from {low} to {high}") from None
        if not low <= value <= high:
            raise ValueError(f"expected a number from {low} to {high}")
        return value
    return parse


def _choice(*options: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in options:
            raise ValueError("expected one of " + "|".join(options))
        return value
    return parse


def _upper_choice(*options: str) -> Callable[[str], str]:
    lower = _choice(*(o.lower() for o in options))
    return lambda raw: lower(raw).upper()


def _text(raw: str) -> str:
    return raw.strip()


# (environment name, parser, default). The attribute is the lower-cased name.
VARIABLES: list[tuple[str, Callable[[str], Any], Any]] = [
    ("PUBLIC_BASE_URL", _text, ""),
    ("PORT", _int(1, 65535), 5000),
    ("BIND_HOST", _text, "0.0.0.0"),
    ("TWILIO_ACCOUNT_SID", _text, ""),
    ("TWILIO_AUTH_TOKEN", _text, ""),
    ("TWILIO_API_BASE_URL", _text, "https://api.twilio.com"),
    ("GOOGLE_APPLICATION_CREDENTIALS", _text, ""),
    ("OPENAI_API_KEY", _text, ""),
    ("OPENAI_BASE_URL", _text, ""),
    ("DATABASE_URL", _text, "sqlite:///var/ivr.sqlite3"),
    ("ASR_ENGINE", _choice(*ASR_CHOICES), "auto"),
    ("LLM_ENGINE", _choice(*LLM_CHOICES), "auto"),
    ("TTS_ENGINE", _choice(*TTS_CHOICES), "auto"),
    ("LANGUAGE", _text, "he-IL"),
    ("TURN_MODE", _choice("auto", "stream", "record", "gather"), "auto"),
    ("REPLY_MODE", _choice("play", "action", "stream"), "play"),
    ("WS_MODE", _upper_choice("AI", "ECHO"), "AI"),
    ("TWIML_PLAY_GREETING", _bool, False),
    ("AI_GREETING_HE", _text, ""),
    ("MIN_UTT_SEC", _float(0.1, 5.0), 0.48),
    ("VAD_HANGOVER_MS", _int(0, 5000), 140),
    ("VAD_RMS", _int(0, 32767), 210),
    ("MAX_UTT_SEC", _float(0.5, 60.0), 7.0),
    ("RESP_MIN_DELAY_MS", _int(0, 5000), 220),
    ("RESP_MAX_DELAY_MS", _int(0, 5000), 360),
    ("REPLY_REFRACTORY_MS", _int(0, 10000), 750),
    ("BARGE_IN", _bool, True),
    ("BARGE_IN_VOICE_FRAMES", _int(1, 100), 3),
    ("DEDUP_WINDOW_SEC", _float(0, 3600), 14.0),
    ("THINKING_HINT_MS", _int(0, 60000), 0),
    ("LLM_MIN_CHARS", _int(0, 4000), 160),
    ("LLM_MAX_CHARS", _int(20, 4000), 420),
    ("STREAM_START_TIMEOUT_SEC", _float(0.5, 120), 6.0),
    ("NO_MEDIA_TIMEOUT_SEC", _float(0.5, 120), 6.0),
    ("MAX_SILENT_TURNS", _int(1, 20), 3),
    ("VALIDATE_TWILIO_SIGNATURE", _bool, None),
    ("INSPECTOR_TOKEN", _text, ""),
    ("TTS_CACHE_MAX_MB", _int(1, 100000), 500),
    ("ASR_TIMEOUT_SEC", _float(0.1, 120), 8.0),
    ("LLM_TIMEOUT_SEC", _float(0.1, 120), 8.0),
    ("TTS_TIMEOUT_SEC", _float(0.1, 120), 6.0),
    ("RECOVER_TO_STREAM", _bool, False),
    ("WHISPER_MODEL", _text, "tiny"),
    ("OPENAI_MODEL", _text, "gpt-4o-mini"),
    ("OPENAI_ASR_MODEL", _text, "gpt-4o-mini-transcribe"),
    ("OPENAI_TTS_MODEL", _text, "gpt-4o-mini-tts"),
    ("OPENAI_TTS_VOICE", _text, "alloy"),
    ("GOOGLE_TTS_VOICE", _text, "he-IL-Standard-A"),
    ("GOOGLE_SPEECH_ENDPOINT", _text, ""),
    ("GOOGLE_TTS_ENDPOINT", _text, ""),
    ("ESPEAK_VOICE", _text, "he"),
    ("ESPEAK_SPEED", _int(80, 450), 160),
    ("FLOW_FILE", _text, ""),
    ("SYSTEM_PROMPT_FILE", _text, ""),
    ("TTS_DIR", _text, str(ROOT / "static" / "tts")),
    ("VAR_DIR", _text, str(ROOT / "var")),
    ("MIN_FREE_DISK_MB", _int(0, 10**7), 200),
    ("RETENTION_DAYS", _int(1, 3650), 90),
]

SECRET_NAMES = frozenset({"TWILIO_AUTH_TOKEN", "OPENAI_API_KEY", "INSPECTOR_TOKEN"})


@dataclass(frozen=True)
class Settings:
    """Validated configuration of one process; build it with `Settings.from_env`."""

    public_base_url: str = "http://127.0.0.1:5000"
    port: int = 5000
    bind_host: str = "127.0.0.1"
    twilio_account_sid: str = ""
    twilio_auth_token: str = ""
    twilio_api_base_url: str = "https://api.twilio.com"
    google_application_credentials: str = ""
    openai_api_key: str = ""
    openai_base_url: str = ""
    database_url: str = "sqlite:///var/ivr.sqlite3"
    asr_engine: str = "none"
    llm_engine: str = "scripted"
    tts_engine: str = "espeak"
    language: str = "he-IL"
    turn_mode: str = "gather"
    reply_mode: str = "play"
    ws_mode: str = "AI"
    twiml_play_greeting: bool = False
    ai_greeting_he: str = ""
    min_utt_sec: float = 0.48
    vad_hangover_ms: int = 140
    vad_rms: int = 210
    max_utt_sec: float = 7.0
    resp_min_delay_ms: int = 220
    resp_max_delay_ms: int = 360
    reply_refractory_ms: int = 750
    barge_in: bool = True
    barge_in_voice_frames: int = 3
    dedup_window_sec: float = 14.0
    thinking_hint_ms: int = 0
    llm_min_chars: int = 160
    llm_max_chars: int = 420
    stream_start_timeout_sec: float = 6.0
    no_media_timeout_sec: float = 6.0
    max_silent_turns: int = 3
    validate_twilio_signature: bool = True
    inspector_token: str = ""
    tts_cache_max_mb: int = 500
    asr_timeout_sec: float = 8.0
    llm_timeout_sec: float = 8.0
    tts_timeout_sec: float = 6.0
    recover_to_stream: bool = False
    whisper_model: str = "tiny"
    openai_model: str = "gpt-4o-mini"
    openai_asr_model: str = "gpt-4o-mini-transcribe"
    openai_tts_model: str = "gpt-4o-mini-tts"
    openai_tts_voice: str = "alloy"
    google_tts_voice: str = "he-IL-Standard-A"
    google_speech_endpoint: str = ""
    google_tts_endpoint: str = ""
    espeak_voice: str = "he"
    espeak_speed: int = 160
    flow_file: str = ""
    system_prompt_file: str = ""
    tts_dir: str = str(ROOT / "static" / "tts")
    var_dir: str = str(ROOT / "var")
    min_free_disk_mb: int = 200
    retention_days: int = 90
    local_mode: bool = False
    warnings: tuple[str, ...] = ()
    stream_secret: str = field(default_factory=lambda: secrets.token_hex(16), repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read, default and check every variable; raise ConfigError naming all bad ones."""
        env = dict(os.environ if env is None else env)
        values, problems = _parse_all(env)
        _write_gcp_credentials(env, values, problems)
        _check_base_url(values, problems)
        _check_urls(values, problems)
        _resolve_engines(values, problems)
        _check_ranges(values, problems)
        _resolve_twilio(values, problems)
        if problems:
            raise ConfigError(problems)
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed (tests and the CLI use this)."""
        return dataclasses.replace(self, **changes)

    @property
    def public_on_loopback(self) -> bool:
        """PUBLIC_BASE_URL names this machine: a local line, not one published through a proxy."""
        return is_loopback_host(urlsplit(self.public_base_url).hostname)

    @property
    def signing_key(self) -> str:
        """Key of the Stream `token` Parameter HMAC: the auth token, else a per-process secret."""
        return self.twilio_auth_token or self.stream_secret

    def secrets(self) -> list[str]:
        """Secret values that must never reach a log line or an event row."""
        return [s for s in (self.twilio_auth_token, self.openai_api_key, self.inspector_token) if s]


def _parse_all(env: dict[str, str]) -> tuple[dict[str, Any], list[str]]:
    values: dict[str, Any] = {}
    problems: list[str] = []
    for name, parse, default in VARIABLES:
        raw = env.get(name)
        if raw is None or (raw.strip() == "" and default not in ("", None)):
            values[name.lower()] = default
            continue
        try:
            values[name.lower()] = parse(raw)
        except ValueError as exc:
            shown = "(set)" if name in SECRET_NAMES else repr(raw)
            problems.append(f"{name}={shown}: {exc}")
            values[name.lower()] = default
    values["warnings"] = []
    return values, problems


def _write_gcp_credentials(env: dict[str, str], values: dict, problems: list[str]) -> None:
    """GCP_CREDENTIALS_JSON → <VAR_DIR>/gcp-credentials.json (0600, one per deployment), named
    by GOOGLE_APPLICATION_CREDENTIALS; rewritten only when the JSON changes."""
    raw = env.get("GCP_CREDENTIALS_JSON", "").strip()
    target = Path(values["var_dir"]).absolute() / GCP_CREDENTIALS_FILE
    if raw and values["google_application_credentials"] in ("", str(target)):
        try:
            json.loads(raw)
        except ValueError:
            problems.append("GCP_CREDENTIALS_JSON=(set): expected a service-account JSON")
            return
        try:
            write_private_file(target, raw)
        except OSError as exc:
            reason = exc.strerror or exc
            problems.append(f"GCP_CREDENTIALS_JSON=(set): cannot write {target}: {reason}")
            return
        values["google_application_credentials"] = str(target)
        os.environ["GOOGLE_APPLICATION_CREDENTIALS"] = str(target)
    creds = values["google_application_credentials"]
    if creds and not Path(creds).is_file():
        problems.append(f"GOOGLE_APPLICATION_CREDENTIALS={creds!r}: expected a readable JSON file")


def write_private_file(path: Path, text: str) -> bool:
    """Make `path` a 0600 regular file holding `text`: left alone when it already is, else
    replaced atomically (a temporary file in the same folder, then os.replace). True if written."""
    try:
        info = os.lstat(path)
        if (stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600
                and path.read_text(encoding="utf-8") == text):
            return False
    except (FileNotFoundError, UnicodeDecodeError):
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:  # mkstemp made it 0600
            handle.write(text)
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
    for name in ("flow_file", "system_prompt_file"):
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


def _check_ranges(values: dict, problems: list[str]) -> None:
    if values["resp_min_delay_ms"] > values["resp_max_delay_ms"]:
        problems.append("RESP_MIN_DELAY_MS must not exceed RESP_MAX_DELAY_MS")
    if values["llm_min_chars"] > values["llm_max_chars"]:
        problems.append("LLM_MIN_CHARS must not exceed LLM_MAX_CHARS")
    if values["min_utt_sec"] >= values["max_utt_sec"]:
        problems.append("MIN_UTT_SEC must be below MAX_UTT_SEC")


def _resolve_twilio(values: dict, problems: list[str]) -> None:
    """Local mode (no account, loopback URL): the emulator's account, its carrier on PORT+1."""
    host = urlsplit(values["public_base_url"]).hostname
    sid, token = values["twilio_account_sid"], values["twilio_auth_token"]
    if not sid and not token and is_loopback_host(host):
        values["local_mode"] = True
        values["twilio_account_sid"] = LOCAL_ACCOUNT_SID
        if values["twilio_api_base_url"] == "https://api.twilio.com":
            values["twilio_api_base_url"] = f"http://127.0.0.1:{values['port'] + 1}"
        values["twilio_auth_token"] = local_auth_token(Path(values["var_dir"]))
    elif sid and not (sid.startswith("AC") and len(sid) == 34):
        problems.append("TWILIO_ACCOUNT_SID: expected AC followed by 32 characters")
    validate = values["validate_twilio_signature"]
    if validate is None:
        validate = bool(values["twilio_auth_token"])
    if validate and not values["twilio_auth_token"]:
        problems.append("VALIDATE_TWILIO_SIGNATURE=true needs TWILIO_AUTH_TOKEN "
                        "(set it, or VALIDATE_TWILIO_SIGNATURE=false to accept unsigned webhooks)")
    if not validate:
        values["warnings"].append(
            "WARNING: VALIDATE_TWILIO_SIGNATURE=false: anyone who finds this URL can drive calls")
    values["validate_twilio_signature"] = validate
    values["warnings"] = tuple(values["warnings"])


def local_auth_token(var_dir: Path) -> str:
    """The local emulator's auth token, shared by `make run` and `make call` via a 0600 file."""
    path = var_dir / "emulator_auth_token"
    try:
        token = path.read_text().strip()
        if token:
            return token
    except FileNotFoundError:
        pass
    var_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(16)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token)
    return token
