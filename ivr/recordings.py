"""Fetching a <Record> recording safely: only from Twilio's API host, with auth, retries, a cap."""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import urlsplit

import requests

from . import audio
from .config import Settings

MAX_RECORDING_BYTES = 8 * 1024 * 1024  # ~8 minutes of 8 kHz 16-bit WAV
NOT_READY_RETRIES = 6
NOT_READY_WAIT_SEC = 0.5
TWILIO_API_HOST = "api.twilio.com"


class RecordingRefused(ValueError):
    """The RecordingUrl is not one we fetch (wrong host, scheme, port or account)."""


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
    prefix = f"/2010-04-01/Accounts/{settings.twilio_account_sid}/Recordings/RE"
    if not parts.path.startswith(prefix) or parts.query or ".." in parts.path:
        raise RecordingRefused("not a recording of this account")
    path = parts.path if parts.path.endswith((".wav", ".mp3")) else parts.path + ".wav"
    return f"{parts.scheme}://{parts.netloc}{path}"


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


def purge_before(var_dir: str, ts: float) -> int:
    """Delete kept recordings (the .wav and its .json) last written before `ts`; how many."""
    folder = Path(var_dir) / "recordings"
    stems = {p.stem for pattern in ("*.wav", "*.json") for p in folder.glob(pattern)}
    removed = 0
    for stem in sorted(stems):
        files = [p for p in (folder / f"{stem}.wav", folder / f"{stem}.json") if p.is_file()]
        try:
            if not files or max(p.stat().st_mtime for p in files) >= ts:
                continue
            for path in files:
                path.unlink(missing_ok=True)
        except OSError:  # gone meanwhile
            continue
        removed += 1
    return removed
