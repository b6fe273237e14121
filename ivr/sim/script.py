"""Caller scripts (YAML): what the caller says, keys and does; the caller's voice and its turns."""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .. import audio
from .call import Call

SCRIPTS_DIR = Path(__file__).parent / "scripts"
ACTIONS = ("say", "silence", "dtmf", "barge_in", "hangup")
DEFAULTS = {"think": 0.6, "after": 0.5, "wait_reply": True, "during_reply": False,
            "expect": None, "hang_up_after": None,  # hang_up_after: s into a sentence
            "after_replies": 0,  # wait until the line has spoken this often (greeting, re-prompt)
            "backchannel": False}  # a barge_in the line is not to stop for, nor answer ("כן")
SPOKEN = ("say", "barge_in", "dtmf")  # the steps the line answers, each with a turn
DIAL_OUTCOMES = ("answer", "no-answer", "busy", "failed")


class ScriptError(ValueError):
    """A caller script that cannot be run, with the step that is wrong."""


@dataclass
class Step:
    action: str
    value: Any = None
    options: dict = field(default_factory=dict)

    def opt(self, name: str) -> Any:
        return self.options.get(name, DEFAULTS.get(name))


@dataclass
class CallerScript:
    """A parsed caller script."""

    name: str = "call"
    from_number: str = "+972501234567"
    to_number: str = "+97231234567"
    steps: list[Step] = field(default_factory=list)
    end: str = "hangup"
    reply_timeout: float = 20.0
    max_duration: float = 180.0
    reply_pause: float = 0.2  # a pause in the line's streamed speech this long ends its reply
    dial: dict[str, str] = field(default_factory=dict)  # <Dial>: digits ("*": any) → outcome
    dial_talk: float = 3.0  # seconds an answering far end talks before it hangs up

    @classmethod
    def load(cls, source: str | Path | dict) -> CallerScript:
        """From a dict, a YAML text, a file path, or the name of a shipped script."""
        return cls.from_dict(read_script(source))

    @classmethod
    def from_dict(cls, data: dict) -> CallerScript:
        steps = [parse_step(i + 1, raw) for i, raw in enumerate(data.get("steps") or [])]
        end = data.get("end", "hangup")
        if end not in ("hangup", "wait"):
            raise ScriptError(f"end: {end!r}: expected hangup or wait")
        return cls(name=str(data.get("name", "call")), steps=steps, end=end,
                   from_number=str(data.get("from", cls.from_number)),
                   to_number=str(data.get("to", cls.to_number)),
                   reply_timeout=float(data.get("reply_timeout", cls.reply_timeout)),
                   max_duration=float(data.get("max_duration", cls.max_duration)),
                   reply_pause=float(data.get("reply_pause", cls.reply_pause)),
                   dial=parse_dial(data.get("dial")),
                   dial_talk=float(data.get("dial_talk", cls.dial_talk)))

    @property
    def answered(self) -> int:
        """How many turns the line answers if it hears every step the caller speaks or keys."""
        return sum(answered(step) for step in self.steps)

    def dial_outcome(self, number: str) -> str:
        """How the far end of a <Dial> to `number` behaves; a number not listed: no-answer."""
        return self.dial.get(digits(number), self.dial.get("*", "no-answer"))


def answered(step: Step) -> bool:
    """Whether the line answers the step with a turn (a backchannel it does not)."""
    return step.action in SPOKEN and not step.opt("backchannel")


def digits(number: Any) -> str:
    """A phone number's digits: YAML reads an unquoted +972… key as an integer."""
    return re.sub(r"\D", "", str(number))


def parse_dial(raw: Any) -> dict[str, str]:
    """`dial:` as one outcome for any number, or a mapping number → outcome."""
    if raw is None:
        return {}
    mapping = {"*": raw} if isinstance(raw, str) else raw
    if not isinstance(mapping, dict):
        raise ScriptError("dial: expected an outcome or a mapping number → outcome")
    for number, outcome in mapping.items():
        if outcome not in DIAL_OUTCOMES:
            raise ScriptError(f"dial: {number}: {outcome!r}: expected one of "
                              f"{', '.join(DIAL_OUTCOMES)}")
    return {"*" if number == "*" else digits(number): outcome
            for number, outcome in mapping.items()}


def shipped_scripts() -> list[str]:
    """The names of the caller scripts that come with the emulator."""
    return sorted(p.stem for p in SCRIPTS_DIR.glob("*.yaml"))


def read_script(source: str | Path | dict) -> dict:
    """A script's raw mapping from a dict, a YAML text, a file path or a shipped script's name."""
    if isinstance(source, dict):
        return source
    text = str(source)
    shipped = SCRIPTS_DIR / f"{text}.yaml"
    if "\n" not in text and (shipped.is_file() or Path(text).is_file()):
        text = (shipped if shipped.is_file() else Path(text)).read_text(encoding="utf-8")
    elif "\n" not in text and ":" not in text:
        raise ScriptError(f"no caller script {text!r}: the shipped ones are "
                          f"{', '.join(shipped_scripts())}; or give a YAML file's path")
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ScriptError("a caller script is a YAML mapping with a 'steps' list")
    return data


def parse_step(number: int, raw: Any) -> Step:
    if raw == "hangup":
        return Step("hangup")
    if not isinstance(raw, dict):
        raise ScriptError(f"step {number}: expected a mapping like {{say: text}}, got {raw!r}")
    actions = [k for k in raw if k in ACTIONS]
    if len(actions) != 1:
        raise ScriptError(f"step {number}: expected exactly one of {', '.join(ACTIONS)}")
    action = actions[0]
    options = {k: v for k, v in raw.items() if k != action}
    unknown = set(options) - set(DEFAULTS)
    if unknown:
        raise ScriptError(f"step {number}: unknown option(s) {', '.join(sorted(unknown))}")
    value = raw[action]
    if action in ("say", "barge_in") and not (isinstance(value, str) and value.strip()):
        raise ScriptError(f"step {number}: {action} needs the sentence to speak")
    if options.get("backchannel") and action != "barge_in":
        raise ScriptError(f"step {number}: backchannel goes with a barge_in step")
    if action == "silence" and not isinstance(value, (int, float)):
        raise ScriptError(f"step {number}: silence needs a number of seconds")
    if action == "dtmf" and not str(value).strip("0123456789*#") == "":
        raise ScriptError(f"step {number}: dtmf keys are 0-9, * and #")
    expect = options.get("expect")
    if expect is not None:
        if action not in SPOKEN or options.get("backchannel"):
            raise ScriptError(f"step {number}: expect goes with a say, barge_in or dtmf step "
                              f"(not a backchannel)")
        words = [expect] if isinstance(expect, str) else expect
        if not (isinstance(words, list) and words and all(
                isinstance(w, str) and w.strip() for w in words)):
            raise ScriptError(f"step {number}: expect needs a word or a list of words")
        options["expect"] = [w.strip() for w in words]
    return Step(action, str(value) if action == "dtmf" else value, options)


def unmet_expectations(script: CallerScript, replies: list[str]) -> list[str]:
    """What the line failed to say: a step's `expect` is met when one of its words is in a
    reply the line gave to that step or a later one (`replies`: the line's answers to the
    caller's turns, in order, as its records keep them). An empty list: every expectation met."""
    unmet = []
    spoken = 0
    for number, step in enumerate(script.steps, 1):
        if not answered(step):
            continue
        words = step.opt("expect")
        later = " ".join(replies[spoken:])
        spoken += 1
        if words and not any(word in later for word in words):
            unmet.append(f"step {number} ({step.action} {step.value!r}): the line never answered "
                         f"it with {' or '.join(repr(w) for w in words)}")
    return unmet


@functools.lru_cache(maxsize=256)
def voice_ulaw(text: str) -> bytes:
    """The caller's sentence spoken by espeak-ng in Hebrew, as 8 kHz μ-law."""
    return audio.pcm16_to_ulaw(audio.espeak_pcm16(text))


@dataclass
class Wait:
    """What the caller waits for: a condition, until a call time (and, for the line, real time)."""

    condition: Callable[[], bool]
    until: float
    real_until: float = 0.0

    def expired(self, now: float) -> bool:
        return now >= self.until and time.monotonic() >= self.real_until


def first_barge_frame(text: str, vad_rms: int = 210, needed: int = 3) -> int:
    """Index of the frame at which `needed` voiced frames in a row have been heard."""
    run = 0
    for index, frame in enumerate(audio.frames_of(voice_ulaw(text))):
        run = run + 1 if audio.rms(audio.ulaw_to_pcm16(frame)) > vad_rms else 0
        if run == needed:
            return index
    raise ValueError(f"no {needed} voiced frames in a row in {text!r}")


class Caller:
    """Runs a script against a call: waits for the line to listen, speaks, keys, hangs up.

    The call's tick loop advances the caller at every 20 ms frame, so what the caller does, and
    when in call time, depends only on what the line did, never on how a thread was scheduled:
    at any `speed` and on a loaded machine a caller thinks 0.6 s of call time, not 0.6 s plus
    however late a thread woke (at speed 10 a 2 s Record timeout is 0.2 s of real time).
    Waiting for the line (its reply, its listening) lasts at least as long in real time as in
    call time, because the line answers in real time at any speed.
    """

    def __init__(self, script: CallerScript, run: Call):
        self.script, self.run_, self.line = script, run, run.line
        self.replies_seen: int | None = None
        for step in script.steps:  # synthesise now, not while the line is waiting for speech
            if step.action in ("say", "barge_in"):
                voice_ulaw(step.value)
        self.now = 0.0
        self.plan = self.actions()
        self.wait: Wait | None = None
        self.done = False

    def advance(self, now: float) -> None:
        """Called by the tick loop once a frame is read at call time `now`: act on all due."""
        self.now = now
        while not self.done and not self.run_.ended.is_set():
            met = None
            if self.wait is not None:
                met = self.wait.condition()
                if not met and not self.wait.expired(now):
                    return
            try:
                self.wait = self.plan.send(met)
            except StopIteration:
                self.done = True
            except Exception as exc:  # noqa: BLE001 - a broken script must not leave the call open
                self.done = True
                self.run_.log("caller", f"script failed: {exc!r}")
                self.run_.hangup("caller")

    # ---- the script, as a generator of waits --------------------------------------------------
    def wait_until(self, condition: Callable[[], bool], call_seconds: float,
                   on_line: bool = False) -> Generator[Wait, bool, bool]:
        """Wait for `condition`; False when `call_seconds` passed first (`on_line`: and as long
        in real time, since the line works in real time whatever the call's speed)."""
        real = time.monotonic() + call_seconds if on_line else 0.0
        return bool((yield Wait(condition, self.now + call_seconds, real)))

    def pause(self, call_seconds: float) -> Generator[Wait, bool, None]:
        yield from self.wait_until(lambda: False, call_seconds)

    def wait_for_turn(self, step: Step) -> Generator[Wait, bool, None]:
        """Wait for the reply to what we said last, then for the line to listen in silence."""
        timeout = self.script.reply_timeout
        spoken = int(step.opt("after_replies"))
        if spoken and not (yield from self.wait_until(lambda: self.line.replies >= spoken,
                                                      timeout, True)):
            self.run_.log("caller", f"the line spoke {self.line.replies} of {spoken} times")
        if step.opt("wait_reply") and self.replies_seen is not None:
            seen = self.replies_seen
            if not (yield from self.wait_until(lambda: self.line.replies > seen, timeout, True)):
                self.run_.log("caller", f"no reply within {timeout:.0f} s")
        yield from self.wait_until(lambda: self.line.listening and not self.line.speaking,
                                   timeout, True)

    def speak(self, text: str, hang_up_after: float | None = None, backchannel: bool = False
              ) -> Generator[Wait, bool, None]:
        """Say `text`; with `hang_up_after`, hang up that many seconds into it; a
        `backchannel` no reply answers."""
        self.run_.log("caller", f'says "{text}"' + (" (a backchannel)" if backchannel else ""))
        self.run_.result.said.append({"t": round(self.now, 3), "text": text})
        if not backchannel:
            self.replies_seen = self.line.replies  # a reply begun from now on answers this
        self.run_.dropped.discard(text)  # said again: this time it may be heard
        self.run_.mic.speak(voice_ulaw(text), text)
        if hang_up_after is not None:
            yield from self.pause(float(hang_up_after))
            self.run_.hangup("caller")
            return
        yield from self.wait_until(self.run_.mic.idle, 60)

    def do(self, step: Step) -> Generator[Wait, bool, None]:
        if step.action == "say":
            yield from self.wait_for_turn(step)
            yield from self.pause(step.opt("think"))
            yield from self.speak(step.value, step.opt("hang_up_after"))
        elif step.action == "barge_in":
            yield from self.wait_until(lambda: self.line.speaking, self.script.reply_timeout, True)
            yield from self.pause(step.opt("after"))
            yield from self.speak(step.value, backchannel=step.opt("backchannel"))
        elif step.action == "dtmf":
            if step.opt("during_reply"):  # a key pressed while the line speaks
                yield from self.wait_until(lambda: self.line.speaking,
                                           self.script.reply_timeout, True)
                yield from self.pause(step.opt("after"))
            else:
                yield from self.wait_for_turn(step)
            self.run_.log("caller", f"presses {step.value}")
            self.replies_seen = self.line.replies
            self.run_.mic.press(step.value)
            yield from self.wait_until(self.run_.mic.idle, 10)
        elif step.action == "silence":
            yield from self.pause(float(step.value))
        elif step.action == "hangup":
            self.run_.hangup("caller")

    def actions(self) -> Generator[Wait, bool, None]:
        for step in self.script.steps:
            yield from self.do(step)
        if self.script.end == "hangup":
            yield from self.wait_for_turn(Step("say"))
            yield from self.pause(0.5)
            self.run_.hangup("caller")
