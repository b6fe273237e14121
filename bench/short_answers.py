"""Short answers: how many 0.4–0.8 s answers the line's endpointing misses, by level and place.

Run: `python -m bench.short_answers` (or `make bench-short`). Real Hebrew speech (espeak-ng, as
the emulator's callers speak: short answers and names at three speaking rates, those whose
speech lasts 0.4–0.8 s) at full level, −10 dB and −20 dB, over line noise (Gaussian, −65 dBFS,
with a click every 1.7 s on average), through μ-law as Twilio carries it. Each answer is fed,
frame by frame, to the endpointing exactly as a stream's turns feed it:

- **fresh stream** (`REPLY_MODE=play`: a new stream after each `<Play>`): the answer starts
  0–1.5 s after the stream's first frame;
- **after a mark** (`REPLY_MODE=stream`): the caller asks a question (the line stops listening
  while it thinks), the reply goes out (`bot_speaking`) and plays for 0.5, 1.5 or 3 s until
  Twilio's mark (`bot_done`), then the answer starts 0–1.5 s later.

An answer is *missed* when no utterance overlaps it, *clipped* when its utterance starts more
than 0.1 s after the answer's speech does. Line noise alone (a minute of it, fresh and after a
mark: steady at −65 and −50 dBFS, and at −55 dBFS swelling ±3 dB and ±6 dB once every 2 s)
must give no utterance at all.
"""

from __future__ import annotations

import argparse
import functools
import math
import random
import struct
import warnings

from ivr import audio
from ivr.config import Settings
from ivr.media.endpointing import TurnDetector, TurnParams, Utterance

from .common import write_result

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # the audioop-lts package provides it on Python >= 3.13

ANSWERS = ("כן", "לא", "דני", "רונית", "בסדר", "אולי", "נכון", "מחר", "תודה", "שלום", "יוסי",
           "עכשיו", "אבי לוי")
RATES_WPM = (130, 160, 190)
SHORT_SEC = (0.4, 0.8)  # the answers kept: speech this long at full level
LEVELS_DB = (0, -10, -20)
GAPS_SEC = tuple(i / 10 for i in range(16))  # 0–1.5 s after the stream's start or the mark
REPLY_SEC = (0.5, 1.5, 3.0)  # the reply's playback: its first frame sent → Twilio's mark
QUESTION = "שלום, מה שעות הפתיחה שלכם?"
NOISE_DBFS = -65.0
NOISE_CASES = ((NOISE_DBFS, 0.0), (-50.0, 0.0), (-55.0, 3.0), (-55.0, 6.0))  # dBFS, swing dB
SWING_HZ = 0.5  # a swelling noise rises and falls once in 2 s
CLICK_EVERY_SEC = 1.7
SPEECH_RMS = 100  # a frame of the clean answer louder than this is its speech
CLIPPED_SEC = 0.1
TAIL_SEC = 2.0
FULL_SCALE = 32767


def frames_count(seconds: float) -> int:
    return round(seconds / audio.FRAME_SEC)


@functools.cache
def clean_answer(text: str, wpm: int) -> bytes:
    """The answer spoken by espeak-ng's Hebrew voice, 8 kHz PCM16, trimmed to whole frames."""
    pcm = audio.espeak_pcm16(text, speed=wpm)
    return pcm[:len(pcm) // 320 * 320]


def speech_span(pcm: bytes) -> tuple[int, int]:
    """First and last frame of the clean answer's speech."""
    loud = [i for i in range(len(pcm) // 320) if audio.rms(pcm[i * 320:(i + 1) * 320]) > SPEECH_RMS]
    return loud[0], loud[-1]


def answers() -> list[tuple[str, int]]:
    """(text, rate) of every answer whose speech lasts 0.4–0.8 s."""
    kept = []
    for text in ANSWERS:
        for wpm in RATES_WPM:
            first, last = speech_span(clean_answer(text, wpm))
            if SHORT_SEC[0] <= (last - first + 1) * audio.FRAME_SEC <= SHORT_SEC[1]:
                kept.append((text, wpm))
    return kept


def noise_bed(seconds: float, dbfs: float, seed: int, swing_db: float = 0.0) -> bytes:
    """Line noise: Gaussian at `dbfs` (swelling ±`swing_db` at SWING_HZ), with 2 ms clicks
    (±3000) at random."""
    rnd = random.Random(seed)
    count = int(seconds * audio.RATE)
    sigmas = (FULL_SCALE * 10 ** ((dbfs + swing_db * math.sin(2 * math.pi * SWING_HZ * i
                                                              / audio.RATE)) / 20)
              for i in range(count))
    samples = [max(-FULL_SCALE, min(FULL_SCALE, round(rnd.gauss(0, sigma))))
               for sigma in sigmas]
    at = 0
    while True:
        at += int(rnd.expovariate(1 / CLICK_EVERY_SEC) * audio.RATE)
        if at + 16 >= count:
            break
        sign = rnd.choice((-1, 1))
        for i in range(16):
            samples[at + i] = sign * 3000 * (1 if i < 8 else -1)
    return struct.pack(f"<{count}h", *samples)


class Line:
    """A noise bed read from a moving offset, and the frames of a trial as the line gets them."""

    def __init__(self, dbfs: float, seed: int = 21, swing_db: float = 0.0):
        self.bed = noise_bed(60.0, dbfs, seed, swing_db)
        self.offset = 0

    def noise(self, frames: int) -> bytes:
        size = frames * 320
        if self.offset + size > len(self.bed):
            self.offset = 0
        piece = self.bed[self.offset:self.offset + size]
        self.offset += size + 320 * 7  # the next trial hears other noise
        return piece

    def with_noise(self, pcm: bytes, gain: float) -> bytes:
        return audioop.add(audioop.mul(pcm, 2, gain), self.noise(len(pcm) // 320), 2)


def as_received(pcm: bytes) -> list[bytes]:
    """PCM16 through μ-law (Twilio's format) and back, cut in 20 ms frames."""
    ulaw = audio.pcm16_to_ulaw(pcm)
    return [audio.ulaw_to_pcm16(f) for f in audio.frames_of(ulaw)]


def feed(detector: TurnDetector, frames: list[bytes], start: int = 0) -> list[tuple[int, object]]:
    """Frames into the detector as StreamTurns.feed does; (index, event) of what came out."""
    out = []
    for index, pcm in enumerate(frames, start):
        out.extend((index, event) for event in detector.feed(pcm, audio.rms(pcm)))
    return out


def new_detector() -> TurnDetector:
    return TurnDetector(TurnParams.from_settings(Settings()))


def question_asked(detector: TurnDetector, line: Line) -> None:
    """The caller's question ends in an utterance: the line thinks (stops listening)."""
    pcm = line.noise(frames_count(1.0)) + line.with_noise(clean_answer(QUESTION, 160), 1.0)
    events = feed(detector, as_received(pcm))
    for _ in range(10):  # a click in the silence after it makes it end later
        if any(isinstance(e, Utterance) for _, e in events):
            return
        events = feed(detector, as_received(line.noise(frames_count(0.5))))
    raise AssertionError("the question itself was not heard")


def trial(line: Line, text: str, wpm: int, gain: float, gap: float,
          reply: float | None) -> str:
    """'heard', 'clipped' or 'missed': one answer `gap` s after the stream's start (reply None)
    or after the mark of a reply that played `reply` s."""
    detector = new_detector()
    frames: list[bytes] = []
    if reply is not None:
        question_asked(detector, line)
        feed(detector, as_received(line.noise(frames_count(0.4))))  # the line thinks
        detector.bot_speaking()
        feed(detector, as_received(line.noise(frames_count(reply))))
        detector.bot_done()  # Twilio's mark: the reply has played
    clean = clean_answer(text, wpm)
    first, last = speech_span(clean)
    lead = frames_count(gap)
    pcm = line.noise(lead) + line.with_noise(clean, gain) + line.noise(frames_count(TAIL_SEC))
    frames = as_received(pcm)
    begins, ends = lead + first, lead + last
    for _, event in feed(detector, frames):
        if not isinstance(event, Utterance):
            continue
        start = start_of(event, frames)
        if start <= ends and start + event.frames > begins:
            return "clipped" if start - begins > frames_count(CLIPPED_SEC) else "heard"
    return "missed"


def start_of(utterance: Utterance, frames: list[bytes]) -> int:
    """The index of the utterance's first frame among the frames fed."""
    head = utterance.pcm[:320 * 3]
    for index in range(len(frames)):
        if b"".join(frames[index:index + 3])[:len(head)] == head:
            return index
    raise AssertionError("an utterance of frames never fed")


def noise_only(dbfs: float, swing_db: float, after_mark: bool) -> int:
    """Utterances found in a minute of line noise alone (fresh, or after a reply's mark)."""
    line = Line(dbfs, seed=7, swing_db=swing_db)
    detector = new_detector()
    if after_mark:
        question_asked(detector, line)
        detector.bot_speaking()
        feed(detector, as_received(line.noise(frames_count(1.5))))
        detector.bot_done()
    found = 0
    for _ in range(6):
        for _, event in feed(detector, as_received(line.noise(frames_count(10.0)))):
            if isinstance(event, Utterance):
                found += 1
                detector.listen()
    return found


def cells(kept: list[tuple[str, int]], gaps: tuple[float, ...]) -> dict:
    line = Line(NOISE_DBFS)
    table = {}
    for place, replies in (("fresh stream", (None,)), ("after a mark", REPLY_SEC)):
        for level in LEVELS_DB:
            gain = 10 ** (level / 20)
            by_gap = {gap: [trial(line, text, wpm, gain, gap, reply) for text, wpm in kept
                            for reply in replies] for gap in gaps}
            outcomes = [outcome for row in by_gap.values() for outcome in row]
            total = len(outcomes)
            table[f"{place}, {level:+d} dB" if level else f"{place}, full"] = {
                "answers": total,
                "missed_pct": round(100 * outcomes.count("missed") / total, 1),
                "clipped_pct": round(100 * outcomes.count("clipped") / total, 1),
                "missed_pct_by_gap_sec": {f"{gap:.1f}": round(100 * row.count("missed")
                                                              / len(row), 1)
                                          for gap, row in by_gap.items()}}
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="short_answers", help="name of the results file")
    parser.add_argument("--quick", action="store_true", help="every third gap only")
    args = parser.parse_args()
    kept = answers()
    gaps = GAPS_SEC[::3] if args.quick else GAPS_SEC
    table = cells(kept, gaps)
    false_utterances = {
        f"{dbfs:g} dBFS{f' ±{swing:g} dB' if swing else ''}, "
        f"{'after a mark' if mark else 'fresh'}": noise_only(dbfs, swing, mark)
        for dbfs, swing in NOISE_CASES for mark in (False, True)}
    result = {"answers": [f"{text} @{wpm}" for text, wpm in kept], "gaps_sec": list(gaps),
              "reply_sec": list(REPLY_SEC), "noise_dbfs": NOISE_DBFS, "cells": table,
              "utterances_in_a_minute_of_noise": false_utterances}
    path = write_result(args.label, result)
    print(f"{len(kept)} answers × {len(gaps)} gaps (× {len(REPLY_SEC)} reply lengths after a "
          f"mark), noise {NOISE_DBFS:g} dBFS with clicks")
    print(f"{'cell':28s} {'answers':>8s} {'missed':>8s} {'clipped':>8s}")
    for name, cell in table.items():
        print(f"{name:28s} {cell['answers']:8d} {cell['missed_pct']:7.1f}% "
              f"{cell['clipped_pct']:7.1f}%")
    for name, count in false_utterances.items():
        print(f"utterances in a minute of noise, {name}: {count}")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
