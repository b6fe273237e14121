"""What happened on an emulated call: timeline, requests, audio heard, recordings, dials, errors."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from typing import Any

ERROR_TEXT = {
    11200: "HTTP retrieval failure",
    12100: "Document parse failure",
    12300: "Invalid Content-Type",
    13331: "Gather: Invalid language value",
    13512: "Gather element has an invalid language attribute value",
    15003: "Call Progress: Warning Response to Callback URL",
    20003: "Authentication error",
    20500: "Internal Server Error",
    21211: "Invalid 'To' Phone Number",
    21212: "Invalid 'From' Phone Number",
    21220: "Call is not in-progress; cannot redirect",
    21602: "Message body is required",
    21617: "The concatenated message body exceeds the 1600 character limit",
    31920: "Stream - WebSocket - Handshake Error",
    31921: "Stream - WebSocket - Close Error",
    31922: "Stream - WebSocket - URL Schema Not Supported",
    31923: "Stream - WebSocket - Malformed URL",
    31924: "Stream - WebSocket - Protocol Error",
    32018: "TwiML is longer than 4000 characters",
}

PLAYS = re.compile(r"plays (\S+\.mp3)")  # the timeline's "plays k_….mp3 (2.1 s)"


@dataclass
class CallResult:
    """Everything an owner would read in Twilio's console about one call, plus its audio."""

    call_sid: str
    status: str = "queued"
    duration: float = 0.0
    timeline: list[dict] = field(default_factory=list)
    requests: list[dict] = field(default_factory=list)
    heard: list[dict] = field(default_factory=list)
    said: list[dict] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    recordings: list[dict] = field(default_factory=list)
    streams: list[dict] = field(default_factory=list)  # <Connect><Stream>s and forks, in order
    dials: list[dict] = field(default_factory=list)
    wav: bytes = b""
    max_tick_late_ms: float = 0.0  # how late (real ms) the emulator itself sent a frame

    @property
    def error_codes(self) -> list[int]:
        return [e["code"] for e in self.errors]

    @property
    def connects(self) -> list[dict]:
        """The call's <Connect><Stream>s (its streams but the <Start><Stream> forks)."""
        return [s for s in self.streams if not s.get("fork")]

    @property
    def forks(self) -> list[dict]:
        return [s for s in self.streams if s.get("fork")]

    def requests_to(self, path: str) -> list[dict]:
        return [r for r in self.requests if path in r["url"]]

    def to_dict(self, with_audio: bool = True) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "wav"}
        if with_audio:
            data["wav_base64"] = base64.b64encode(self.wav).decode()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> CallResult:
        data = dict(data)
        wav = base64.b64decode(data.pop("wav_base64", ""))
        return cls(wav=wav, **data)

    def jsonl(self) -> str:
        """The request log, one JSON object a line, like Twilio's Request Inspector."""
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in self.requests)

    def timeline_text(self, words: dict[str, str] | None = None) -> str:
        """The call, one event a line; `words` (MP3 file name → its words) shows what the
        line said where the emulator saw only the file it played."""
        lines = [f"call {self.call_sid}: {self.status}, {self.duration:.1f} s"]
        for entry in self.timeline:
            text = PLAYS.sub(lambda m: f'plays "{words[m[1]]}"' if m[1] in words else m[0],
                             entry["text"]) if words else entry["text"]
            lines.append(f"{entry['t']:7.2f}s  {entry['who']:<7} {text}")
        for error in self.errors:
            lines.append(f"  error {error['code']} ({ERROR_TEXT.get(error['code'], '')}): "
                         f"{error['message']}")
        return "\n".join(lines)
