"""A light load generator in its own process: N simultaneous Twilio calls against a running line.

Run: `python -m bench.loadgen --url http://127.0.0.1:5000 --token T --rest-port P --calls 100
[--stream-seconds 30 (streaming alone: no utterances)]`; the line must run with
REPLY_MODE=play, TURN_MODE=stream and TWILIO_API_BASE_URL=http://127.0.0.1:P. It plays
Twilio: signed webhooks, the TwiML's <Play> (the MP3 is fetched and waited out), signed
<Connect><Stream> sockets fed from frames built before the run on a 20 ms clock, and the REST
API the line's `calls.update` lands on. Prints one JSON summary, including how late its own
20 ms ticks ran, so a late generator is never mistaken for a slow server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import resource
import sys
import time
from base64 import b64encode

from ivr import audio
from ivr.config import LOCAL_ACCOUNT_SID
from ivr.sim.script import CallerScript, voice_ulaw

from . import asynchttp
from .common import hist_percentile, percentile
from .loadcall import LoadCall, Shared, payloads

CALL_PATH = re.compile(r"^/2010-04-01/Accounts/(\w+)/Calls/(\w+)\.json$")
BACKGROUND_FRAMES = 50
VAD_RMS = 210  # the line's default VAD_RMS: a caller's voice is louder than this


def background() -> list[str]:
    """One second of faint line noise (RMS ~25, far below the VAD), as frame payloads."""
    rng = random.Random(13)
    samples = [rng.randint(-40, 40) for _ in range(audio.RATE * BACKGROUND_FRAMES // 50)]
    pcm = b"".join(s.to_bytes(2, "little", signed=True) for s in samples)
    return payloads(audio.pcm16_to_ulaw(pcm))


def utterances(script: str) -> tuple[list[list[str]], list[int]]:
    """The script's sentences (espeak, as the emulator's caller says them) as frame payloads,
    and for each the frame after its last voiced one."""
    frames, ends = [], []
    for step in CallerScript.load(script).steps:
        if step.action == "say":
            ulaw = voice_ulaw(step.value)
            voiced = [i for i, f in enumerate(audio.frames_of(ulaw))
                      if audio.rms(audio.ulaw_to_pcm16(f)) > VAD_RMS]
            frames.append(payloads(ulaw))
            ends.append(voiced[-1] + 1 if voiced else 0)
    return frames, ends


class Generator:
    """The calls of one run and the REST API their `calls.update`s land on."""

    def __init__(self, shared: Shared, calls: int, ramp: float):
        self.shared, self.count, self.ramp = shared, calls, ramp
        self.calls: dict[str, LoadCall] = {}
        self.auth = "Basic " + b64encode(f"{shared.account}:{shared.token}".encode()).decode()

    async def rest(self, method: str, path: str, headers: dict,
                   body: bytes) -> tuple[int, str, bytes]:
        """POST …/Calls/{CallSid}.json as Twilio answers it (its JSON, or its error)."""
        match = CALL_PATH.match(path.split("?")[0])
        if method != "POST" or not match:
            return 404, "application/json", b'{"code": 20404, "status": 404}'
        if headers.get("authorization") != self.auth or match[1] != self.shared.account:
            return 401, "application/json", b'{"code": 20003, "status": 401}'
        call = self.calls.get(match[2])
        if call is None or call.status != "in-progress" or call.hung_up:
            return 400, "application/json", b'{"code": 21220, "status": 400}'
        form = asynchttp.form_of(body)
        if form.get("Status") == "completed":
            call.hangup_by_line()
        elif form.get("Twiml"):
            call.update(form["Twiml"])
        else:
            call.errors.append("calls.update without Twiml (Url is not followed)")
            return 400, "application/json", b'{"code": 20001, "status": 400}'
        return 200, "application/json", json.dumps({
            "sid": call.sid, "account_sid": self.shared.account, "status": call.status,
            "direction": "inbound", "from": "+972501234567", "to": "+97231234567",
            "api_version": "2010-04-01", "uri": path}).encode()

    async def run(self, rest_port: int) -> dict:
        server = await asynchttp.serve(self.rest, "127.0.0.1", rest_port)
        cpu_before, started = cpu_seconds(), time.monotonic()
        stop = asyncio.Event()
        clock = asyncio.ensure_future(self.shared.clock(stop))
        tasks = []
        for index in range(self.count):
            call = LoadCall(self.shared)
            self.calls[call.sid] = call
            tasks.append(asyncio.ensure_future(call.run()))
            await asyncio.sleep(self.ramp if index < self.count - 1 else 0)
        await asyncio.gather(*tasks)
        while self.shared.tasks:  # the last status callbacks
            await asyncio.gather(*list(self.shared.tasks), return_exceptions=True)
        stop.set()
        await clock
        server.close()
        return self.summary(cpu_seconds() - cpu_before, time.monotonic() - started)

    def summary(self, cpu: float, wall: float) -> dict:
        calls, g = list(self.calls.values()), self.shared
        expected = len(g.utterances)
        call_minutes = sum(c.ended_at - c.started for c in calls) / 60
        turn_ms = [ms for c in calls for ms in c.turn_ms]
        errors: dict[str, int] = {}
        for call in calls:
            for error in call.errors:
                errors[error] = errors.get(error, 0) + 1
        return {
            "calls": len(calls), "turns_per_call": expected,
            "turns_answered": sum(c.answered for c in calls),
            "calls_all_answered": sum(1 for c in calls if c.answered >= expected and not c.errors),
            "streams": sum(c.streams for c in calls), "errors": errors,
            "call_minutes": round(call_minutes, 3),
            "call_seconds_mean": round(call_minutes * 60 / max(1, len(calls)), 2),
            "turn_ms_p50": round(percentile(turn_ms, 50)) if turn_ms else None,
            "turn_ms_p95": round(percentile(turn_ms, 95)) if turn_ms else None,
            "tick_late_ms_p50": hist_percentile(g.late_hist, 50),
            "tick_late_ms_p99": hist_percentile(g.late_hist, 99),
            "tick_late_ms_max": max(g.late_hist, default=0),
            "frames_sent": g.frames,
            "frames_per_stream_second": round(g.frames / g.stream_time, 2) if g.stream_time
            else None,
            **spread("play_get_ms", g.get_ms), **spread("handshake_ms", g.handshake_ms),
            "generator_cpu_seconds": round(cpu, 2), "wall_seconds": round(wall, 1),
            "call_sids": [c.sid for c in calls]}


def spread(name: str, values: list[float]) -> dict:
    """p50/p95/max of a list of milliseconds, as `{name}_p50`… (None when it is empty)."""
    return {f"{name}_{k}": round(percentile(values, pct)) if values else None
            for k, pct in (("p50", 50), ("p95", 95), ("max", 100))}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_loop(main) -> dict:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="the line, e.g. http://127.0.0.1:5000")
    parser.add_argument("--token", required=True, help="the auth token the line runs with")
    parser.add_argument("--account", default=LOCAL_ACCOUNT_SID)
    parser.add_argument("--rest-port", type=int, required=True,
                        help="serve Twilio's REST API here (the line's TWILIO_API_BASE_URL)")
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--script", default="three_turns", help="whose sentences are said")
    parser.add_argument("--stream-seconds", type=float, default=0.0,
                        help="streaming alone: each call streams this long, says nothing")
    parser.add_argument("--ramp", type=float, default=0.05, help="seconds between call starts")
    parser.add_argument("--wait-go", action="store_true",
                        help='print "ready" once prepared, start at a line on stdin')
    args = parser.parse_args(argv)
    said, ends = ([], []) if args.stream_seconds else utterances(args.script)
    shared = Shared(url=args.url.rstrip("/"), token=args.token, account=args.account,
                    utterances=said, background=background(), voice_ends=ends,
                    stream_seconds=args.stream_seconds,
                    reply_timeout=CallerScript.load(args.script).reply_timeout)
    if args.wait_go:  # the frames are built: the caller measures from here on
        print("ready", flush=True)
        sys.stdin.readline()
    result = run_loop(Generator(shared, args.calls, args.ramp).run(args.rest_port))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
