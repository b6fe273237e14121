"""The line a scenario rings: the real app on loopback, the emulator wired to it, the engine
under test (the scripted flow, or the OpenAI engines on the local stand-in) and a fixed clock."""

from __future__ import annotations

import datetime as dt
import tempfile
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ivr.app import create_app
from ivr.config import Settings, env_fields, env_name
from ivr.engines.base import ASR
from ivr.flow import DEFAULT_FLOW
from ivr.sim import Carrier
from tests.livehelpers import LiveLine
from tests.providers import SPEECH_API_LAST_DAY, ProviderServer

from .model import Receptionist

ENGINES = ("scripted", "openai")
OWNER = "+972509998877"
ACCOUNT_SID, AUTH_TOKEN = "AC" + "e" * 32, "eval-auth-token-0123456789abcdef"
ZONE = zoneinfo.ZoneInfo("Asia/Jerusalem")
ENGINE_ENV = {
    "scripted": {"ASR_ENGINE": "fake", "LLM_ENGINE": "scripted", "TTS_ENGINE": "fake"},
    "openai": {"ASR_ENGINE": "openai", "LLM_ENGINE": "openai", "TTS_ENGINE": "openai",
               "OPENAI_TTS_MODEL": "gpt-4o-mini-tts", "OPENAI_API_KEY": "sk-eval-key-123456",
               "RESP_MIN_DELAY_MS": "0", "RESP_MAX_DELAY_MS": "0"}}
SETTING_NAMES = {env_name(f) for f in env_fields()}


def local_time(text: str) -> dt.datetime:
    """"2026-11-01 09:00" → that wall time in Israel."""
    return dt.datetime.fromisoformat(str(text)).replace(tzinfo=ZONE)


def flow_text(hours: str) -> str:
    """The shipped flow, its hours as the scenario fixes them: "shipped" (its own, with
    booking), "open" (none given: always open; no booking, which needs hours) or "closed"
    (every day closed): a person request must not depend on when the run happens."""
    flow = yaml.safe_load(DEFAULT_FLOW.read_text(encoding="utf-8"))
    flow["business_name"] = "מספרת דני"
    if hours == "open":
        flow.pop("hours")
        flow.pop("booking")
    elif hours == "closed":
        flow["hours"] = {}
    elif hours != "shipped":
        raise ValueError(f"hours: {hours!r}: expected shipped, open or closed")
    return yaml.safe_dump(flow, allow_unicode=True)


class CallerWords(ASR):
    """The ASR of the eval: it hears what the caller is saying now (the emulator's latest
    sentence of the call in progress), as the scripted tests' fake ASR hears its given texts,
    whatever the endpointing made of the audio. Also the stand-in's transcript (an iterator)."""

    name = "fake"

    def __init__(self, carrier: Carrier):
        self.carrier = carrier

    def now_said(self) -> str:
        runs = list(self.carrier.calls.values())
        said = runs[-1].result.said if runs else []
        return said[-1]["text"] if said else ""

    def transcribe(self, pcm16_8k: bytes) -> str:
        return self.now_said()

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        return self.now_said()


@dataclass
class Line:
    """One scenario's line: the app on `live`, the emulator `carrier`, the stand-in `provider`."""

    engine: str
    app: object
    live: LiveLine
    carrier: Carrier
    folder: tempfile.TemporaryDirectory
    provider: ProviderServer | None = None
    flow: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def runtime(self):
        return self.app.extensions["ivr"]

    @property
    def store(self):
        return self.runtime.store

    def close(self) -> None:
        self.carrier.stop()
        self.live.stop()
        self.runtime.close()
        if self.provider is not None:
            self.provider.stop()
        self.folder.cleanup()


def settings_for(engine: str, folder: Path, url: str, flow_file: Path,
                 changes: dict[str, object], provider: ProviderServer | None) -> Settings:
    """The line's settings: its own database and TTS folder, the engine's, the scenario's."""
    unknown = set(changes) - SETTING_NAMES
    if unknown:
        raise ValueError(f"settings: no such setting {', '.join(sorted(unknown))}")
    (folder / "tts").mkdir()
    env = {"PUBLIC_BASE_URL": url, "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
           "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "DATABASE_URL": f"sqlite:///{folder}/line.sqlite3",
           "TTS_DIR": str(folder / "tts"), "VAR_DIR": str(folder / "var"),
           "FLOW_FILE": str(flow_file), "OWNER_PHONE": OWNER, "OWNER_DIAL_TIMEOUT_SEC": "5",
           "TURN_MODE": "stream", **ENGINE_ENV[engine]}
    if provider is not None:
        env["OPENAI_BASE_URL"] = provider.url + "/v1"
    env.update({k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in changes.items()})
    return Settings.from_env(env)


def start_line(engine: str, hours: str = "shipped", now: str | None = None,
               settings: dict | None = None, speed: float = 5.0) -> Line:
    """The line for one scenario on `engine`, its flow's hours fixed, its desk's clock at `now`."""
    if engine not in ENGINES:
        raise ValueError(f"engine {engine!r}: expected one of {', '.join(ENGINES)}")
    folder = tempfile.TemporaryDirectory(prefix="eval-")
    path = Path(folder.name)
    flow = flow_text(hours)
    (path / "flow.yaml").write_text(flow, encoding="utf-8")
    provider = ProviderServer() if engine == "openai" else None
    live = LiveLine()
    config = settings_for(engine, path, live.url, path / "flow.yaml", settings or {}, provider)
    carrier = Carrier(live.url, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN,
                      speed=speed).start()
    config = config.replace(twilio_api_base_url=carrier.url)
    app = create_app(config)
    live.serve(app)
    line = Line(engine, app, live, carrier, folder, provider, flow)
    words = CallerWords(carrier)
    if provider is not None:
        provider.today = SPEECH_API_LAST_DAY  # speech on /v1/audio/speech as on its last day
        provider.transcript = words
        provider.speech_chars_per_sec = 14  # replies last as long as Hebrew speech would
        provider.model = Receptionist(yaml.safe_load(flow))
    else:
        line.runtime.engines.asr = words
    if now is not None and line.runtime.desk is not None:
        fixed = local_time(now)
        line.runtime.desk.clock = lambda: fixed
    return line
