"""Backchannels over a reply: how often "כן", "אהה"… stop it, how often real interruptions do not.

Run: `python -m bench.backchannel` (or `make bench-backchannel`; `--quick`: one clip in three).
A recorded set of real Hebrew speech (espeak-ng, the emulator callers' voice), through μ-law as
Twilio carries it, said 1 s into a reply the line is speaking:

- **backchannels** ("כן", "אהה", "אוקיי", "רגע", "נכון", "מממ", "בסדר", "טוב", "יופי") alone,
  at three speaking rates, at full level and −10 dB: the reply must go on;
- **interruptions** ("רגע, אני רוצה לשאול משהו אחר", "לא לא, התכוונתי למחר", names…) the same
  way: the reply must stop;
- **line noise bursts** (crackles of clicks, a knock, a rub of the handset, 0.1–0.3 s): the reply
  must go on.

Under every clip: the line's noise (−65 dBFS with clicks, as `make bench-short`) and the echo of
the line's own reply 35 dB down. Each clip's frames go through the line's own code for a reply
being spoken: in stream mode a `StreamTurns` whose reply is going out on its socket (a barge-in
is its `clear`), in play mode a fork over the Plays (a barge-in is its `BARGE_IN over=play`).
No live recognition here (the decision is on voiced duration alone, as with every ASR but
Google's streaming). Reported: false barge-ins (a backchannel or a noise burst stopped the
reply) and missed barge-ins (an interruption did not), in %, and the decision delay: from the
interruption's first voiced frame to the barge-in, in frames of audio (counts, not wall-clock).
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import random
import struct
import tempfile
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

from ivr import audio
from ivr.app import create_app
from ivr.config import Settings
from ivr.media.turns import StreamTurns

from .common import percentile, write_result
from .short_answers import Line, as_received, clean_answer, frames_count

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # the audioop-lts package provides it on Python >= 3.13

# what the caller says → how espeak-ng is written to say it (niqqud where the bare word is mute)
BACKCHANNELS = {"כן": "כן", "אהה": "אָהָה", "אוקיי": "אוקיי", "רגע": "רגע", "נכון": "נכון",
                "מממ": "הְמְמְ", "בסדר": "בסדר", "טוב": "טוב", "יופי": "יופי"}
INTERRUPTIONS = ("רגע, אני רוצה לשאול משהו אחר", "לא לא, התכוונתי למחר", "שמי דנה כהן",
                 "יוסי לוי", "אפשר לדבר עם מישהו?", "כמה עולה תספורת?",
                 "רגע רגע, זה לא מה ששאלתי", "אני צריך תור למחר בבוקר")
NOISES = ("crackle 0.1", "crackle 0.3", "knock", "rub 0.15", "rub 0.3")
RATES_WPM = (150, 190, 230)
LEVELS_DB = (0, -10)
NOISE_LEVELS_DB = (0, -6)  # a burst's level: as made, and 6 dB down
NOISE_SEEDS = (1, 2)
REPLY = ("אנחנו פתוחים בימים ראשון עד חמישי משמונה בבוקר עד שש בערב, ובימי שישי עד אחת "
         "בצהריים. אפשר לקבוע תור בטלפון או באתר")
ECHO_DB = -35.0  # the line's own reply, heard back down the line
LEAD_SEC, TAIL_SEC = 1.0, 1.5  # the reply before the clip, and after it
VOICED_RMS = 210  # a clip's first voiced frame: the first louder than VAD_RMS's default
NOISE_STRIDE = 320 * 37  # each clip hears its own noise
SID_PREFIX = "CA" + "b" * 24


@dataclass(frozen=True)
class Clip:
    """One sound said over the reply: what it is, its words (or noise's name), rate, level."""

    kind: str  # backchannel, interruption, noise
    text: str
    wpm: int = 0
    level_db: int = 0
    seed: int = 0

    @property
    def interrupts(self) -> bool:
        return self.kind == "interruption"

    def __str__(self) -> str:
        if self.kind == "noise":
            return f"noise {self.text} {self.level_db:+d} dB #{self.seed}"
        return f"{self.text} @{self.wpm} {self.level_db:+d} dB"


def recorded_set(quick: bool = False) -> list[Clip]:
    """Every clip of the set (`quick`: one in three of each kind, every rate and level kept)."""
    kinds = [[Clip("backchannel", text, wpm, level) for text in BACKCHANNELS
              for wpm in RATES_WPM for level in LEVELS_DB],
             [Clip("interruption", text, wpm, level) for text in INTERRUPTIONS
              for wpm in RATES_WPM for level in LEVELS_DB],
             [Clip("noise", name, 0, level, seed) for name in NOISES
              for level in NOISE_LEVELS_DB for seed in NOISE_SEEDS]]
    return [clip for clips in kinds for clip in (clips[::3] if quick else clips)]


def noise_burst(name: str, seed: int) -> bytes:
    """A burst of line noise, PCM16 8 kHz: a crackle (sharp clicks, every 10–40 ms, for the
    seconds named), a knock (a 60 ms decaying thud), a rub (loud rough noise for the seconds
    named, rising and falling)."""
    rnd = random.Random(f"{name}/{seed}")
    kind, _, arg = name.partition(" ")
    count = int((float(arg) if arg else 0.06) * audio.RATE)
    samples = [0] * count
    if kind == "crackle":
        at = 0
        while at < count - 24:
            sign = rnd.choice((-1, 1))
            for i in range(24):
                samples[at + i] = round(sign * 6000 * (0.8 ** i) * rnd.uniform(0.6, 1.0))
            at += rnd.randint(80, 320)
    elif kind == "knock":
        for i in range(count):
            samples[i] = round(9000 * (0.995 ** i) * rnd.uniform(-1, 1))
    else:  # rub
        for i in range(count):
            swell = 4 * i * (count - i) / count ** 2
            samples[i] = round(2500 * swell * rnd.gauss(0, 1))
    return struct.pack(f"<{count}h", *(max(-32767, min(32767, s)) for s in samples))


def clip_pcm(clip: Clip) -> bytes:
    """The clip's sound at its level, PCM16 8 kHz in whole frames."""
    if clip.kind == "noise":
        pcm = noise_burst(clip.text, clip.seed)
    else:
        pcm = clean_answer(BACKCHANNELS.get(clip.text, clip.text), clip.wpm)
    pcm = audioop.mul(pcm, 2, 10 ** (clip.level_db / 20))
    return pcm + b"\x00" * (-len(pcm) % 320)


@functools.cache
def reply_echo() -> bytes:
    """The line's reply as it comes back down the line, ECHO_DB down."""
    return audioop.mul(clean_answer(REPLY, 170), 2, 10 ** (ECHO_DB / 20))


def over_a_reply(clip: Clip, line: Line, number: int) -> tuple[list[bytes], int]:
    """The frames the line hears while it speaks: its echo and noise (clip `number`'s own
    stretch of the noise bed, whatever the mode), the clip LEAD_SEC in; and the index of the
    clip's first voiced frame (-1: none, a burst too soft to count)."""
    line.offset = number * NOISE_STRIDE % (len(line.bed) // 2)
    sound = clip_pcm(clip)
    lead, tail = frames_count(LEAD_SEC), frames_count(TAIL_SEC)
    total = lead + len(sound) // 320 + tail
    echo = reply_echo()[:total * 320].ljust(total * 320, b"\x00")
    placed = b"\x00" * (lead * 320) + sound + b"\x00" * (tail * 320)
    pcm = audioop.add(audioop.add(echo, placed, 2), line.noise(total), 2)
    voiced = [i for i in range(len(sound) // 320)
              if audio.rms(sound[i * 320:(i + 1) * 320]) > VOICED_RMS]
    return as_received(pcm), lead + voiced[0] if voiced else -1


class Socket:
    """The socket a StreamTurns speaks on, keeping the `clear`s it was sent."""

    def __init__(self, sid: str):
        self.stream_sid = "MZ" + sid[2:]
        self.closed = threading.Event()
        self.clears = 0

    def send(self, message: dict) -> bool:
        self.clears += message.get("event") == "clear"
        return True

    def send_media_frames(self, frames, stop=None) -> int:
        return len(frames)

    def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed.set()


def trial(rt, clip: Clip, mode: str, number: int, line: Line) -> dict:
    """The clip over a reply in `mode` (stream: a StreamTurns speaking on its socket; play: a
    fork over the Plays): whether the reply was stopped, and at which frame after the clip's
    first voiced frame."""
    sid = f"{SID_PREFIX}{number:08d}"
    socket = Socket(sid)
    turns = StreamTurns(rt, socket, sid, 2, fork=mode == "play")
    if mode == "stream":
        with turns.detector_lock:
            turns.detector.bot_speaking()  # the reply goes out on the socket
    frames, onset = over_a_reply(clip, line, number)
    stopped_at = None
    for index, pcm in enumerate(frames):
        turns.feed(pcm)
        if socket.clears or turns.carrying:
            stopped_at = index
            break
    if mode == "play":
        rt.overheard.take(sid)  # what the fork carried: no next stream here
    return {"clip": str(clip), "kind": clip.kind, "mode": mode, "stopped": stopped_at is not None,
            "delay_frames": None if stopped_at is None or onset < 0 else stopped_at - onset}


def runtime(tmp: str, **env: str):
    """The line's services on fake engines, its own database (`env`: settings changed): the
    set's frames go through its StreamTurns as a call's do."""
    (Path(tmp) / "tts").mkdir()
    env = {"PUBLIC_BASE_URL": "https://bench.example", "DATABASE_URL": f"sqlite:///{tmp}/b.db",
           "TTS_DIR": f"{tmp}/tts", "VAR_DIR": f"{tmp}/var", "ASR_ENGINE": "fake",
           "LLM_ENGINE": "fake", "TTS_ENGINE": "fake", "TURN_MODE": "stream",
           "TWILIO_ACCOUNT_SID": "AC" + "b" * 32, "TWILIO_AUTH_TOKEN": "bench-backchannel", **env}
    return create_app(Settings.from_env(env)).extensions["ivr"]


def run(clips: list[Clip], modes: tuple[str, ...] = ("stream", "play"), **env: str
        ) -> list[dict]:
    """Every clip over a reply in every mode (`env`: the line's settings changed)."""
    line = Line(-65.0, seed=26)
    logger = logging.getLogger("ivr")
    level = logger.level
    with tempfile.TemporaryDirectory() as tmp:
        rt = runtime(tmp, **env)
        logger.setLevel(logging.WARNING)  # not a line per barge-in
        try:
            return [trial(rt, clip, mode, n, line) for mode in modes
                    for n, clip in enumerate(clips)]
        finally:
            logger.setLevel(level)  # as it was: the tests run it in the suite's process
            rt.close()


def share(trials: list[dict], kind: str, stopped: bool) -> float:
    """The % of the trials of `kind` that stopped the reply (or did not)."""
    of = [t for t in trials if t["kind"] == kind]
    return round(100 * sum(t["stopped"] == stopped for t in of) / max(1, len(of)), 1)


def figures(trials: list[dict]) -> dict:
    """Per mode: false barge-ins (backchannels, noise) and missed barge-ins in %, the delay."""
    out = {}
    for mode in sorted({t["mode"] for t in trials}):
        mine = [t for t in trials if t["mode"] == mode]
        pct = functools.partial(share, mine)
        delays = [t["delay_frames"] * audio.FRAME_SEC * 1000 for t in mine
                  if t["kind"] == "interruption" and t["delay_frames"] is not None]
        out[mode] = {
            "clips": {k: sum(t["kind"] == k for t in mine)
                      for k in ("backchannel", "interruption", "noise")},
            "false_barge_in_backchannel_pct": pct("backchannel", True),
            "false_barge_in_noise_pct": pct("noise", True),
            "missed_barge_in_pct": pct("interruption", False),
            "decision_ms": {"p50": round(percentile(delays, 50)),
                            "p95": round(percentile(delays, 95)), "max": round(max(delays))}
            if delays else None,
            "wrong": [t["clip"] for t in mine if t["stopped"] != (t["kind"] == "interruption")]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one clip in three")
    parser.add_argument("--backchannel-sec", type=float, default=Settings().backchannel_sec,
                        help="BACKCHANNEL_SEC (default: the line's)")
    args = parser.parse_args()
    clips = recorded_set(args.quick)
    table = figures(run(clips, BACKCHANNEL_SEC=str(args.backchannel_sec)))
    path = write_result("backchannel", {"backchannel_sec": args.backchannel_sec,
                                        "echo_db": ECHO_DB, "modes": table})
    for mode, row in table.items():
        delay = row["decision_ms"] or {}
        print(f"{mode:6s} {json.dumps(row['clips'])}: false barge-ins "
              f"{row['false_barge_in_backchannel_pct']}% of backchannels, "
              f"{row['false_barge_in_noise_pct']}% of noise bursts; missed "
              f"{row['missed_barge_in_pct']}% of interruptions; decision after the first "
              f"voiced frame p50 {delay.get('p50')} ms, p95 {delay.get('p95')} ms, "
              f"max {delay.get('max')} ms")
        for clip in row["wrong"]:
            print(f"       wrong: {clip}")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
