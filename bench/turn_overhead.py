"""Turn overhead with instant fake engines: end of the caller's speech → the REST update.

Run: `python -m bench.turn_overhead` (or `make bench-overhead`). Real time, 5 calls × 3 turns.
Reports the whole gap as the caller lives it (it includes the end-of-utterance silence the
line must wait for, MIN_UTT_SEC) and the server's own share (utterance found → update sent).
"""

from __future__ import annotations

from ivr import audio
from ivr.sim.script import voice_ulaw

from .common import percentile, write_result
from .harness import BenchLine, log

CALLS = 5


def last_voiced_sec(text: str, vad_rms: int = 210) -> float:
    """When the caller's last voiced frame ends, from the start of the sentence's audio."""
    frames = audio.frames_of(voice_ulaw(text))
    voiced = [i for i, f in enumerate(frames) if audio.rms(audio.ulaw_to_pcm16(f)) > vad_rms]
    return (voiced[-1] + 1) * audio.FRAME_SEC


def stats(values: list[float]) -> dict:
    return {"p50_ms": round(percentile(values, 50), 1), "p95_ms": round(percentile(values, 95), 1),
            "n": len(values)}


def main() -> None:
    caller_gap, server_gap = [], []
    with BenchLine() as line:
        for n in range(CALLS):
            result = line.carrier.place_call("three_turns", speed=1.0)
            updates = [r["t"] for r in result.requests if r["direction"] == "in"]
            for said in result.said:
                end = said["t"] + last_voiced_sec(said["text"])
                after = [t for t in updates if t > end]
                if after:
                    caller_gap.append((after[0] - end) * 1000)
            log(f"call {n + 1}: {len(result.heard)} replies heard")
        found = {}
        for sid, ts, _ in line.events("UTTERANCE"):
            found.setdefault(sid, []).append(ts)
        for sid, ts, _ in line.events("PING_PONG_TX"):
            earlier = [t for t in found.get(sid, []) if t <= ts]
            if earlier:
                server_gap.append((ts - max(earlier)) * 1000)
    result = {"engines": "fake (instant)", "end_of_speech_to_update": stats(caller_gap),
              "utterance_to_update_server": stats(server_gap)}
    path = write_result("turn_overhead", result)
    print(f"end of speech → update: p50 {result['end_of_speech_to_update']['p50_ms']} ms, "
          f"p95 {result['end_of_speech_to_update']['p95_ms']} ms (includes the end-of-utterance "
          f"silence)\nserver share (utterance → update sent): p50 "
          f"{result['utterance_to_update_server']['p50_ms']} ms, p95 "
          f"{result['utterance_to_update_server']['p95_ms']} ms; written to {path}")


if __name__ == "__main__":
    main()
