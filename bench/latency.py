"""Turn latency with cloud-like engines: end of the caller's speech → the reply's first audio
heard, and → the whole reply heard, for REPLY_MODE=play and REPLY_MODE=stream.

Run: `python -m bench.latency [--turns 10]` (or `make bench-latency`). The line runs with the
OpenAI engines pointed at bench/latency_profile.py (ASR 350 ms; chat: first token 450 ms, then
150 characters a second; speech: first byte 300 ms, audio at 10× real time, 14 characters a
second of speech), through the emulator in real time.
"""

from __future__ import annotations

import argparse

from ivr import audio
from ivr.sim.script import voice_ulaw

from .common import percentile, write_result
from .harness import BenchLine, log
from .latency_profile import LatencyProfile

QUESTIONS = ["מה שעות הפתיחה שלכם?", "ומה עם יום שישי?", "אפשר לקבוע תור למחר?",
             "כמה זה עולה?", "איפה אתם נמצאים?"]
VAD_RMS = 210


def voiced_seconds(text: str) -> float:
    """Call time from the start of a sentence to its last voiced frame."""
    frames = audio.frames_of(voice_ulaw(text))
    voiced = [i for i, f in enumerate(frames) if audio.rms(audio.ulaw_to_pcm16(f)) > VAD_RMS]
    return (voiced[-1] + 1) * audio.FRAME_SEC if voiced else 0.0


def turn_times(result) -> list[tuple[float, float]]:
    """(end of speech → first audio, → whole reply heard) of each answered turn, in seconds."""
    times = []
    said = result.said
    for i, sentence in enumerate(said):
        spoke_end = sentence["t"] + voiced_seconds(sentence["text"])
        until = said[i + 1]["t"] if i + 1 < len(said) else float("inf")
        reply = [h for h in result.heard if spoke_end < h["t"] < until]
        if reply:
            last = reply[-1]
            times.append((reply[0]["t"] - spoke_end, last["t"] + last["duration"] - spoke_end))
    return times


def run_mode(mode: str, turns: int, profile: LatencyProfile) -> dict:
    env = {"OPENAI_API_KEY": "sk-bench-0000000000", "OPENAI_BASE_URL": profile.url + "/v1",
           "ASR_ENGINE": "openai", "LLM_ENGINE": "openai", "TTS_ENGINE": "openai",
           "REPLY_MODE": mode}
    script = {"steps": [{"say": QUESTIONS[i % len(QUESTIONS)]} for i in range(turns)],
              "end": "hangup", "reply_timeout": 30, "max_duration": 60 * turns}
    with BenchLine(**env) as line:
        result = line.carrier.place_call(script, speed=1.0)
    times = turn_times(result)
    first, whole = [t[0] for t in times], [t[1] for t in times]
    summary = {"turns": turns, "answered": len(times), "errors": result.error_codes,
               "first_audio_sec": {"p50": round(percentile(first, 50), 2),
                                   "p95": round(percentile(first, 95), 2)},
               "whole_reply_sec": {"p50": round(percentile(whole, 50), 2),
                                   "p95": round(percentile(whole, 95), 2)}}
    log(f"REPLY_MODE={mode}: {len(times)}/{turns} turns answered; first audio p50 "
        f"{summary['first_audio_sec']['p50']} s, p95 {summary['first_audio_sec']['p95']} s; "
        f"whole reply p50 {summary['whole_reply_sec']['p50']} s")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=10)
    args = parser.parse_args()
    profile = LatencyProfile()
    try:
        modes = {mode: run_mode(mode, args.turns, profile) for mode in ("play", "stream")}
    finally:
        profile.stop()
    path = write_result("latency", {"profile": "bench/latency_profile.py", "modes": modes})
    print(f"first audio p50: play {modes['play']['first_audio_sec']['p50']} s, stream "
          f"{modes['stream']['first_audio_sec']['p50']} s; written to {path}")


if __name__ == "__main__":
    main()
