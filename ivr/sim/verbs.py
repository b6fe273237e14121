"""The TwiML verbs the emulator understands, each as Twilio runs it on a live call."""

from __future__ import annotations

import secrets
import xml.etree.ElementTree as ET
from urllib.parse import urljoin

from .. import audio
from .call import TICK, Call, Ended, OnTick, Replace
from .mediaclient import connect_stream, start_stream, stop_stream

ALL_KEYS = "0123456789*#"
HEBREW_TAGS = ("he-IL", "iw-IL")  # which one Twilio's Gather table lists is disputed
REGIONAL_API = "api.dublin.ie1.twilio.com"  # fault recording_regional: the RecordingUrl's host
ANSWER_AFTER_SEC = 1.0  # a far end that answers rings this long first
BUSY_AFTER_SEC = 0.5
BARGE_VOICED_FRAMES = 3  # voiced 20 ms frames in a row that Twilio takes for speech
VOICE_RMS = 210  # a frame this loud is voice


def _float(element: ET.Element, name: str, default: float) -> float:
    try:
        return float(element.get(name, default))
    except ValueError:
        return default


def play(run: Call, element: ET.Element, until: OnTick | None = None) -> bool:
    """Play the URL (`loop` times); `until`: the caller's input that stops it (in a Gather)."""
    url = (element.text or "").strip()
    pcm = run.web.audio(url)
    if pcm is None:
        return False
    loops = int(element.get("loop", "1") or 1) or 1
    run.log("line", f"plays {url.rsplit('/', 1)[-1]} ({audio.duration_sec(pcm):.1f} s)")
    for _ in range(min(loops, 10)):
        if run.play_to_caller(pcm, kind="play", url=url, until=until):
            return True
    return False


def say(run: Call, element: ET.Element, until: OnTick | None = None) -> bool:
    text = (element.text or "").strip()
    voice = "he" if element.get("language", "he-IL").startswith("he") else "en"
    pcm = audio.espeak_pcm16(text, voice)
    run.log("line", f'says "{text}"')
    return run.play_to_caller(pcm, kind="say", text=text, until=until)


def pause(run: Call, element: ET.Element, until: OnTick | None = None) -> bool:
    state = {"stopped": False}

    def listen(frame: bytes, text: str | None, key: str | None) -> bool:
        state["stopped"] = bool(until and until(frame, text, key))
        return state["stopped"]
    run.tick_for(_float(element, "length", 1.0), listen if until else None)
    return state["stopped"]


def hangup(run: Call, _element: ET.Element) -> None:
    run.hangup("line")
    raise Ended()


def redirect(run: Call, element: ET.Element) -> None:
    url = (element.text or "").strip()
    run.log("line", "redirect")
    raise Replace(run.web.twiml(url, element.get("method", "POST")), url)


def record(run: Call, element: ET.Element) -> None:
    """Record until `timeout` s of silence, maxLength or finishOnKey; empty → next verb."""
    timeout = _float(element, "timeout", 5.0)
    max_length = _float(element, "maxLength", 3600.0)
    finish = element.get("finishOnKey", "1234567890*#")
    if element.get("playBeep", "true") == "true":
        run.play_to_caller(audio.beep_pcm16(200), reply=False, kind="beep")
    frames: list[tuple[bytes, bool]] = []
    state = {"silent": 0, "key": ""}

    def on_tick(frame: bytes, text: str | None, key: str | None) -> bool:
        if key and key in finish:
            state["key"] = key
            return True
        frames.append((frame, text is not None))
        state["silent"] = 0 if text is not None else state["silent"] + 1
        return state["silent"] * TICK >= timeout or len(frames) * TICK >= max_length

    run.line.listening = True
    run.log("line", "records")
    try:
        run.tick_for(None, on_tick)
    finally:
        run.line.listening = False
    voiced = [i for i, (_, v) in enumerate(frames) if v]
    if not voiced:
        run.log("carrier", "empty recording: action not requested, next verb")
        return
    if element.get("trim", "trim-silence") == "trim-silence":
        frames = frames[voiced[0]:voiced[-1] + 1]
    pcm = audio.ulaw_to_pcm16(b"".join(f for f, _ in frames))
    sid = "RE" + secrets.token_hex(16)
    run.recordings[sid] = pcm
    path = f"/2010-04-01/Accounts/{run.account.account_sid}/Recordings/{sid}"
    regional = run.faults.get("recording_regional")
    host = regional if isinstance(regional, str) else REGIONAL_API
    url = (f"https://{host}" if regional else run.account.url) + path
    duration = audio.duration_sec(pcm)
    run.result.recordings.append({"sid": sid, "url": url, "duration": round(duration, 2)})
    run.log("carrier", f"recording {sid} ({duration:.1f} s)")
    action = element.get("action") or run.doc_url
    extra = {"RecordingUrl": url, "RecordingSid": sid,
             "RecordingDuration": str(max(1, round(duration))), "Digits": state["key"] or ""}
    raise Replace(run.web.twiml(action, element.get("method", "POST"), extra), action)


def language_problem(run: Call, language: str) -> int | None:
    """The warning Twilio gives a <Gather> language it does not take: 13512 for a tag with no
    region ("en"), 13331 for the Hebrew tag the emulator is set not to list; else None."""
    if "-" not in language:
        return 13512
    listed = run.faults.get("gather_lists") or run.account.gather_hebrew
    return 13331 if language in HEBREW_TAGS and language != listed else None


class GatherInput:
    """What a <Gather> hears, as Twilio does: keys (input has dtmf), speech (input has speech)
    and, while its nested <Say>/<Play>/<Pause> run, whether the caller's input stops them: a key
    always does; speech does with bargeIn="true" (Twilio's default), and with bargeIn="false"
    speech begun during the prompts is not heard at all (the utterance is lost whole)."""

    def __init__(self, element: ET.Element, lost: set[str]):
        self.inputs = element.get("input", "dtmf").split()
        self.barge = element.get("bargeIn", "true").strip().lower() != "false"
        self.finish = element.get("finishOnKey", "#")
        self.num_digits = int(element.get("numDigits", "0") or 0)
        self.digits, self.speech = "", []
        self.done = False  # finishOnKey pressed or numDigits reached: the Gather ends now
        self.lost = lost  # the call's sentences begun unheard: not recognised from their tail
        self.voiced = 0

    def hear(self, frame: bytes, text: str | None, key: str | None) -> bool:
        """Take one frame's input; True when it is input the Gather accepts (speech once it
        has lasted BARGE_VOICED_FRAMES voiced frames)."""
        if key and "dtmf" in self.inputs:
            if key == self.finish:
                self.done = True
            else:
                self.digits += key
                self.done = bool(self.num_digits and len(self.digits) >= self.num_digits)
            return True
        if not text or "speech" not in self.inputs or text in self.lost:
            self.voiced = 0
            return False
        if not self.speech or self.speech[-1] != text:
            loud = audio.rms(audio.ulaw_to_pcm16(frame)) > VOICE_RMS
            self.voiced = self.voiced + 1 if loud else 0
            if self.voiced < BARGE_VOICED_FRAMES:
                return False
            self.speech.append(text)
        return True

    def during_prompt(self, frame: bytes, text: str | None, key: str | None) -> bool:
        """While the nested prompts play: True when the caller's input stops them."""
        if text and not key and "speech" in self.inputs and not self.barge:
            if text not in self.speech:
                self.lost.add(text)
            return False
        return self.hear(frame, text, key)

    def result(self, unheard: int | None) -> dict | None:
        """The action's parameters, or None when nothing was heard."""
        if self.digits:
            return {"Digits": self.digits}
        if self.speech and unheard:
            return {"SpeechResult": "", "Confidence": "0.0"}
        if self.speech:
            return {"SpeechResult": " ".join(self.speech), "Confidence": "0.92"}
        return None


def gather(run: Call, element: ET.Element) -> None:
    """Play the nested prompts, stopped by the caller's input (Twilio's bargeIn), then listen
    for speech (the script's text) or keys. Speech in a language Twilio does not list is
    heard as nothing (an empty SpeechResult), with a warning."""
    heard = GatherInput(element, run.dropped)
    language = element.get("language", "en-US")
    unheard = language_problem(run, language) if "speech" in heard.inputs else None
    if unheard:
        run.error(unheard, f"<Gather language=\"{language}\"> is not a language Twilio lists; "
                           "speech is not recognised")
    for child in element:
        if child.tag in ("Say", "Play", "Pause") and VERBS[child.tag](run, child,
                                                                       heard.during_prompt):
            run.log("carrier", "the caller's input stops the prompt (bargeIn): listening")
            break
    timeout = _float(element, "timeout", 5.0)
    speech_timeout = element.get("speechTimeout", str(timeout))
    end_of_speech = 1.0 if speech_timeout == "auto" else _float(element, "speechTimeout", timeout)
    quiet = {"ticks": 0}

    def on_tick(frame: bytes, text: str | None, key: str | None) -> bool:
        quiet["ticks"] = 0 if heard.hear(frame, text, key) else quiet["ticks"] + 1
        limit = end_of_speech if heard.speech else timeout
        return heard.done or quiet["ticks"] * TICK >= limit

    if not heard.done:
        run.line.listening = True
        try:
            run.tick_for(None, on_tick)
        finally:
            run.line.listening = False
    extra = heard.result(unheard)
    if extra is None and element.get("actionOnEmptyResult") == "true":
        extra = {}
    elif extra is None:
        run.log("carrier", "gather heard nothing: next verb")
        return
    action = element.get("action") or run.doc_url
    run.log("carrier", f"gather result {extra}")
    raise Replace(run.web.twiml(action, element.get("method", "POST"), extra), action)


def dialled_number(element: ET.Element) -> str:
    number = element.find("Number")
    return ((number.text if number is not None else element.text) or "").strip()


def wait_for(run: Call, seconds: float) -> None:
    """Let `seconds` pass on the call's clock, ticking (the ticks may lag it by up to 0.1 s)."""
    until = run.clock.now() + seconds
    run.tick_for(None, lambda *_: run.clock.now() >= until)


def ring_and_talk(run: Call, outcome: str, talk: float, timeout: float, dialled: dict) -> None:
    """The dialled call in call time: answered and bridged, rung out, busy or failed."""
    if outcome == "answer" and timeout >= ANSWER_AFTER_SEC:
        wait_for(run, ANSWER_AFTER_SEC)
        run.log("carrier", "the far end answered")
        dialled["status"], began = "completed", run.clock.now()
        try:
            wait_for(run, talk)
        finally:
            dialled["duration"] = round(run.clock.now() - began)
        run.log("carrier", "the far end hangs up")
    elif outcome == "busy":
        wait_for(run, BUSY_AFTER_SEC)
        run.log("carrier", "the far end is busy")
        dialled["status"] = "busy"
    elif outcome == "failed":
        run.log("carrier", "the call to the far end failed")
        dialled["status"] = "failed"
    else:
        wait_for(run, timeout)
        run.log("carrier", "the far end did not answer")
        dialled["status"] = "no-answer"


def dial(run: Call, element: ET.Element) -> None:
    """Ring a number, as the caller script says its far end behaves; then the action, if any."""
    number = dialled_number(element)
    if not number:
        run.log("carrier", "warning: <Dial> without a number skipped")
        return
    if len(element.findall("Number")) > 1:
        run.log("carrier", "warning: only the first <Number> of a <Dial> is dialled")
    outcome, talk = run.far_end(number)
    dialled = {"number": number, "outcome": outcome, "t": round(run.clock.now(), 3),
               "seconds": 0.0, "status": "canceled", "duration": 0,
               "sid": "CA" + secrets.token_hex(16),
               "caller_id": element.get("callerId") or run.params()["From"]}
    run.result.dials.append(dialled)
    run.log("line", f"dials {number}")
    run.line.listening = run.line.speaking = False
    try:
        ring_and_talk(run, outcome, talk, _float(element, "timeout", 30.0), dialled)
    finally:
        dialled["seconds"] = round(run.clock.now() - dialled["t"], 3)
    if not element.get("action"):
        return
    action = urljoin(run.doc_url, element.get("action"))
    extra = {"DialCallStatus": dialled["status"], "DialCallSid": dialled["sid"],
             "DialCallDuration": str(dialled["duration"])}
    raise Replace(run.web.twiml(action, element.get("method", "POST"), extra), action)


def connect(run: Call, element: ET.Element) -> None:
    stream = element.find("Stream")
    if stream is None:
        run.log("carrier", "warning: <Connect> without <Stream> skipped")
        return
    connect_stream(run, element, stream)


def start(run: Call, element: ET.Element) -> None:
    stream = element.find("Stream")
    if stream is not None:
        start_stream(run, stream)


def stop(run: Call, element: ET.Element) -> None:
    stream = element.find("Stream")
    if stream is not None:
        stop_stream(run, stream)


VERBS = {"Play": play, "Say": say, "Pause": pause, "Hangup": hangup, "Redirect": redirect,
         "Record": record, "Gather": gather, "Connect": connect, "Start": start, "Stop": stop,
         "Dial": dial}
