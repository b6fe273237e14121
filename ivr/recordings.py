"""Fetching a <Record> recording safely: only from Twilio's API host, with auth, retries, a cap."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import requests

from . import audio
from .config import Settings

MAX_RECORDING_BYTES = 8 * 1024 * 1024  # ~8 minutes of 8 kHz 16-bit WAV
NOT_READY_RETRIES = 6
NOT_READY_WAIT_SEC = 0.5
TWILIO_API_HOST = "api.twilio.com"
RECORDING_NAME = re.compile(r"RE[0-9a-fA-F]{32}(\.wav|\.mp3)?")


class RecordingRefused(ValueError):
    """The RecordingUrl is not one we fetch (wrong host, scheme, port, account or path)."""


def check_recording_url(settings: Settings, url: str) -> str:
    """The .wav URL to download if the URL is Twilio's (or TWILIO_API_BASE_URL's); else raise."""
    parts = urlsplit(url)
    api = urlsplit(settings.twilio_api_base_url)
    official = parts.scheme == "https" and parts.hostname == TWILIO_API_HOST and parts.port in (
        None, 443)
    configured = (parts.scheme, parts.hostname, parts.port) == (api.scheme, api.hostname,
                                                                api.port)
    if not (official or configured):
        raise RecordingRefused(f"host {parts.scheme}://{parts.netloc} is not the Twilio API")
    if parts.scheme != "https" and not configured:
        raise RecordingRefused("recordings are fetched over https only")
    if "@" in parts.netloc or parts.query or parts.fragment or not is_recording_path(
            settings.twilio_account_sid, parts.path):
        raise RecordingRefused("not a recording of this account")
    path = parts.path if parts.path.endswith((".wav", ".mp3")) else parts.path + ".wav"
    return f"{parts.scheme}://{parts.netloc}{path}"


def is_recording_path(account_sid: str, path: str) -> bool:
    """Exactly /2010-04-01/Accounts/<sid>/Recordings/RE<32 hex>[.wav|.mp3]: no escapes, no dots."""
    prefix = f"/2010-04-01/Accounts/{account_sid}/Recordings/"
    if unquote(path) != path or not path.startswith(prefix):
        return False
    return RECORDING_NAME.fullmatch(path[len(prefix):]) is not None


def download(settings: Settings, url: str, session: requests.Session | None = None) -> bytes:
    """The recording's audio, retrying while Twilio says 404 (not ready yet); capped in size."""
    target = check_recording_url(settings, url)
    session = session or requests.Session()
    auth = (settings.twilio_account_sid, settings.twilio_auth_token)
    for attempt in range(NOT_READY_RETRIES + 1):
        with session.get(target, auth=auth, timeout=10, stream=True,
                         allow_redirects=False) as response:
            if response.status_code == 404 and attempt < NOT_READY_RETRIES:
                time.sleep(NOT_READY_WAIT_SEC)
                continue
            response.raise_for_status()
            data = bytearray()
            for chunk in response.iter_content(64 * 1024):
                data += chunk
                if len(data) > MAX_RECORDING_BYTES:
                    raise RecordingRefused(f"recording larger than {MAX_RECORDING_BYTES} bytes")
            return bytes(data)
    raise RecordingRefused("recording never became ready")


def keep(var_dir: str, sid: str, data: bytes, meta: dict) -> Path:
    """Save the recording and its metadata for the owner: var/recordings/<RecordingSid>.wav."""
    folder = Path(var_dir) / "recordings"
    folder.mkdir(parents=True, exist_ok=True)
    safe = "".join(c for c in sid if c.isalnum())[:64] or "recording"
    path = folder / f"{safe}.wav"
    path.write_bytes(data)
    (folder / f"{safe}.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1))
    return path


def to_pcm16(data: bytes) -> bytes:
    return audio.decode_to_pcm16(data)
