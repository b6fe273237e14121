"""Simultaneous calls into one gunicorn worker: the most calls at which every turn is answered
and the p99 event-loop lag stays under 20 ms; CPU seconds per call-minute with turns and for
streaming alone.

Run: `python -m bench.concurrency [--levels 20,50,100,150] [--stream-levels 100] [--quick]`
(or `make bench-concurrency`). The line runs as `scripts/start.sh` does (one gunicorn worker,
REPLY_MODE=play, TURN_MODE=stream, instant fake engines); the calls come from bench/loadgen.py
in a process of its own: pre-built frames on a 20 ms asyncio clock, Twilio's REST API served
there. Each call says the three_turns script's three sentences, one per stream, and waits for
each reply (`calls.update` → <Play> → a new stream). The generator reports how late its own
ticks ran; CPU is the worker's plus its ended child processes' (ffmpeg, espeak-ng).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from .common import hist_percentile, write_result
from .harness import CLOCK_TICKS, ROOT, BenchLine, free_port, log

LAG_LIMIT_MS = 20
GENERATOR_LATE_MS = 20  # generator ticks later than this at p99: its figures are suspect
STREAM_SECONDS = 30
WS_DONE_WAIT_SEC = 30
WARMUP_CALLS = 3  # the worker's first turns pay for imports and first syntheses
TROUBLE = ("WATCHDOG", "STREAM_FALLBACK", "PING_PONG_FAIL", "TURN_STALE", "TURN_ERR",
           "WS_REJECTED", "WS_IDLE", "REPLY_LATE", "DELIVERY_ERR", "ACTION_DELIVERY",
           "THINKING_HINT")  # the line's own account of a turn that went wrong or late


def machine_busy() -> float:
    """CPU seconds every process on the machine has used since boot (from /proc/stat)."""
    fields = [int(v) for v in open("/proc/stat").readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLOCK_TICKS  # all but idle and iowait


def generate(line: BenchLine, rest_port: int, calls: int, stream_seconds: float = 0) -> dict:
    """One run of the generator; its summary with the server's lag and CPU over the run."""
    command = [sys.executable, "-m", "bench.loadgen", "--url", line.url, "--token", line.token,
               "--rest-port", str(rest_port), "--calls", str(calls), "--wait-go"]
    if stream_seconds:
        command += ["--stream-seconds", str(stream_seconds)]
    proc = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    if proc.stdout.readline().strip() != "ready":
        raise RuntimeError("the load generator did not start")
    cpu_before, busy_before = line.cpu_seconds(children=True), machine_busy()
    proc.stdin.write("go\n")
    proc.stdin.flush()
    out, _ = proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"the load generator failed ({proc.returncode})")
    gen = json.loads(out.strip().splitlines()[-1])
    sids = set(gen.pop("call_sids"))
    done = wait_ws_done(line, sids, gen["streams"])
    cpu = line.cpu_seconds(children=True) - cpu_before
    others = machine_busy() - busy_before - cpu - gen["generator_cpu_seconds"]
    histogram: dict[int, int] = {}
    for detail in done:
        for ms, count in detail.get("lag_hist", {}).items():
            histogram[int(ms)] = histogram.get(int(ms), 0) + count
    minutes = gen["call_minutes"]
    trouble = {k: n for k, n in line.event_counts(sids).items() if k.startswith(TROUBLE)}
    return {**gen, "line_trouble": trouble, "other_processes_cpu_seconds": round(others, 1),
            "other_processes_cores": round(others / gen["wall_seconds"], 2),
            "server_frames": sum(histogram.values()),
            "lag_p99_ms": hist_percentile(histogram, 99),
            "lag_p999_ms": hist_percentile(histogram, 99.9),
            "lag_max_ms": max(histogram, default=0), "cpu_seconds": round(cpu, 2),
            "cpu_seconds_per_call_minute": round(cpu / minutes, 3) if minutes else None}


def wait_ws_done(line: BenchLine, sids: set[str], streams: int) -> list[dict]:
    """The WS_DONE events of these calls, once every stream's has been written."""
    deadline = time.monotonic() + WS_DONE_WAIT_SEC
    while True:
        done = [d for sid, _, d in line.events("WS_DONE") if sid in sids]
        if len(done) >= streams or time.monotonic() > deadline:
            return done
        time.sleep(0.2)


def verdict(level: dict) -> tuple[bool, str]:
    problems = []
    if level["calls_all_answered"] < level["calls"]:
        problems.append(f"{level['calls'] - level['calls_all_answered']} call(s) not answered "
                        f"every turn: {level['errors'] or 'no error'}; the line logged "
                        f"{level['line_trouble']}")
    if level["lag_p99_ms"] >= LAG_LIMIT_MS:
        problems.append(f"server lag p99 {level['lag_p99_ms']} ms")
    if level["tick_late_ms_p99"] > GENERATOR_LATE_MS:
        problems.append(f"generator late (p99 {level['tick_late_ms_p99']} ms)")
    return not problems, "; ".join(problems)


def describe(kind: str, level: dict) -> str:
    return (f"{level['calls']:4d} calls {kind}: answered {level['turns_answered']}/"
            f"{level['calls'] * level['turns_per_call']} turns, server lag p99 "
            f"{level['lag_p99_ms']} ms (max {level['lag_max_ms']}), generator late p50/p99/max "
            f"{level['tick_late_ms_p50']}/{level['tick_late_ms_p99']}/"
            f"{level['tick_late_ms_max']} ms at {level['frames_per_stream_second']} frames/s, "
            f"{level['cpu_seconds_per_call_minute']} CPU-s per call-minute "
            f"(generator {level['generator_cpu_seconds']} CPU-s; other processes on the machine "
            f"{level['other_processes_cores']} cores)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", default="20,50,100,150", help="calls with turns")
    parser.add_argument("--stream-levels", default="100", help="calls streaming alone")
    parser.add_argument("--stream-seconds", type=float, default=STREAM_SECONDS)
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 2 and 5 calls, 5 streaming alone for 5 s")
    args = parser.parse_args()
    if args.quick:
        args.levels, args.stream_levels, args.stream_seconds = "2,5", "5", 5.0
    rest_port = free_port()
    turns, streaming, best = [], [], 0
    with BenchLine(rest_url=f"http://127.0.0.1:{rest_port}", REPLY_MODE="play") as line:
        warmup = generate(line, rest_port, WARMUP_CALLS)
        log(describe("warm-up (not counted)", warmup))
        for calls in (int(n) for n in args.levels.split(",") if n):
            level = generate(line, rest_port, calls)
            level["pass"], level["why_not"] = verdict(level)
            turns.append(level)
            log(describe("with turns", level) + ("" if level["pass"] else
                                                 f" — FAILS: {level['why_not']}"))
            if level["pass"] and not any(not t["pass"] for t in turns[:-1]):
                best = calls
        for calls in (int(n) for n in args.stream_levels.split(",") if n):
            level = generate(line, rest_port, calls, args.stream_seconds)
            streaming.append(level)
            log(describe(f"streaming alone {args.stream_seconds:g} s", level))
    result = {"lag_limit_ms": LAG_LIMIT_MS, "generator": "bench/loadgen.py, own process",
              "max_calls_passing": best, "warmup": warmup, "with_turns": turns,
              "streaming_alone": streaming}
    path = write_result("concurrency", result)
    print(f"largest level passing: {best} simultaneous calls; written to {path}")


if __name__ == "__main__":
    main()
