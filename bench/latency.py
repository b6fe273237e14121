"""Turn latency with cloud-like engines: end of the caller's speech → the reply's first audio
heard, and → the whole reply heard, for REPLY_MODE=play and REPLY_MODE=stream, with OpenAI
speech over /v1/audio/speech and over the Realtime API.

Run: `python -m bench.latency [--turns 10] [--speech realtime] [--cache cold] [--asr google]`
(or `make bench-latency`: both speech APIs, warm and cold). The line runs with the OpenAI engines
pointed at bench/latency_profile.py (ASR 350 ms; chat: first
token 450 ms, then 150 characters a second; speech: first byte 300 ms, audio at 10× real time,
14 characters a second of speech) and, for the Realtime voice, at tests/realtime_server.py with
the same speech profile (first delta 300 ms after response.create, deltas of 100 ms of μ-law
at 10× real time), through the emulator in real time. `--asr google`: the line hears the caller
live through Google's real client at bench/google_profile.py (the words so far while the caller
speaks, the final 350 ms after the audio ends), and the summary adds the provider's count of
chat requests per answered turn and of those cut off before their end (written to
bench/results/latency-google.json).
"""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
from itertools import pairwise

from ivr import audio
from ivr.sim.script import voice_ulaw

from .common import percentile, write_result
from .harness import BenchLine, log
from .latency_profile import AUDIO_SPEEDUP, FIRST_BYTE_SEC, LatencyProfile

QUESTIONS = ["מה שעות הפתיחה שלכם?", "ומה עם יום שישי?", "אפשר לקבוע תור למחר?",
             "כמה זה עולה?", "איפה אתם נמצאים?"]
VAD_RMS = 210
REPLY_PAUSE_SEC = 1.0  # the caller waits out pauses inside a reply up to this long


def voiced_frames(text: str) -> list[int]:
    """The indices of a sentence's voiced frames as the caller says it."""
    frames = audio.frames_of(voice_ulaw(text))
    return [i for i, f in enumerate(frames) if audio.rms(audio.ulaw_to_pcm16(f)) > VAD_RMS]


def voiced_seconds(text: str) -> float:
    """Call time from the start of a sentence to its last voiced frame."""
    voiced = voiced_frames(text)
    return (voiced[-1] + 1) * audio.FRAME_SEC if voiced else 0.0


def ends(heard: dict) -> float:
    return heard.get("end", heard["t"] + heard["duration"])


def turn_times(result) -> list[tuple[float, float, float, float]]:
    """(end of speech → first audio, → whole reply heard, the silence inside the reply, its
    longest gap) of each answered turn, in seconds."""
    times = []
    said = result.said
    for i, sentence in enumerate(said):
        spoke_end = sentence["t"] + voiced_seconds(sentence["text"])
        until = said[i + 1]["t"] if i + 1 < len(said) else float("inf")
        reply = [h for h in result.heard if spoke_end < h["t"] < until]
        if reply:
            span = ends(reply[-1]) - reply[0]["t"]
            silence = span - sum(h["duration"] for h in reply)
            gap = max([b["t"] - ends(a) for a, b in pairwise(reply)] + [0.0])
            times.append((reply[0]["t"] - spoke_end, ends(reply[-1]) - spoke_end, silence,
                          gap))
    return times


def audio_heard(times: list[tuple[float, ...]]) -> list[float]:
    """Seconds of reply audio heard in each turn (what was said, not when): from each turn's
    (first audio, whole reply, silence inside it, …)."""
    return [whole - first - silence for first, whole, silence, *_ in times]


def server_stages(line) -> dict[str, int]:
    """The line's own record of each turn (its `timings`): p50 ms of each stage after the end
    of the caller's speech as the line saw it."""
    with sqlite3.connect(line.db) as conn:
        rows = [json.loads(t or "{}") for (t,) in conn.execute("SELECT timings FROM turns")]
    keys = dict.fromkeys(k for row in rows for k in row)
    return {k: round(percentile([row[k] for row in rows if k in row], 50)) for k in keys}


SPEECH_MODELS = {"speech": "gpt-4o-mini-tts", "realtime": "gpt-realtime-2.1-mini"}


def realtime_server():
    """The Realtime stand-in with the profile's speech latencies."""
    from tests.realtime_server import RealtimeServer
    return RealtimeServer(speed=AUDIO_SPEEDUP, first_delta_sec=FIRST_BYTE_SEC, delta_sec=0.1)


def google_speech(profile: LatencyProfile):
    """The Google streaming stand-in with the profile's timings, hearing QUESTIONS in turn."""
    from .google_profile import GoogleSpeechProfile
    return GoogleSpeechProfile(profile, [len(voiced_frames(q)) for q in QUESTIONS], VAD_RMS)


def begun_early(line) -> dict[str, int]:
    """What began before the turn ended, by how it went: the drafts (DRAFT_REPLY, `used` or
    `dropped:<why>`) and the early transcriptions (EARLY_ASR_SEC, `asr used`/`asr dropped`)."""
    with sqlite3.connect(line.db) as conn:
        rows = conn.execute("SELECT kind, detail FROM events WHERE kind IN "
                            "('DRAFT', 'EARLY_ASR')").fetchall()
    counts: dict[str, int] = {}
    for kind, detail in rows:
        d = json.loads(detail or "{}")
        key = (f"draft {d.get('result')}" + (f":{d['why']}" if d.get("why") else "")
               if kind == "DRAFT" else f"asr {d.get('result')}")
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def read_back(line) -> int:
    """Turns whose reply says the reference number the caller was heard giving."""
    with sqlite3.connect(line.db) as conn:
        rows = conn.execute("SELECT user_text, reply_text FROM turns").fetchall()
    return sum(bool(n) and n[-1] in (reply or "") for n, reply in
               ((re.findall(r"\d+", heard or ""), reply) for heard, reply in rows))


def hearing_summary(hearing, chats: tuple[int, ...], answered: int, read: int) -> dict:
    """--asr google's additions: the stand-in's streams, and the streamed chat requests (a
    draft reply begun before the end of the turn and thrown away is one cut off before its
    end, with the characters it had streamed)."""
    requests, cut_off, chars = chats
    return {"asr_streams": hearing.streams(), "turns_reading_back_the_number": read,
            "chat_streams": {"requests": requests, "per_answered_turn":
                             round(requests / answered, 2) if answered else None,
                             "cut_off": cut_off, "cut_off_chars": chars}}


def run_mode(mode: str, turns: int, profile: LatencyProfile, speech: str, realtime,
             hearing=None) -> dict:
    """One call of `turns` questions in REPLY_MODE `mode`; `hearing`: the Google stand-in
    (google_speech) hears the caller, not the profile's transcription."""
    env = {"OPENAI_API_KEY": "sk-bench-0000000000", "OPENAI_BASE_URL": profile.url + "/v1",
           "ASR_ENGINE": "openai", "LLM_ENGINE": "openai", "TTS_ENGINE": "openai",
           "OPENAI_TTS_MODEL": SPEECH_MODELS[speech], "REPLY_MODE": mode}
    if speech == "realtime":
        env["OPENAI_WEBSOCKET_BASE_URL"] = realtime.url + "/v1"
    if hearing is not None:
        env.update(hearing.line_env())
        hearing.begin_call()
    script = {"steps": [{"say": QUESTIONS[i % len(QUESTIONS)]} for i in range(turns)],
              "end": "hangup", "reply_timeout": 30, "max_duration": 60 * turns,
              "reply_pause": REPLY_PAUSE_SEC}
    chats_before = profile.chat_counts()
    with BenchLine(**env) as line:
        result = line.carrier.place_call(script, speed=1.0)
        stages = server_stages(line)
        read = read_back(line)
        early = begun_early(line)
    chats = tuple(b - a for a, b in zip(chats_before, profile.chat_counts(), strict=True))
    times = turn_times(result)
    first, whole, silence, gaps = ([t[k] for t in times] for k in range(4))
    summary = {"turns": turns, "answered": len(times), "errors": result.error_codes,
               "first_audio_sec": {"p50": round(percentile(first, 50), 2),
                                   "p95": round(percentile(first, 95), 2)},
               "whole_reply_sec": {"p50": round(percentile(whole, 50), 2),
                                   "p95": round(percentile(whole, 95), 2)},
               "silence_inside_reply_sec": {"p50": round(percentile(silence, 50), 2),
                                            "p95": round(percentile(silence, 95), 2)},
               "reply_audio_sec": {"p50": round(percentile(audio_heard(times), 50), 2),
                                   "p95": round(percentile(audio_heard(times), 95), 2)},
               "longest_gap_inside_reply_sec": {"p50": round(percentile(gaps, 50), 2),
                                                "max": round(max(gaps, default=0.0), 2)},
               "server_stages_p50_ms": stages, "begun_early": early}
    log(f"begun before the turn ended: {early or 'nothing'}")
    if hearing is not None:
        summary.update(hearing_summary(hearing, chats, len(times), read))
        log(f"google ASR: streams {summary['asr_streams']}; streamed chat requests "
            f"{summary['chat_streams']}; {read} replies read back the caller's number")
    log(f"{speech} REPLY_MODE={mode}: {len(times)}/{turns} turns answered; first audio p50 "
        f"{summary['first_audio_sec']['p50']} s, p95 {summary['first_audio_sec']['p95']} s; "
        f"whole reply p50 {summary['whole_reply_sec']['p50']} s, silence inside it p50 "
        f"{summary['silence_inside_reply_sec']['p50']} s, its longest gap p50 "
        f"{summary['longest_gap_inside_reply_sec']['p50']} s (max "
        f"{summary['longest_gap_inside_reply_sec']['max']} s); the line's stages after the "
        f"end of speech (p50 ms): {stages}")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--cache", choices=["warm", "cold", "both"], default="both",
                        help="warm: the reply's opener is cached after the first turn; cold: "
                             "every reply opens differently (no chunk from the MP3 cache)")
    parser.add_argument("--speech", choices=["speech", "realtime", "both"], default="both",
                        help="OpenAI speech over /v1/audio/speech, the Realtime API, or both")
    parser.add_argument("--mode", choices=["play", "stream", "both"], default="both",
                        help="REPLY_MODE=play, REPLY_MODE=stream, or both")
    parser.add_argument("--asr", choices=["openai", "google"], default="openai",
                        help="openai: the profile's transcription after the utterance; google: "
                             "Google's streaming client hears the caller live (bench/"
                             "google_profile.py)")
    parser.add_argument("--interim-lag", type=float, default=None,
                        help="--asr google: seconds from a word's audio to its interim result "
                             "(default bench/google_profile.py's LAG_SEC, 0.3: not documented "
                             "by Google, an assumption)")
    args = parser.parse_args()
    if args.interim_lag is not None:
        from . import google_profile
        google_profile.LAG_SEC = args.interim_lag
    modes = ["play", "stream"] if args.mode == "both" else [args.mode]
    speeches = ["speech", "realtime"] if args.speech == "both" else [args.speech]
    caches = ["warm", "cold"] if args.cache == "both" else [args.cache]
    runs, realtime = {}, realtime_server()
    try:
        for cache in caches:
            profile = LatencyProfile(cold=cache == "cold")
            hearing = google_speech(profile) if args.asr == "google" else None
            try:
                for speech in speeches:
                    for mode in modes:
                        log(f"{cache} cache:")
                        name = f"{speech} {mode} {cache}"
                        if hearing is not None:
                            name = f"google {name}"
                        runs[name] = run_mode(mode, args.turns, profile, speech, realtime,
                                              hearing)
            finally:
                if hearing is not None:
                    hearing.stop()
                profile.stop()
    finally:
        realtime.stop()
    result = {"profile": "bench/latency_profile.py", "modes": runs}
    if args.asr == "google":
        result["asr"] = "bench/google_profile.py"
    path = write_result("latency" if args.asr == "openai" else "latency-google", result)
    print("first audio p50 / p95, longest gap inside a reply (max): " + "; ".join(
        f"{name} {run['first_audio_sec']['p50']} / {run['first_audio_sec']['p95']} s, "
        f"{run['longest_gap_inside_reply_sec']['max']} s" for name, run in runs.items())
        + f"; written to {path}")


if __name__ == "__main__":
    main()
