"""Turn latency with cloud-like engines: end of the caller's speech → the reply's first audio
heard, and → the whole reply heard, for REPLY_MODE=play and REPLY_MODE=stream.

Run: `python -m bench.latency [--turns 10]` (or `make bench-latency`). The line runs with the
OpenAI engines pointed at bench/latency_profile.py (ASR 350 ms; chat: first token 450 ms, then
150 characters a second; speech: first byte 300 ms, audio at 10× real time, 14 characters a
second of speech), through the emulator in real time.
"""

from __future__ import annotations

import argparse
import json
import sqlite3

from ivr import audio
from ivr.sim.script import voice_ulaw

from .common import percentile, write_result
from .harness import BenchLine, log
from .latency_profile import LatencyProfile

QUESTIONS = ["מה שעות הפתיחה שלכם?", "ומה עם יום שישי?", "אפשר לקבוע תור למחר?",
             "כמה זה עולה?", "איפה אתם נמצאים?"]
VAD_RMS = 210
REPLY_PAUSE_SEC = 1.0  # the caller waits out pauses inside a reply up to this long


def voiced_seconds(text: str) -> float:
    """Call time from the start of a sentence to its last voiced frame."""
    frames = audio.frames_of(voice_ulaw(text))
    voiced = [i for i, f in enumerate(frames) if audio.rms(audio.ulaw_to_pcm16(f)) > VAD_RMS]
    return (voiced[-1] + 1) * audio.FRAME_SEC if voiced else 0.0


def ends(heard: dict) -> float:
    return heard.get("end", heard["t"] + heard["duration"])


def turn_times(result) -> list[tuple[float, float, float]]:
    """(end of speech → first audio, → whole reply heard, the silence inside the reply) of each
    answered turn, in seconds."""
    times = []
    said = result.said
    for i, sentence in enumerate(said):
        spoke_end = sentence["t"] + voiced_seconds(sentence["text"])
        until = said[i + 1]["t"] if i + 1 < len(said) else float("inf")
        reply = [h for h in result.heard if spoke_end < h["t"] < until]
        if reply:
            span = ends(reply[-1]) - reply[0]["t"]
            silence = span - sum(h["duration"] for h in reply)
            times.append((reply[0]["t"] - spoke_end, ends(reply[-1]) - spoke_end, silence))
    return times


def server_stages(line) -> dict[str, int]:
    """The line's own record of each turn (its `timings`): p50 ms of each stage after the end
    of the caller's speech as the line saw it."""
    with sqlite3.connect(line.db) as conn:
        rows = [json.loads(t or "{}") for (t,) in conn.execute("SELECT timings FROM turns")]
    keys = dict.fromkeys(k for row in rows for k in row)
    return {k: round(percentile([row[k] for row in rows if k in row], 50)) for k in keys}


def run_mode(mode: str, turns: int, profile: LatencyProfile) -> dict:
    env = {"OPENAI_API_KEY": "sk-bench-0000000000", "OPENAI_BASE_URL": profile.url + "/v1",
           "ASR_ENGINE": "openai", "LLM_ENGINE": "openai", "TTS_ENGINE": "openai",
           "REPLY_MODE": mode}
    script = {"steps": [{"say": QUESTIONS[i % len(QUESTIONS)]} for i in range(turns)],
              "end": "hangup", "reply_timeout": 30, "max_duration": 60 * turns,
              "reply_pause": REPLY_PAUSE_SEC}
    with BenchLine(**env) as line:
        result = line.carrier.place_call(script, speed=1.0)
        stages = server_stages(line)
    times = turn_times(result)
    first, whole, silence = ([t[k] for t in times] for k in range(3))
    summary = {"turns": turns, "answered": len(times), "errors": result.error_codes,
               "first_audio_sec": {"p50": round(percentile(first, 50), 2),
                                   "p95": round(percentile(first, 95), 2)},
               "whole_reply_sec": {"p50": round(percentile(whole, 50), 2),
                                   "p95": round(percentile(whole, 95), 2)},
               "silence_inside_reply_sec": {"p50": round(percentile(silence, 50), 2),
                                            "p95": round(percentile(silence, 95), 2)},
               "server_stages_p50_ms": stages}
    log(f"REPLY_MODE={mode}: {len(times)}/{turns} turns answered; first audio p50 "
        f"{summary['first_audio_sec']['p50']} s, p95 {summary['first_audio_sec']['p95']} s; "
        f"whole reply p50 {summary['whole_reply_sec']['p50']} s, silence inside it p50 "
        f"{summary['silence_inside_reply_sec']['p50']} s; the line's stages after the "
        f"end of speech (p50 ms): {stages}")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--cold", action="store_true",
                        help="every reply opens differently: no chunk comes from the MP3 cache")
    args = parser.parse_args()
    profile = LatencyProfile(cold=args.cold)
    try:
        modes = {mode: run_mode(mode, args.turns, profile) for mode in ("play", "stream")}
    finally:
        profile.stop()
    path = write_result("latency-cold" if args.cold else "latency",
                        {"profile": "bench/latency_profile.py", "cold": args.cold,
                         "modes": modes})
    print(f"first audio p50: play {modes['play']['first_audio_sec']['p50']} s, stream "
          f"{modes['stream']['first_audio_sec']['p50']} s; written to {path}")


if __name__ == "__main__":
    main()
