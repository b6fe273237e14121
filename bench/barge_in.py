"""Barge-in: how soon after the caller starts talking over a reply the line sends `clear`.

Run: `python -m bench.barge_in` (or `make bench-barge`). Real time (speed 1), 10 calls,
REPLY_MODE=stream, no human pause before a reply. The latency is measured from the frame at
which the line's endpointing takes the caller's voice for a barge-in (past BACKCHANNEL_SEC of
it: the frame found by feeding the sentence to a `TurnDetector` with the line's settings) to
the `clear` reaching the carrier; the decision itself (from the first voiced frame) is
`make bench-backchannel`'s figure.
"""

from __future__ import annotations

from ivr import audio
from ivr.config import Settings
from ivr.media.endpointing import BargeIn, TurnDetector, TurnParams
from ivr.sim.script import voice_ulaw

from .common import percentile, write_result
from .harness import BenchLine, log

CALLS = 10
SENTENCE = "רגע, בעצם רציתי לשאול על מחירים"
SCRIPT = {"steps": [{"say": "שלום, מה שעות הפתיחה שלכם?"}, {"barge_in": SENTENCE, "after": 0.3}],
          "end": "hangup"}


def decided_at(text: str) -> int:
    """The frame of the caller's `text` at which the line takes it for a barge-in."""
    detector = TurnDetector(TurnParams.from_settings(Settings()))
    detector.bot_speaking()
    for index, frame in enumerate(audio.frames_of(voice_ulaw(text))):
        pcm = audio.ulaw_to_pcm16(frame)
        if any(isinstance(e, BargeIn) for e in detector.feed(pcm, audio.rms(pcm))):
            return index
    raise ValueError(f"{text!r} is no barge-in")


def main() -> None:
    latencies = []
    decided = decided_at(SENTENCE)
    with BenchLine(REPLY_MODE="stream", RESP_MIN_DELAY_MS="0", RESP_MAX_DELAY_MS="0") as line:
        for n in range(CALLS):
            result = line.carrier.place_call(SCRIPT, speed=1.0)
            stream = result.streams[0]
            assert stream["clears"] == 1, result.timeline_text()
            decided_time = result.said[1]["t"] + (decided + 1) * audio.FRAME_SEC
            latencies.append((stream["clears_at"][0] - decided_time) * 1000)
            log(f"call {n + 1}: {latencies[-1]:.1f} ms")
    result = {"calls": CALLS, "decided_at_frame": decided, "clear_after_decision_ms": {
        "p50": round(percentile(latencies, 50), 1), "p95": round(percentile(latencies, 95), 1),
        "max": round(max(latencies), 1)}}
    path = write_result("barge_in", result)
    figures = result["clear_after_decision_ms"]
    print(f"barge-in decided → clear: p50 {figures['p50']} ms, p95 {figures['p95']} ms; "
          f"written to {path}")


if __name__ == "__main__":
    main()
