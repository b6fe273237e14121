"""Barge-in: how soon after the caller starts talking over a reply the line sends `clear`.

Run: `python -m bench.barge_in` (or `make bench-barge`). Real time (speed 1), 10 calls,
REPLY_MODE=stream, no human pause before a reply. The latency is measured from the caller's
third voiced frame (BARGE_IN_VOICE_FRAMES) to the `clear` reaching the carrier.
"""

from __future__ import annotations

from ivr import audio
from ivr.sim.script import first_barge_frame

from .common import percentile, write_result
from .harness import BenchLine, log

CALLS = 10
SENTENCE = "רגע, בעצם רציתי לשאול על מחירים"
SCRIPT = {"steps": [{"say": "שלום, מה שעות הפתיחה שלכם?"}, {"barge_in": SENTENCE, "after": 0.3}],
          "end": "hangup"}


def main() -> None:
    latencies = []
    voiced = first_barge_frame(SENTENCE)
    with BenchLine(REPLY_MODE="stream", RESP_MIN_DELAY_MS="0", RESP_MAX_DELAY_MS="0") as line:
        for n in range(CALLS):
            result = line.carrier.place_call(SCRIPT, speed=1.0)
            stream = result.streams[0]
            assert stream["clears"] == 1, result.timeline_text()
            third_voiced_at = result.said[1]["t"] + (voiced + 1) * audio.FRAME_SEC
            latencies.append((stream["clears_at"][0] - third_voiced_at) * 1000)
            log(f"call {n + 1}: {latencies[-1]:.1f} ms")
    result = {"calls": CALLS, "clear_after_third_voiced_frame_ms": {
        "p50": round(percentile(latencies, 50), 1), "p95": round(percentile(latencies, 95), 1),
        "max": round(max(latencies), 1)}}
    path = write_result("barge_in", result)
    figures = result["clear_after_third_voiced_frame_ms"]
    print(f"barge-in → clear: p50 {figures['p50']} ms, p95 {figures['p95']} ms; "
          f"written to {path}")


if __name__ == "__main__":
    main()
