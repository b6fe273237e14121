"""`python -m ivr doctor --url https://host`: the runbooks' GO/NO-GO checks, each with its fix."""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
import websocket
from twilio.request_validator import RequestValidator

from . import audio
from .config import is_loopback_host
from .twiml import SUBPROTOCOL, dial_url, stream_url

TIMEOUT = 10
FIRST_AUDIO_SEC = 2.0  # a new call hears the line within this, saying nothing (issue 22)
EMULATOR_TOKEN = "the local emulator's token"  # how cmd_doctor names VAR_DIR's token
WS_FIX = ("serve the line with its own command, scripts/start.sh or `make run` (gunicorn with "
          "the ivr.asgi.Worker uvicorn worker, which serves /ws/twilio-media; `flask run` or a "
          "plain gunicorn worker does not), and let the proxy or tunnel in front pass WebSocket "
          "upgrades (the Upgrade and Connection headers) to /ws/twilio-media")


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


class Doctor:
    """Runs every check against one deployment; signs requests when it has the auth token."""

    def __init__(self, url: str, auth_token: str = "", account_sid: str = "", settings=None,
                 token_source: str = "TWILIO_AUTH_TOKEN"):
        self.settings = settings  # the environment whose engines check_engines probes, if any
        self.raw_url = url
        self.base = url.rstrip("/")
        self.token = auth_token
        self.token_source = token_source  # where the token came from, as the report names it
        self.account = account_sid or "AC" + "0" * 32
        self.call_sid = "CA" + secrets.token_hex(16)
        self.http = requests.Session()
        self.results: list[Check] = []

    def add(self, name: str, ok: bool, detail: str, fix: str = "") -> Check:
        check = Check(name, ok, detail, "" if ok else fix)
        self.results.append(check)
        return check

    def post(self, path: str, **params: str) -> requests.Response:
        params = {"CallSid": self.call_sid, "AccountSid": self.account, "From": "doctor",
                  "To": "doctor", "CallStatus": "in-progress", **params}
        headers = {}
        if self.token:
            signature = RequestValidator(self.token).compute_signature(self.base + path, params)
            headers["X-Twilio-Signature"] = signature
        return self.http.post(self.base + path, data=params, headers=headers, timeout=TIMEOUT)

    def signature_fix(self, what: str) -> str:
        """The fix for a 403 from a signed webhook or upgrade: the URL or the token differs."""
        return (f"the server rejected {what}: its PUBLIC_BASE_URL must be exactly {self.base} "
                "(the URL given to --url and to Twilio, character for character: 127.0.0.1 "
                "and localhost differ) and its TWILIO_AUTH_TOKEN must be the account's (the "
                "one the doctor signs with)")

    # ---- the checks ------------------------------------------------------------------------
    def check_config(self) -> None:
        parts = urlsplit(self.raw_url)
        secure = parts.scheme == "https" or (parts.scheme == "http"
                                             and is_loopback_host(parts.hostname))
        self.add("base URL is https (http only on loopback)", secure, self.raw_url,
                 "set PUBLIC_BASE_URL to the https:// address Twilio reaches")
        self.add("base URL has no trailing slash", not self.raw_url.endswith("/"),
                 f"--url {self.raw_url}", "remove the trailing / from --url: give the line's "
                 "address exactly as PUBLIC_BASE_URL is, https://host with no / at the end")
        if not self.token:
            detail = "no auth token"
        elif self.token_source == EMULATOR_TOKEN:
            detail = (f"{EMULATOR_TOKEN} (VAR_DIR/emulator_auth_token): this line answers the "
                      "emulator; a Twilio number needs TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN")
        else:
            detail = f"{self.token_source} present"
        self.add("credentials to sign requests", bool(self.token), detail,
                 "export TWILIO_AUTH_TOKEN (the doctor signs like Twilio)")

    def check_health(self) -> None:
        try:
            response = self.http.get(self.base + "/healthz", timeout=TIMEOUT)
            body = response.json()
            ok = response.status_code == 200 and body.get("status") == "ok"
            detail = f"{response.status_code} engines={body.get('engines')}"
            detail += f" problems={body['problems']}" if body.get("problems") else ""
        except (requests.RequestException, ValueError) as exc:
            ok, detail, body = False, f"{exc.__class__.__name__}", {}
        self.add("/healthz", ok, detail, "each problem names its fix (python -m ivr check on the "
                 "server lists them)" if body.get("problems") else
                 "start the server: bash scripts/start.sh (make run)")

    def check_incoming_call(self) -> ET.Element | None:
        """The first turn's TwiML as Twilio would get it; returns it when it is sound."""
        response = self.post("/webhook/incoming_call")
        fix = (self.signature_fix("the signature") if response.status_code == 403
               else "the route must answer 200 text/xml")
        if response.status_code != 200 or "xml" not in response.headers.get("Content-Type", ""):
            self.add("incoming_call TwiML", False, f"{response.status_code} "
                     f"{response.headers.get('Content-Type', '')}: {response.text[:80]!r}", fix)
            return
        try:
            root = ET.fromstring(response.content)
        except ET.ParseError as exc:
            self.add("incoming_call TwiML", False, f"does not parse: {exc}",
                     "the TwiML must be valid XML (Twilio error 12100)")
            return
        problems = twiml_problems(root, response.text, self.base)
        verbs = "+".join(child.tag for child in root)
        self.add("incoming_call TwiML", not problems, "; ".join(problems) or f"200 {verbs}",
                 "set PUBLIC_BASE_URL on the server to " + self.base
                 if any("not on" in p for p in problems) else "fix the first-turn TwiML")
        return None if problems else root

    def check_first_audio(self, root: ET.Element | None) -> None:
        """A new call whose caller says nothing hears the line within FIRST_AUDIO_SEC: the
        first turn's `<Play>` (the greeting before the stream, or inside the Gather), or, on a
        stream, audio the line sends over the WebSocket opened as Twilio would, fed silence."""
        name = f"a silent caller hears the line within {FIRST_AUDIO_SEC:g} s"
        if root is None:
            self.add(name, False, "not tried: the first turn's TwiML failed",
                     "fix incoming_call first")
            return
        play = root.find("Play") if root.find("Play") is not None else root.find("Gather/Play")
        stream = root.find("Connect/Stream")
        if play is not None and (stream is None or list(root).index(play) == 0):
            response = self.http.get(play.text or "", timeout=TIMEOUT)
            ok = response.status_code == 200 and response.headers.get(
                "Content-Type", "").startswith("audio/mpeg")
            self.add(name, ok, f"<Play> first: {urlsplit(play.text or '').path} "
                     f"{response.status_code}", "run `python -m ivr prewarm` on the server")
            return
        if stream is None:
            self.add(name, False, "the first turn plays nothing and streams nothing",
                     "fix the first-turn TwiML")
            return
        try:
            heard = self.stream_first_audio(stream)
        except Exception as exc:  # noqa: BLE001 - every failure is this check's FAIL
            self.add(name, False, f"the stream: {exc.__class__.__name__}: {str(exc)[:80]}",
                     WS_FIX)
            return
        self.add(name, heard is not None,
                 f"the stream's first audio after {heard:.2f} s of silence" if heard is not None
                 else f"the stream said nothing in {FIRST_AUDIO_SEC:g} s of the caller's silence",
                 "the line waits for the caller to speak: set STREAM_GREETING=true (the "
                 "default), or TWIML_PLAY_GREETING=true to play the greeting before the "
                 "stream; the greeting comes from the flow's `greeting:` (or AI_GREETING_HE)")

    def stream_first_audio(self, stream: ET.Element) -> float | None:
        """Open the first turn's stream as Twilio does and send 20 ms of silence at a time:
        the seconds of the call's audio sent when the line's first audio came back, or None
        after FIRST_AUDIO_SEC of it. Measured in the call's own audio (frames sent), so a
        slow doctor does not count against the line."""
        url = stream.get("url", "")
        params = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
        options: dict = {"timeout": TIMEOUT, "subprotocols": [SUBPROTOCOL]}
        if self.token:
            signature = RequestValidator(self.token).compute_signature(url, {})
            options["header"] = [f"X-Twilio-Signature: {signature}"]
        ws = websocket.create_connection(dial_url(url), **options)
        sid, sent, heard = "MZ" + secrets.token_hex(16), [0], threading.Event()
        first: list[float] = []

        def receive() -> None:
            while not heard.is_set():
                try:
                    message = json.loads(ws.recv() or "null")
                except Exception:  # noqa: BLE001 - closed
                    return
                if isinstance(message, dict) and message.get("event") == "media":
                    first.append(sent[0] * audio.FRAME_SEC)
                    heard.set()
        try:
            ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
            ws.send(json.dumps({"event": "start", "sequenceNumber": "1", "streamSid": sid,
                                "start": {"accountSid": self.account, "streamSid": sid,
                                          "callSid": params.get("call_sid", self.call_sid),
                                          "tracks": ["inbound"], "customParameters": params,
                                          "mediaFormat": {"encoding": "audio/x-mulaw",
                                                          "sampleRate": 8000, "channels": 1}}}))
            threading.Thread(target=receive, daemon=True, name="doctor-ws").start()
            payload = base64.b64encode(audio.silence_ulaw(1)).decode()
            started = time.monotonic()
            while not heard.is_set() and sent[0] * audio.FRAME_SEC < FIRST_AUDIO_SEC:
                sent[0] += 1
                ws.send(json.dumps({"event": "media", "streamSid": sid, "media": {
                    "track": "inbound", "chunk": str(sent[0]),
                    "timestamp": str(round(sent[0] * audio.FRAME_SEC * 1000)),
                    "payload": payload}}))
                time.sleep(max(0.0, started + sent[0] * audio.FRAME_SEC - time.monotonic()))
            heard.wait(audio.FRAME_SEC)  # a reply to the last frame sent
            ws.send(json.dumps({"event": "stop", "streamSid": sid, "stop": {
                "accountSid": self.account, "callSid": params.get("call_sid", "")}}))
        finally:
            heard.set()
            ws.close()
        return first[0] if first else None

    def check_mp3(self, name: str) -> None:
        response = self.http.get(f"{self.base}/static/tts/{name}", timeout=TIMEOUT)
        ctype = response.headers.get("Content-Type", "")
        self.add(f"{name} answers 200 audio/mpeg",
                 response.status_code == 200 and ctype.startswith("audio/mpeg"),
                 f"{response.status_code} {ctype}",
                 "run `python -m ivr prewarm` on the server (make run does it)")

    def check_websocket(self, offer: bool) -> None:
        name = f"WebSocket 101 {'with' if offer else 'without'} subprotocol"
        wss = stream_url(self.base)
        options: dict = {"timeout": TIMEOUT}
        if self.token:
            signature = RequestValidator(self.token).compute_signature(wss, {})
            options["header"] = [f"X-Twilio-Signature: {signature}"]
        if offer:
            options["subprotocols"] = [SUBPROTOCOL]
        try:
            ws = websocket.create_connection(dial_url(wss), **options)
        except Exception as exc:  # noqa: BLE001 - every failure is this check's FAIL
            status = getattr(exc, "status_code", None)
            fix = self.signature_fix("the upgrade's signature") if status == 403 else WS_FIX
            self.add(name, False, f"{exc.__class__.__name__}: {str(exc)[:80]}", fix)
            return
        chosen = ws.getsubprotocol()
        ws.close()
        echoed = chosen == SUBPROTOCOL if offer else chosen is None
        self.add(name, echoed, f"101, subprotocol {chosen!r}",
                 "echo audio.twilio.com only when Twilio offers it")

    def check_status_route(self, path: str, expected: int, **params: str) -> None:
        response = self.post(path, **params)
        ctype = response.headers.get("Content-Type", "")
        ok = response.status_code == expected and (expected != 200 or "xml" in ctype)
        want = "200 text/xml" if expected == 200 else str(expected)
        fix = f"{path} must answer {want}"
        if response.status_code == 403:  # a signed webhook: the signature, not the route
            fix = self.signature_fix("the signature")
        elif path.endswith("stream_ended"):
            fix += " (a 204 there makes Twilio fail the call with 12100)"
        self.add(f"{path.rsplit('/', 1)[-1]} answers {want}", ok,
                 f"{response.status_code} {ctype}".strip(), fix)

    def check_engines(self) -> None:
        """One real request per engine, made from here with this environment (engine_probe):
        the server's engines when the doctor runs where the line runs, or with its settings."""
        from .engines.probe import KINDS, probe_configured
        here = {kind: getattr(self.settings, f"{kind}_engine") for kind in KINDS}
        try:
            served = self.http.get(self.base + "/healthz", timeout=TIMEOUT).json().get("engines")
        except (requests.RequestException, ValueError, AttributeError):
            served = None
        if served and served != here:
            self.add("engines probed are the server's", False, f"server {served}, here {here}",
                     "run the doctor where the line runs, or with its ASR/LLM/TTS_ENGINE and keys")
        for probe in probe_configured(self.settings):
            self.add(f"{probe.kind} engine {probe.engine} answers a real request", probe.ok,
                     probe.detail, probe.fix)

    def check_twilio_alerts(self) -> None:
        """Twilio's own alerts about this line in the last day (Monitor API, on the
        environment's TWILIO_API_BASE_URL): a blocking code fails with its fix; the others
        are warnings, listed with theirs."""
        from collections import Counter
        from datetime import UTC, datetime, timedelta

        from .config import TWILIO_API, ConfigError, Settings
        from .delivery import rest_client
        from .twilio_alerts import failure, read
        name = "no Twilio alerts in the last day"
        if not self.token:
            self.add(name, True, "not read: no TWILIO_AUTH_TOKEN")
            return
        try:
            api = monitor_api(self.settings or Settings.from_env(), self.base)
        except ConfigError:
            api = TWILIO_API
        try:
            alerts = read(rest_client(self.account, self.token, api),
                          urlsplit(self.base).hostname or "",
                          datetime.now(UTC) - timedelta(days=1))
        except Exception as exc:  # noqa: BLE001 - every failure is this check's FAIL
            self.add(name, False, f"Monitor API on {api}: {failure(exc)[:120]}",
                     "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN must be the account's (the "
                     "line's REST updates use them too); check TWILIO_API_BASE_URL")
            return
        fixes = {a.code: a.fix for a in alerts}
        counts = ", ".join(f"{code}×{n}" for code, n in Counter(a.code for a in alerts).items())
        warnings = "; ".join(f"warning {c}: {f.text}" for c, f in fixes.items() if not f.blocking)
        self.add(name, not any(f.blocking for f in fixes.values()),
                 " — ".join(part for part in (counts or "none", warnings) if part),
                 "; ".join(f"{c}: {f.text}" for c, f in fixes.items() if f.blocking))

    def run(self) -> list[Check]:
        self.check_config()
        self.check_health()
        if self.settings is not None:
            self.check_engines()
        self.check_first_audio(self.check_incoming_call())
        self.check_mp3("greeting_he.mp3")
        self.check_mp3("fallback_he.mp3")
        self.check_websocket(offer=False)
        self.check_websocket(offer=True)
        self.check_status_route("/webhook/stream_status", 204, StreamEvent="stream-started",
                                StreamSid="MZ" + "0" * 32)
        self.check_status_route("/webhook/stream_ended", 200)
        self.check_status_route("/webhook/call_status", 204, CallStatus="completed",
                                CallDuration="0")
        self.check_twilio_alerts()
        return self.results


def monitor_api(env, base: str) -> str:
    """Where the doctor reads Twilio's alerts about the line at `base`: the environment's
    TWILIO_API_BASE_URL, except in local mode, whose emulator stands for Twilio only for a
    line on this machine, and runs beside it on the line's port + 1 (scripts/run_local.sh):
    the port of `base`, which PORT need not name (`doctor --url http://127.0.0.1:5050`)."""
    from .config import TWILIO_API
    if not env.local_mode:
        return env.twilio_api_base_url
    parts = urlsplit(base)
    if not is_loopback_host(parts.hostname):
        return TWILIO_API
    if env.twilio_api_base_url == f"http://127.0.0.1:{env.port + 1}" and parts.port:
        return f"http://127.0.0.1:{parts.port + 1}"  # not set by hand: the line's emulator
    return env.twilio_api_base_url


def twiml_problems(root: ET.Element, text: str, base: str) -> list[str]:
    """DESIGN §4's TwiML rules for the first turn."""
    problems = []
    urls = re.findall(r"(?:https?|wss?)://[^\s\"<]+", text)
    if any("//" in u.split("://", 1)[1] for u in urls):
        problems.append("a URL has // in its path")
    host = urlsplit(base).netloc
    if any(urlsplit(u).netloc != host for u in urls):
        problems.append(f"URLs not on {host} (PUBLIC_BASE_URL differs)")
    stream = root.find("Connect/Stream")
    if stream is not None:
        url = urlsplit(stream.get("url", ""))
        if url.scheme != "wss" or url.query or url.path != "/ws/twilio-media":
            problems.append("Stream url must be wss://host/ws/twilio-media with no query")
        names = {p.get("name") for p in stream.findall("Parameter")}
        if not {"call_sid", "turn", "token"} <= names:
            problems.append("Stream lacks the call_sid/turn/token Parameters")
        if urlsplit(root.find("Connect").get("action", "")).path != "/webhook/stream_ended":
            problems.append("Connect action is not /webhook/stream_ended")
    elif root.find("Gather") is None and root.find("Record") is None:
        problems.append("neither Connect/Stream, Gather nor Record")
    return problems


def report(results: list[Check]) -> str:
    width = max(len(c.name) for c in results)
    lines = []
    for check in results:
        lines.append(f"{'PASS' if check.ok else 'FAIL'}  {check.name:<{width}}  {check.detail}")
        if check.fix:
            lines.append(f"{'':6}{'':<{width}}  fix: {check.fix}")
    failed = sum(not c.ok for c in results)
    lines.append(f"{'GO' if not failed else 'NO-GO'}: {len(results) - failed} passed, "
                 f"{failed} failed")
    return "\n".join(lines)
