"""Fetching a <Record> recording safely: only from Twilio's API hosts (regional ones too), with
auth, retries, a cap; one redirect to Twilio or pre-signed storage, never with our credentials."""

from __future__ import annotations

import json
import re
import threading
import time
from contextlib import suppress
from pathlib import Path
from urllib.parse import parse_qs, unquote, urljoin, urlsplit

import requests

from . import threads
from .config import Settings

MAX_RECORDING_BYTES = 8 * 1024 * 1024  # ~8 minutes of 8 kHz 16-bit WAV
NOT_READY_RETRIES = 6
NOT_READY_WAIT_SEC = 0.5
FETCH_BUDGET_SEC = 5.0  # every try and the body together; the webhook must answer within 15 s
READ_CHUNK = 64 * 1024
TWILIO_API_HOST = re.compile(r"api(\.[a-z0-9][a-z0-9-]{0,30}){0,2}\.twilio\.com")  # api.twilio.com,
# api.ie1.twilio.com, api.dublin.ie1.twilio.com: product[.edge][.region].twilio.com
TWILIO_OWNED = re.compile(r"(.+\.)?(twilio\.com|twiliocdn\.com)")
STORAGE_HOST = re.compile(r"(.+\.)?(s3(-[a-z0-9-]+)?(\.dualstack)?(\.[a-z0-9-]+)?\.amazonaws\.com"
                          r"|storage\.googleapis\.com)")  # S3 (any region) and Cloud Storage
PRESIGNED = (  # query parameters that make a storage URL pre-signed: S3 SigV4 and V2, GCS V4 and V2
    {"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature"},
    {"AWSAccessKeyId", "Signature", "Expires"},
    {"X-Goog-Algorithm", "X-Goog-Credential", "X-Goog-Signature"},
    {"GoogleAccessId", "Signature", "Expires"})
RECORDING_NAME = re.compile(r"RE[0-9a-fA-F]{32}(\.wav|\.mp3)?")
RECORDING_FILE = re.compile(r"[A-Za-z0-9]{1,64}\.wav")  # a kept recording's file name


class RecordingRefused(ValueError):
    """The RecordingUrl is not one we fetch (wrong host, scheme, port, account or path)."""


class RecordingTimeout(TimeoutError):
    """The recording did not arrive, body included, within the fetch's deadline."""


def check_recording_url(settings: Settings, url: str) -> str:
    """The .wav URL to download if the URL is Twilio's (or TWILIO_API_BASE_URL's); else raise.
    On a Twilio API host while TWILIO_API_BASE_URL is the emulator (or a proxy), from there."""
    parts = urlsplit(url)
    api = urlsplit(settings.twilio_api_base_url)
    official = (parts.scheme == "https" and parts.port in (None, 443)
                and TWILIO_API_HOST.fullmatch(parts.hostname or "") is not None)
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
    if official and settings.twilio_gateway:
        return settings.twilio_gateway + path
    return f"{parts.scheme}://{parts.netloc}{path}"


def redirect_problem(url: str, storage_origins: tuple[str, ...] = ()) -> str | None:
    """Why a recording's redirect to `url` is not followed, or None: it must be https to a
    Twilio host (twilio.com, twiliocdn.com) or a pre-signed S3 / Google Cloud Storage URL
    (its signature in the query). `storage_origins` (tests: the emulator's storage stand-in)
    are taken as storage hosts whatever their scheme; their URLs must be pre-signed too."""
    parts = urlsplit(url)
    if "@" in parts.netloc or parts.fragment:
        return "credentials or a fragment in the URL"
    storage = f"{parts.scheme}://{parts.netloc}" in storage_origins
    if not storage and (parts.scheme != "https" or parts.port not in (None, 443)):
        return "not https"
    host = parts.hostname or ""
    if not storage and TWILIO_OWNED.fullmatch(host):
        return None
    if not storage and not STORAGE_HOST.fullmatch(host):
        return f"{host or 'no host'} is neither Twilio's nor a storage service's"
    names = set(parse_qs(parts.query))
    if not any(signed <= names for signed in PRESIGNED):
        return "a storage URL that is not pre-signed"
    return None


def is_recording_path(account_sid: str, path: str) -> bool:
    """Exactly /2010-04-01/Accounts/<sid>/Recordings/RE<32 hex>[.wav|.mp3]: no escapes, no dots."""
    prefix = f"/2010-04-01/Accounts/{account_sid}/Recordings/"
    if unquote(path) != path or not path.startswith(prefix):
        return False
    return RECORDING_NAME.fullmatch(path[len(prefix):]) is not None


def download(settings: Settings, url: str, session: requests.Session | None = None,
             budget_sec: float = FETCH_BUDGET_SEC) -> bytes:
    """The recording's audio: retries while Twilio says 404 (not ready), a size cap, and one
    deadline `budget_sec` from now for every try and the body, however slowly the server sends."""
    target = check_recording_url(settings, url)
    auth = (settings.twilio_account_sid, settings.twilio_auth_token)
    fetch = _Fetch(session or requests.Session(), target, auth, time.monotonic() + budget_sec,
                   settings.recording_storage_origins)
    return fetch.within_deadline(budget_sec)


class _Fetch:
    """One download on a worker thread, so that the caller is back by the deadline whatever
    the server does. At the deadline an open response's socket is shut, which ends the worker;
    a server that drips its headers holds only this worker thread, never the caller."""

    def __init__(self, session: requests.Session, url: str, auth: tuple, deadline: float,
                 storage_origins: tuple[str, ...] = ()):
        self.session, self.url, self.auth, self.deadline = session, url, auth, deadline
        self.storage_origins = storage_origins
        self.response: requests.Response | None = None
        self.cancelled = threading.Event()
        self.done = threading.Event()
        self.result: bytes | None = None
        self.error: BaseException | None = None

    def within_deadline(self, budget_sec: float) -> bytes:
        threads.start("recording-fetch", self._work)
        if not self.done.wait(max(0.0, self.deadline - time.monotonic())):
            self.cancel()
            raise RecordingTimeout(f"recording not fetched within {budget_sec:g} s")
        if self.error is not None:
            raise self.error
        return self.result or b""

    def cancel(self) -> None:
        self.cancelled.set()
        if self.response is not None:
            with suppress(Exception):  # already closed or released: nothing left to cut
                self.response.raw.shutdown()

    def _work(self) -> None:
        try:
            self.result = self._tries()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
            self.error = exc
        finally:
            self.done.set()

    def _remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0 or self.cancelled.is_set():
            raise RecordingTimeout("recording fetch deadline passed")
        return left

    def _tries(self) -> bytes:
        for attempt in range(NOT_READY_RETRIES + 1):
            with self.session.get(self.url, auth=self.auth, timeout=self._remaining(),
                                  stream=True, allow_redirects=False) as response:
                self.response = response
                if response.status_code == 404 and attempt < NOT_READY_RETRIES:
                    self.cancelled.wait(min(NOT_READY_WAIT_SEC, self._remaining()))
                    continue
                if response.is_redirect:
                    return self._redirected(response)
                if not 200 <= response.status_code < 300:
                    raise _status_error(response)
                return self._body(response)
        raise RecordingRefused("recording never became ready")

    def _redirected(self, response: requests.Response) -> bytes:
        """Follow one redirect, if it goes to Twilio or pre-signed storage, without our
        credentials (no Authorization header whatever the session or ~/.netrc would add)."""
        status, target = response.status_code, urljoin(self.url, response.headers["Location"])
        problem = redirect_problem(target, self.storage_origins)
        if problem:
            raise RecordingRefused(f"HTTP {status} redirect to {target[:120]!r} not followed: "
                                   f"{problem}")
        prepared = self.session.prepare_request(requests.Request("GET", target))
        prepared.headers.pop("Authorization", None)
        options = self.session.merge_environment_settings(target, {}, True, None, None)
        with self.session.send(prepared, timeout=self._remaining(), allow_redirects=False,
                               **{**options, "stream": True}) as second:
            self.response = second
            if second.is_redirect:
                raise RecordingRefused(f"HTTP {second.status_code}: a second redirect, "
                                       "not followed")
            if not 200 <= second.status_code < 300:
                raise _status_error(second)
            return self._body(second)

    def _body(self, response: requests.Response) -> bytes:
        data = bytearray()
        while chunk := response.raw.read1(READ_CHUNK, decode_content=True):
            data += chunk
            if len(data) > MAX_RECORDING_BYTES:
                raise RecordingRefused(f"recording larger than {MAX_RECORDING_BYTES} bytes")
            self._remaining()
        return bytes(data)


def _status_error(response: requests.Response) -> Exception:
    """A 3xx that is no redirect is refused (never taken as the audio); others are errors."""
    status = response.status_code
    if 300 <= status < 400:
        return RecordingRefused(f"HTTP {status} without a usable Location")
    return requests.HTTPError(f"HTTP {status} fetching the recording", response=response)


def keep(var_dir: str, sid: str, data: bytes, meta: dict, shared=None) -> Path:
    """Save the recording and its metadata for the owner: var/recordings/<RecordingSid>.wav;
    with `shared` (a blob_store.SharedMedia) also in the shared table, by the store's
    background writer (the owner reads it later; Twilio never does)."""
    folder = Path(var_dir) / "recordings"
    folder.mkdir(parents=True, exist_ok=True)
    safe = "".join(c for c in sid if c.isalnum())[:64] or "recording"
    path = folder / f"{safe}.wav"
    path.write_bytes(data)
    text = json.dumps(meta, ensure_ascii=False, indent=1)
    (folder / f"{safe}.json").write_text(text)
    if shared is not None:
        shared.put(path.name, "recording", data, later=True)
        shared.put(f"{safe}.json", "recording", text.encode(), later=True)
    return path


def read(var_dir: str, name: str, shared=None) -> bytes | None:
    """A kept recording's audio by file name (RE….wav): the local file, else the shared
    table's row (kept here from then on, with its metadata); None when nobody has it."""
    if not RECORDING_FILE.fullmatch(name):
        return None
    path = Path(var_dir) / "recordings" / name
    if path.is_file():
        return path.read_bytes()
    data = shared.get(name) if shared is not None else None
    if data is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = shared.get(path.with_suffix(".json").name)
        for target, content in ((path, data), (path.with_suffix(".json"), meta)):
            if content is not None:
                tmp = target.with_name(f".tmp-{target.name}")
                tmp.write_bytes(content)
                tmp.replace(target)
    return data


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
