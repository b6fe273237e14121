"""`python -m ivr doctor --engines`: one tiny real request per configured engine (a one-second clip
transcribed, a chat reply begun, one word synthesised), each GO or NO-GO with the fix.

The engines are built from Settings and asked through their public methods, so a new engine is
probed as it is; all three are asked at once, each within its stage timeout.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .. import audio, threads
from ..config import Settings
from . import Engines, build_engine
from .errors import EmptyAnswer
from .faults import FailedEngine, diagnose

KINDS = ("asr", "llm", "tts")
PROBE_WORD = "שלום"
GRACE_SEC = 2.0  # waited past the stage timeout: the engine's own timeout error says more
NO_ENGINE = {"asr": "none: TURN_MODE=gather, Twilio's <Gather> recognises the caller"}


@dataclass(frozen=True)
class EngineProbe:
    """One engine's answer to its probe: GO or NO-GO, what happened, and the fix for a NO-GO."""

    kind: str
    engine: str
    ok: bool
    detail: str
    fix: str = ""


def probe_clip() -> bytes:
    """One second of 8 kHz PCM16: the probe word as espeak-ng says it, else a tone."""
    try:
        sound = audio.espeak_pcm16(PROBE_WORD)
    except Exception:  # noqa: BLE001 - any sound makes the request; the ASR probe is of access
        sound = audio.beep_pcm16(400)
    second = audio.RATE * 2
    return sound[:second].ljust(second, b"\0")


def ask_asr(asr, clip: bytes) -> str:
    return f"transcribed a 1 s clip: {asr.transcribe(clip)!r}"


def ask_llm(llm, _clip: bytes) -> str:
    """The reply's first words, then the stream is closed (the model stops writing)."""
    pieces = iter(llm.reply_tokens([], PROBE_WORD))
    try:
        text = next((p for p in pieces if isinstance(p, str) and p.strip()), "")
    finally:
        getattr(pieces, "close", lambda: None)()
    if not text:
        raise EmptyAnswer("the reply had no text")
    return f"began a reply: {text.strip()[:40]!r}"


def ask_tts(tts, _clip: bytes) -> str:
    sound = tts.synthesize(PROBE_WORD)
    if not sound:
        raise EmptyAnswer("the speech had no audio")
    return f"synthesised {PROBE_WORD!r}: {len(sound)} bytes"


ASK: dict[str, Callable[[object, bytes], str]] = {"asr": ask_asr, "llm": ask_llm, "tts": ask_tts}


class Pending:
    """One probe in its own daemon thread: a provider that stalls never holds the doctor."""

    def __init__(self, kind: str, engine, clip: bytes):
        self.done = threading.Event()
        self.said, self.error, self.seconds = "", None, 0.0
        self.started = time.monotonic()
        threads.start("engine-probe", self.run, ASK[kind], engine, clip, tag=kind)

    def run(self, ask, engine, clip: bytes) -> None:
        try:
            self.said = ask(engine, clip)
        except Exception as exc:  # noqa: BLE001 - every failure is this engine's NO-GO
            self.error = exc
        finally:
            self.seconds = time.monotonic() - self.started
            self.done.set()

    def wait(self, stage_sec: float, stage: str) -> str:
        """What the engine said; TimeoutError when it answered later than the call would wait."""
        if not self.done.wait(max(0.0, self.started + stage_sec + GRACE_SEC - time.monotonic())):
            raise TimeoutError(f"no answer within {stage_sec + GRACE_SEC:.3g} s")
        if self.error is not None:
            raise self.error
        if self.seconds > stage_sec:
            raise TimeoutError(f"answered after {self.seconds:.1f} s, later than {stage}")
        return self.said


def failed(kind: str, name: str, engine, exc: BaseException, settings: Settings) -> EngineProbe:
    """The NO-GO of an engine that failed (or could not be built): the cause and its fix."""
    about = FailedEngine(kind, name, str(getattr(engine, "model", "") or ""),
                         str(getattr(engine, "voice", "") or ""), settings)
    fault, account = diagnose(exc, about)
    return EngineProbe(kind, name, False, redacted(f"{fault.cause}: {account}", settings),
                       redacted(fault.fix, settings))


def redacted(text: str, settings: Settings) -> str:
    for secret in settings.secrets():
        if len(secret) >= 6:
            text = text.replace(secret, "***")
    return text


def probe_engines(engines: Engines, settings: Settings) -> list[EngineProbe]:
    """Ask every engine of `engines` at once; each result within its stage timeout."""
    clip = probe_clip() if engines.asr is not None else b""
    pending = {kind: Pending(kind, getattr(engines, kind), clip) for kind in KINDS
               if getattr(engines, kind) is not None}
    results = []
    for kind in KINDS:
        engine = getattr(engines, kind)
        if engine is None:
            results.append(EngineProbe(kind, "none", True, NO_ENGINE.get(kind, "none")))
            continue
        stage = f"{kind.upper()}_TIMEOUT_SEC"
        try:
            said = pending[kind].wait(getattr(settings, stage.lower()), stage)
        except Exception as exc:  # noqa: BLE001 - every failure is this engine's NO-GO
            results.append(failed(kind, engine.name, engine, exc, settings))
            continue
        results.append(EngineProbe(kind, engine.name, True,
                                   redacted(f"{said} in {pending[kind].seconds:.1f} s", settings)))
    return results


def probe_configured(settings: Settings) -> list[EngineProbe]:
    """Build each engine the settings name, then probe them; a build failure is its NO-GO."""
    built: dict = {}
    broken: dict[str, EngineProbe] = {}
    for kind in KINDS:
        try:
            built[kind] = build_engine(kind, settings)
        except Exception as exc:  # noqa: BLE001 - a missing package, a bad credentials file…
            built[kind] = None
            broken[kind] = failed(kind, getattr(settings, f"{kind}_engine"), None, exc, settings)
    return [broken.get(probe.kind, probe) for probe in probe_engines(Engines(**built), settings)]


def report(probes: list[EngineProbe]) -> str:
    """One line per engine (GO or NO-GO, the engine, what happened), its fix, then the verdict."""
    lines = []
    for probe in probes:
        lines.append(f"{'GO' if probe.ok else 'NO-GO':<6} {probe.kind} {probe.engine:<9} "
                     f"{probe.detail}")
        if probe.fix:
            lines.append(f"{'':<20} fix: {probe.fix}")
    failures = sum(not probe.ok for probe in probes)
    lines.append(f"NO-GO: {failures} of {len(probes)} engines failed" if failures
                 else "GO: every engine answered a real request")
    return "\n".join(lines)
