"""Concurrent calls into one gunicorn worker: the most calls at which every turn is answered
and the p99 frame-handling lag stays under 20 ms; CPU seconds per call-minute.

Run: `python -m bench.concurrency [--levels 1,10,20,40]` (or `make bench-concurrency`).
Each call streams the 3-turn script in real time (Play ping-pong, instant fake engines). The
emulated callers run in this process on the same 2 cores, so they compete with the server.
"""

from __future__ import annotations

import argparse
import threading
import time

from ivr.media_socket import percentile

from .common import write_result
from .harness import BenchLine, log

LAG_LIMIT_MS = 20
TURNS = 3


def run_level(line: BenchLine, calls: int) -> dict:
    results: list = []
    cpu_before, started = line.cpu_seconds(), time.monotonic()

    def one_call(delay: float) -> None:
        time.sleep(delay)
        results.append(line.carrier.place_call("three_turns", speed=1.0))
    threads = [threading.Thread(target=one_call, args=(i * 0.05,)) for i in range(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    time.sleep(0.5)
    cpu = line.cpu_seconds() - cpu_before
    call_minutes = sum(r.duration for r in results) / 60
    answered = sum(1 for r in results if len([h for h in r.heard if h["kind"] == "play"]) == TURNS
                   and not r.error_codes)
    sids = {r.call_sid for r in results}
    lags = [d for sid, _, d in line.events("WS_DONE") if sid in sids]
    histogram: dict[int, int] = {}
    for done in lags:
        for ms, count in done.get("lag_hist", {}).items():
            histogram[int(ms)] = histogram.get(int(ms), 0) + count
    p99 = percentile(histogram, 99)
    worst = max((d.get("lag_max_ms", 0) for d in lags), default=0)
    return {"calls": calls, "answered": answered, "all_answered": answered == calls,
            "frames": sum(histogram.values()), "lag_p99_ms": p99,
            "lag_p999_ms": percentile(histogram, 99.9), "lag_max_ms": worst,
            "emulator_max_tick_late_ms": max(r.max_tick_late_ms for r in results),
            "cpu_seconds": round(cpu, 2), "call_minutes": round(call_minutes, 2),
            "cpu_seconds_per_call_minute": round(cpu / call_minutes, 2) if call_minutes else None,
            "wall_seconds": round(time.monotonic() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--levels", default="1,10,20,30,40")
    args = parser.parse_args()
    levels, best = [], 0
    with BenchLine() as line:
        for calls in (int(n) for n in args.levels.split(",")):
            level = run_level(line, calls)
            ok = level["all_answered"] and level["lag_p99_ms"] < LAG_LIMIT_MS
            level["pass"] = ok
            levels.append(level)
            log(f"{calls:3d} calls: answered {level['answered']}/{calls}, p99 frame-handling lag "
                f"{level['lag_p99_ms']} ms, max {level['lag_max_ms']} ms "
                f"(emulator late by up to {level['emulator_max_tick_late_ms']} ms), "
                f"{level['cpu_seconds_per_call_minute']} CPU s per call-minute")
            if not ok:
                break
            best = calls
    result = {"lag_limit_ms": LAG_LIMIT_MS, "max_calls_passing": best, "levels": levels}
    path = write_result("concurrency", result)
    print(f"largest level passing: {best} simultaneous calls; written to {path}")


if __name__ == "__main__":
    main()
