"""The emulator's outgoing HTTP: signed webhooks, TwiML and audio fetches, all logged."""

from __future__ import annotations

from urllib.parse import urlencode

import requests

from .. import audio
from .call import Call, Ended, signature_headers

WEBHOOK_TIMEOUT_SEC = 15
BODY_LOG_CHARS = 4000


class WebClient:
    """Makes the requests Twilio makes for one call and keeps them in the call's request log."""

    def __init__(self, run: Call):
        self.run = run
        self.session = requests.Session()

    def request(self, method: str, url: str, params: dict | None = None,
                signed: bool = True, what: str = "webhook") -> requests.Response | None:
        method = method.upper()
        params = params or {}
        if method == "GET" and params:
            url = url + ("&" if "?" in url else "?") + urlencode(params)
        headers = {"User-Agent": "TwilioProxy/1.1 (ivr emulator)"}
        if signed:
            headers.update(signature_headers(self.run.account, url,
                                             params if method == "POST" else {}))
        entry = {"t": round(self.run.clock.now(), 3), "direction": "out", "what": what,
                 "method": method, "url": url, "params": params if method == "POST" else {}}
        self.run.result.requests.append(entry)
        try:
            response = self._send(method, url, headers, params)
        except requests.RequestException as exc:
            entry.update(status=None, error=str(exc))
            self.run.error(11200, f"{method} {url}: {exc.__class__.__name__}", url)
            return None
        entry.update(status=response.status_code,
                     content_type=response.headers.get("Content-Type", ""),
                     ms=round(response.elapsed.total_seconds() * 1000, 1))
        if not response.headers.get("Content-Type", "").startswith("audio/"):
            entry["body"] = response.text[:BODY_LOG_CHARS]
        return response

    def _send(self, method: str, url: str, headers: dict, params: dict) -> requests.Response:
        """Like Twilio, retry once when the connection fails (a keep-alive the server closed)."""
        data = params if method == "POST" else None
        try:
            return self.session.request(method, url, headers=headers, data=data,
                                        timeout=WEBHOOK_TIMEOUT_SEC)
        except requests.ConnectionError:
            return self.session.request(method, url, headers=headers, data=data,
                                        timeout=WEBHOOK_TIMEOUT_SEC)

    def twiml(self, url: str, method: str = "POST", extra: dict | None = None) -> str:
        """Fetch a TwiML document; on any failure the call ends as Twilio ends it."""
        response = self.request(method, url, self.run.params(**(extra or {})))
        path = url.split("?")[0]
        if response is None:
            raise Ended()
        self.run.log("carrier", f"{method.upper()} {path} → {response.status_code}")
        if response.status_code != 200:
            self.run.error(11200, f"{path} answered {response.status_code}", url)
            raise Ended()
        ctype = response.headers.get("Content-Type", "")
        if not ctype.startswith(("text/xml", "application/xml", "text/html")):
            self.run.error(12300, f"{path} answered Content-Type {ctype or 'none'}", url)
            raise Ended()
        self.run.doc_url = url
        return response.text

    def post(self, url: str, params: dict, what: str = "callback") -> int | None:
        """A status callback; its answer is logged but changes nothing (4xx/5xx: warning 15003)."""
        response = self.request("POST", url, params, what=what)
        if response is None:
            return None
        if response.status_code >= 400:
            self.run.error(15003, f"{what} {url.split('?')[0]} answered {response.status_code}",
                           url)
        return response.status_code

    def audio(self, url: str) -> bytes | None:
        """Fetch and decode a <Play> file to 8 kHz PCM16; 11200/12300 and None on failure."""
        if self.run.faults.get("play_fail"):
            self.run.result.requests.append({"t": round(self.run.clock.now(), 3), "what": "play",
                                             "direction": "out", "method": "GET", "url": url,
                                             "status": 502, "error": "fault: play_fail"})
            self.run.error(11200, f"GET {url} failed (injected fault)", url)
            return None
        response = self.request("GET", url, signed=False, what="play")
        if response is None:
            return None
        if response.status_code != 200:
            self.run.error(11200, f"GET {url} answered {response.status_code}", url)
            return None
        ctype = response.headers.get("Content-Type", "")
        if not ctype.startswith("audio/"):
            self.run.error(12300, f"GET {url} answered Content-Type {ctype or 'none'}", url)
            return None
        try:
            return audio.decode_to_pcm16(response.content)
        except Exception as exc:  # noqa: BLE001 - a broken file is Twilio's 12300-ish failure
            self.run.error(12300, f"GET {url}: audio does not decode ({exc.__class__.__name__})",
                           url)
            return None
