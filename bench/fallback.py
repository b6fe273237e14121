"""Refused WebSocket → Record redirect: how long until the caller is moved to <Record>.

Run: `python -m bench.fallback` (or `make bench-fallback`). Real time (speed 1), 10 calls.
"""

from __future__ import annotations

from .common import percentile, write_result
from .harness import BenchLine, log

CALLS = 10
SCRIPT = {"steps": [{"say": "שלום"}], "end": "hangup", "reply_timeout": 10}


def main() -> None:
    times = []
    with BenchLine() as line:
        for n in range(CALLS):
            result = line.carrier.place_call(SCRIPT, speed=1.0, ws_refuse=True)
            refused = next(e["t"] for e in result.errors if e["code"] == 31920)
            ended = next(r for r in result.requests if "/webhook/stream_ended" in r["url"])
            assert "<Record" in ended["body"], ended["body"][:200]
            times.append((ended["t"] + ended["ms"] / 1000 - refused) * 1000)
            log(f"call {n + 1}: {times[-1]:.1f} ms")
    result = {"calls": CALLS, "refused_to_record_ms": {
        "p50": round(percentile(times, 50), 1), "p95": round(percentile(times, 95), 1),
        "max": round(max(times), 1)}}
    path = write_result("fallback", result)
    print(f"refused WebSocket → Record TwiML: p50 {result['refused_to_record_ms']['p50']} ms, "
          f"p95 {result['refused_to_record_ms']['p95']} ms; written to {path}")


if __name__ == "__main__":
    main()
