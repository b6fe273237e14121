"""Streaming alone: N media sockets of quiet audio into one gunicorn worker, CPU per call-minute.

Run: `python -m bench.socket_cost [--sockets 50,100 --seconds 30 --profile]` (or
`make bench-sockets`). Each call is answered by a signed `incoming_call`; its stream then sends
Twilio's `connected` and `start` and 50 pre-built `media` messages a second (low noise, below
VAD_RMS: no turn ever starts) from a separate process, so the sender shares no GIL with the
line. The worker's CPU (user + system, children included) is read from /proc over a fixed
window once every socket streams; `--profile` samples the worker with py-spy meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import os
import random
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import requests
from twilio.request_validator import RequestValidator
from websockets.speedups import apply_mask

from ivr import twiml
from ivr.config import LOCAL_ACCOUNT_SID
from ivr.media.loop import percentile

from .common import write_result
from .harness import CLOCK_TICKS, BenchLine, log

FRAME_SEC = 0.02
WARMUP_SEC = 3.0
MASK = b"\x12\x34\x56\x78"


def worker_cpu(pid: int) -> float:
    """utime + stime + cutime + cstime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / CLOCK_TICKS


def client_frame(text: str) -> bytes:
    """A masked text frame, as a client must send it."""
    payload = text.encode()
    size = len(payload)
    head = bytes([0x81]) + (bytes([0x80 | size]) if size < 126
                            else bytes([0x80 | 126]) + size.to_bytes(2, "big"))
    return head + MASK + apply_mask(payload, MASK)


def quiet_payloads(count: int) -> list[str]:
    """Base64 of 160-byte μ-law frames of low noise (a few steps around silence)."""
    rng = random.Random(7)
    return [base64.b64encode(bytes(rng.choice((0xFF, 0xFE, 0x7F, 0x7E, 0xFD)) for _ in range(160)))
            .decode() for _ in range(count)]


def answer_call(line: BenchLine, call_sid: str) -> dict:
    """A signed incoming_call; the stream URL and Parameters of its TwiML."""
    url = line.url + "/webhook/incoming_call"
    params = {"CallSid": call_sid, "AccountSid": LOCAL_ACCOUNT_SID, "From": "+972500000001",
              "To": "+972500000002", "CallStatus": "ringing", "Direction": "inbound"}
    signature = RequestValidator(line.token).compute_signature(url, params)
    answer = requests.post(url, data=params, headers={"X-Twilio-Signature": signature},
                           timeout=30).text
    stream_url = re.search(r'<Stream[^>]* url="([^"]+)"', answer).group(1)
    custom = dict(re.findall(r'<Parameter name="([^"]+)" value="([^"]*)"', answer))
    return {"call_sid": call_sid, "url": stream_url, "custom": custom}


class Sink(asyncio.Protocol):
    """Reads what the line sends: the 101, then frames we ignore; notes when it closes."""

    def __init__(self):
        self.head = bytearray()
        self.upgraded = asyncio.get_running_loop().create_future()
        self.closed = False

    def data_received(self, data: bytes) -> None:
        if not self.upgraded.done():
            self.head += data
            if b"\r\n\r\n" in self.head:
                self.upgraded.set_result(bytes(self.head).split(b" ", 2)[1] == b"101")

    def connection_lost(self, exc) -> None:
        self.closed = True
        if not self.upgraded.done():
            self.upgraded.set_result(False)


async def open_stream(stream: dict, token: str, frames: list[bytes]):
    parts = urlsplit(twiml.dial_url(stream["url"]))
    signature = RequestValidator(token).compute_signature(stream["url"], {})
    loop = asyncio.get_running_loop()
    transport, sink = await loop.create_connection(Sink, parts.hostname, parts.port)
    transport.write((f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                     "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                     f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
                     "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: audio.twilio.com\r\n"
                     f"X-Twilio-Signature: {signature}\r\n\r\n").encode())
    if not await sink.upgraded:
        raise RuntimeError("upgrade refused")
    sid = "MZ" + secrets.token_hex(16)
    transport.write(client_frame(json.dumps({"event": "connected", "protocol": "Call",
                                             "version": "1.0.0"})))
    transport.write(client_frame(json.dumps({"event": "start", "sequenceNumber": "1", "start": {
        "accountSid": LOCAL_ACCOUNT_SID, "streamSid": sid, "callSid": stream["call_sid"],
        "tracks": ["inbound"], "customParameters": stream["custom"],
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}},
        "streamSid": sid})))
    media = [client_frame(json.dumps({
        "event": "media", "sequenceNumber": str(i + 2), "streamSid": sid,
        "media": {"track": "inbound", "chunk": str(i + 1), "timestamp": str(i * 20),
                  "payload": payload}})) for i, payload in enumerate(frames)]
    return transport, sink, media, sid


async def stream_all(streams: list[dict], token: str, seconds: float, ready) -> dict:
    frames = quiet_payloads(50)
    opened = await asyncio.gather(*(open_stream(s, token, frames) for s in streams))
    loop = asyncio.get_running_loop()
    ready.send(time.time())
    sent, late, tick, next_at = 0, [], 0, loop.time()
    stop_at = next_at + seconds
    while loop.time() < stop_at:  # every socket gets its frame on each 20 ms tick
        for transport, sink, media, _ in opened:
            if not sink.closed:
                transport.write(media[tick % len(media)])
                sent += 1
        tick += 1
        next_at += FRAME_SEC
        late.append(max(0.0, loop.time() - next_at))
        await asyncio.sleep(max(0.0, next_at - loop.time()))
    for transport, sink, _, sid in opened:
        if not sink.closed:
            transport.write(client_frame(json.dumps({"event": "stop", "streamSid": sid})))
            transport.write(b"\x88\x82" + MASK + apply_mask(b"\x03\xe8", MASK))
    await asyncio.sleep(1.0)
    for transport, *_ in opened:
        transport.close()
    late.sort()
    return {"sent": sent, "closed_early": sum(s.closed for _, s, _, _ in opened),
            "sender_late_p99_ms": round(late[int(len(late) * 0.99)] * 1000, 1)}


def sender(streams: list[dict], token: str, seconds: float, conn) -> None:
    """The client side, in its own process."""
    import uvloop
    conn.send(uvloop.run(stream_all(streams, token, seconds, conn)))


def profile(pid: int, seconds: float, out: Path) -> subprocess.Popen | None:
    spy = shutil.which("py-spy") or str(Path(os.sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        log("py-spy not installed: no profile")
        return None
    return subprocess.Popen([spy, "record", "-p", str(pid), "-d", str(int(seconds)), "-r", "200",
                             "-f", "raw", "-o", str(out), "--nonblocking", "--gil",
                             "--function"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def top_functions(raw: Path, limit: int = 30) -> dict[str, list[tuple[str, float]]]:
    """Self and inclusive time per function from py-spy's collapsed stacks (samples holding
    the GIL), as shares of all samples."""
    own, inclusive, total = Counter(), Counter(), 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [re.sub(r" \(.*/", " (", f) for f in stack.split(";")]
        own[frames[-1]] += int(count)
        inclusive.update({f: int(count) for f in set(frames)})
        total += int(count)
    return {kind: [(name, round(100 * n / total, 1)) for name, n in counts.most_common(limit)]
            for kind, counts in (("self", own), ("inclusive", inclusive))}


def run_level(sockets: int, seconds: float, with_profile: bool) -> dict:
    with BenchLine(ASR_ENGINE="fake", STREAM_GREETING="false") as line:  # sockets, not turns
        streams = [answer_call(line, "CA" + secrets.token_hex(16)) for _ in range(sockets)]
        pid = line.worker_pid()
        ours, theirs = multiprocessing.Pipe()
        client = multiprocessing.Process(target=sender,
                                         args=(streams, line.token, WARMUP_SEC + seconds, theirs))
        client.start()
        ours.recv()  # every socket has started
        time.sleep(WARMUP_SEC)
        raw = Path(tempfile.mkdtemp()) / "profile.txt"
        spy = profile(pid, seconds, raw) if with_profile else None
        cpu_before, wall_before = worker_cpu(pid), time.monotonic()
        time.sleep(seconds)
        cpu = worker_cpu(pid) - cpu_before
        wall = time.monotonic() - wall_before
        sent = ours.recv()
        client.join()
        if spy is not None:
            spy.wait(30)
        time.sleep(1.0)
        starts = {sid for sid, _, _ in line.events("WS_START")}
        done = [d for _, _, d in line.events("WS_DONE")]
        redirects = len(line.events("WATCHDOG_REDIRECT_OK"))
        histogram: Counter = Counter()
        for d in done:
            histogram.update({int(ms): n for ms, n in d.get("lag_hist", {}).items()})
    call_minutes = sockets * wall / 60
    result = {"sockets": sockets, "seconds": round(wall, 1), "cpu_seconds": round(cpu, 2),
              "cpu_seconds_per_call_minute": round(cpu / call_minutes, 3),
              "us_per_message": round(cpu / (sockets * wall / FRAME_SEC) * 1e6, 1),
              "cpu_share_of_one_core_pct": round(100 * cpu / wall, 1),
              "started": len(starts), "watchdog_redirects": redirects,
              "lag_p99_ms": percentile(dict(histogram), 99),
              "lag_hist_ms": dict(sorted(histogram.items())), **sent}
    if spy is not None and raw.exists():
        result["profile_pct"] = top_functions(raw)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sockets", default="50,100")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    levels = []
    for count in (int(n) for n in args.sockets.split(",")):
        level = run_level(count, args.seconds, args.profile)
        levels.append(level)
        log(f"{count:4d} sockets: {level['cpu_seconds_per_call_minute']} CPU-s per call-minute, "
            f"{level['us_per_message']} µs per media message, {level['started']} started, "
            f"{level['watchdog_redirects']} redirected, loop lag p99 {level['lag_p99_ms']} ms")
        for kind, rows in level.get("profile_pct", {}).items():
            log(f"    {kind}:")
            for name, pct in rows[:20]:
                log(f"      {pct:5.1f} %  {name}")
    path = write_result("socket_cost", {"levels": levels})
    print(f"written to {path}")


if __name__ == "__main__":
    main()
