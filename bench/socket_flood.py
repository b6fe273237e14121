"""Idle-socket flood: do webhooks and /healthz still answer while hostile sockets pile up?

Run: `python -m bench.socket_flood [--idle 500 --partial 100 --calls 20 --seconds 40]`
(or `make bench-flood`). Against the real deploy (scripts/start.sh, one worker):
- `--idle` WebSockets, half signed and half unsigned, that upgrade and then send nothing, each
  reopened a second after the line closes or refuses it (500 sockets kept open as far as the
  line allows: the unsigned ones make a steady 250 refused upgrades a second);
- `--partial` raw connections that send half an HTTP request and stop;
- `--calls` live calls streaming in real time through the emulator (three turns each);
- a prober sending a signed webhook and a /healthz request every 50 ms, timing each answer.
The flood and the prober each run in their own process, so neither shares a GIL with the
emulated callers: a late answer is the line's, not the load generator's.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import threading
import time

import requests
from twilio.request_validator import RequestValidator

from ivr import twiml

from .common import percentile, write_result
from .harness import BenchLine, log

PROBE_EVERY_SEC = 0.05
REOPEN_AFTER_SEC = 1.0


async def idle_socket(host: str, port: int, request: bytes, stop_at: float, stats: dict) -> None:
    """Upgrade, then say nothing; when the line closes or refuses, come back a second later."""
    await asyncio.sleep(random.random() * REOPEN_AFTER_SEC)  # not all in the same instant
    while time.monotonic() < stop_at:
        try:
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(request)
            status = (await asyncio.wait_for(reader.readline(), 30)).split(b" ")[1:2]
            key = "accepted" if status == [b"101"] else f"refused_{status[0].decode()}" \
                if status else "no_answer"
            stats[key] = stats.get(key, 0) + 1
            if key == "accepted":
                stats["open"] = stats.get("open", 0) + 1
                stats["max_open"] = max(stats.get("max_open", 0), stats["open"])
                try:
                    await asyncio.wait_for(reader.read(), max(0.1, stop_at - time.monotonic()))
                finally:
                    stats["open"] -= 1
            writer.close()
        except (OSError, TimeoutError, IndexError) as exc:
            name = f"error_{exc.__class__.__name__}"
            stats[name] = stats.get(name, 0) + 1
        await asyncio.sleep(REOPEN_AFTER_SEC)


async def partial_request(host: str, port: int, stop_at: float, stats: dict) -> None:
    """Half a request line and a header, then nothing (slowloris)."""
    try:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"GET /ws/twilio-media HTTP/1.1\r\nHost: x\r\n")
        stats["partial_open"] = stats.get("partial_open", 0) + 1
        await asyncio.wait_for(reader.read(), max(0.1, stop_at - time.monotonic()))
        stats["partial_closed_by_line"] = stats.get("partial_closed_by_line", 0) + 1
    except (OSError, TimeoutError):
        pass


def upgrade_request(host: str, port: int, signature: str | None) -> bytes:
    lines = ["GET /ws/twilio-media HTTP/1.1", f"Host: {host}:{port}", "Upgrade: websocket",
             "Connection: Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
             "Sec-WebSocket-Version: 13"]
    if signature:
        lines.append(f"X-Twilio-Signature: {signature}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def flood(url: str, token: str, idle: int, partial: int, seconds: float, out) -> None:
    """The attacker's process: `idle` + `partial` connections for `seconds`; stats to `out`."""
    host, port = "127.0.0.1", int(url.rsplit(":", 1)[1])
    signature = RequestValidator(token).compute_signature(twiml.stream_url(url), {})
    stats: dict = {}

    async def main() -> None:
        stop_at = time.monotonic() + seconds
        tasks = [idle_socket(host, port, upgrade_request(host, port, signature if i % 2 else None),
                             stop_at, stats) for i in range(idle)]
        tasks += [partial_request(host, port, stop_at, stats) for _ in range(partial)]
        await asyncio.gather(*tasks)
    asyncio.run(main())
    out.put(stats)


def probe(url: str, token: str, seconds: float, out) -> None:
    """The prober's process: a signed webhook and /healthz every 50 ms for `seconds`; each
    answer's time in ms (inf for a failure) to `out`."""
    webhook = url + "/webhook/stream_status"
    params = {"CallSid": "CA" + "7" * 32, "StreamEvent": "stream-started"}
    headers = {"X-Twilio-Signature": RequestValidator(token).compute_signature(webhook, params)}
    times: dict = {"webhook": [], "healthz": []}
    session = requests.Session()
    stop_at = time.monotonic() + seconds
    while time.monotonic() < stop_at:
        for name, call in (("webhook", lambda: session.post(webhook, data=params,
                                                            headers=headers, timeout=15)),
                           ("healthz", lambda: session.get(url + "/healthz", timeout=15))):
            started = time.monotonic()
            try:
                ok = call().status_code in (200, 204)
            except requests.RequestException:
                ok = False
            times[name].append((time.monotonic() - started) * 1000 if ok else float("inf"))
        time.sleep(PROBE_EVERY_SEC)
    out.put(times)


def summary(values: list[float]) -> dict:
    answered = [v for v in values if v != float("inf")]
    return {"requests": len(values), "failed": len(values) - len(answered),
            "p50_ms": round(percentile(answered, 50), 1),
            "p99_ms": round(percentile(answered, 99), 1),
            "max_ms": round(max(answered, default=0), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--idle", type=int, default=500)
    parser.add_argument("--partial", type=int, default=100)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=40)
    args = parser.parse_args()
    with BenchLine() as line:
        flood_out, probe_out = multiprocessing.Queue(), multiprocessing.Queue()
        attacker = multiprocessing.Process(target=flood, args=(
            line.url, line.token, args.idle, args.partial, args.seconds, flood_out))
        attacker.start()
        time.sleep(3)  # let the flood build up before measuring
        prober = multiprocessing.Process(target=probe, args=(
            line.url, line.token, args.seconds - 6, probe_out))
        prober.start()
        calls: list = []
        callers = [threading.Thread(target=lambda: calls.append(
            line.carrier.place_call("three_turns", speed=1.0))) for _ in range(args.calls)]
        for caller in callers:
            caller.start()
            time.sleep(0.05)
        for caller in callers:
            caller.join()
        times = probe_out.get(timeout=args.seconds + 60)
        stats = flood_out.get(timeout=args.seconds + 60)
        prober.join()
        attacker.join()
    answered = sum(1 for r in calls if len([h for h in r.heard if h["kind"] == "play"]) == 3
                   and not r.error_codes)
    result = {"idle_sockets": args.idle, "partial_requests": args.partial,
              "live_calls": args.calls, "calls_fully_answered": answered, "flood": stats,
              "webhook": summary(times["webhook"]), "healthz": summary(times["healthz"])}
    path = write_result("socket_flood", result)
    log(f"flood: {stats}")
    print(f"{args.idle} idle + {args.partial} half-open sockets, {args.calls} live calls "
          f"({answered} fully answered): webhook p99 {result['webhook']['p99_ms']} ms "
          f"({result['webhook']['failed']} failed), /healthz p99 {result['healthz']['p99_ms']} "
          f"ms; written to {path}")


if __name__ == "__main__":
    main()
