"""Per-frame cost of the media hot path: JSON + base64 + μ-law decode + RMS + endpointing.

Run: `python -m bench.frame_cost` (or `make bench-frame`). Real speech (espeak-ng) and silence.
"""

from __future__ import annotations

import base64
import json
import time

from ivr import audio
from ivr.config import Settings
from ivr.media.endpointing import TurnDetector, TurnParams
from ivr.sim.script import voice_ulaw

from .common import write_result

SENTENCE = "שלום, מה שעות הפתיחה שלכם? אני רוצה לקבוע תור למחר בבוקר"
ROUNDS = 20


def frames() -> list[bytes]:
    speech = audio.frames_of(voice_ulaw(SENTENCE))
    return (audio.frames_of(audio.silence_ulaw(50)) + speech) * 10


def messages(frame_list: list[bytes]) -> list[str]:
    return [json.dumps({"event": "media", "streamSid": "MZ" + "0" * 32, "media": {
        "track": "inbound", "chunk": str(i), "timestamp": str(i * 20),
        "payload": base64.b64encode(f).decode()}}) for i, f in enumerate(frame_list)]


def time_per_frame(fn, items) -> float:
    """Best of ROUNDS runs, in µs per item."""
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.perf_counter()
        fn(items)
        best = min(best, time.perf_counter() - started)
    return best / len(items) * 1e6


def decode_only(items):
    for frame in items:
        audio.ulaw_to_pcm16(frame)


def decode_and_rms(items):
    for frame in items:
        audio.rms(audio.ulaw_to_pcm16(frame))


def whole_path(items):
    detector = TurnDetector(TurnParams.from_settings(Settings()))
    for raw in items:
        message = json.loads(raw)
        pcm = audio.ulaw_to_pcm16(base64.b64decode(message["media"]["payload"], validate=True))
        for event in detector.feed(pcm, audio.rms(pcm)):
            if event.__class__.__name__ == "Utterance":
                detector.listen()


def main() -> None:
    frame_list = frames()
    raw = messages(frame_list)
    result = {
        "frames": len(frame_list),
        "us_per_frame": {
            "ulaw_decode": round(time_per_frame(decode_only, frame_list), 3),
            "ulaw_decode_rms": round(time_per_frame(decode_and_rms, frame_list), 3),
            "json_b64_decode_rms_vad": round(time_per_frame(whole_path, raw), 3),
        },
        "frame_budget_us": 20000,
    }
    whole = result["us_per_frame"]["json_b64_decode_rms_vad"]
    result["share_of_one_core_per_call_pct"] = round(whole / 20000 * 100, 4)
    path = write_result("frame_cost", result)
    for name, value in result["us_per_frame"].items():
        print(f"{name:28s} {value:8.2f} µs/frame")
    print(f"one call's frames use {result['share_of_one_core_per_call_pct']} % of a core "
          f"(50 frames/s); written to {path}")


if __name__ == "__main__":
    main()
