"""The line against a standard Pipecat Twilio bot in one run: the same local OpenAI-compatible
provider (bench/latency_profile.py), the same emulated caller and questions; end of the caller's
speech → first reply audio heard, and → the whole reply heard, p50/p95, and Pipecat ÷ line.

Run: `make bench-peer` (it builds .venv-peer with Pipecat from PyPI, bench/requirements-peer.txt)
or `python -m bench.peer [--turns 10] [--cold]` once .venv-peer exists. The line runs
REPLY_MODE=stream and play as `make bench-latency` runs them (OpenAI speech over
/v1/audio/speech); the peer is bench/peer_bot.py in its own virtualenv, rung by the
emulator's carrier exactly as the line is:
POST /webhook/incoming_call, its <Connect><Stream> TwiML, Media Streams over the WebSocket.
Pipecat asks the speech endpoint for `response_format: pcm` (raw 24 kHz PCM16, as OpenAI serves
it); the provider here answers that with PCM of the same length, latency and pace as its MP3.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from flask import Response, request

from ivr import audio
from ivr.config import LOCAL_ACCOUNT_SID
from ivr.sim import Carrier

from .common import percentile, write_result
from .harness import ROOT, free_port, log
from .latency import QUESTIONS, REPLY_PAUSE_SEC, audio_heard, run_mode, turn_times
from .latency_profile import CHARS_PER_AUDIO_SEC, LatencyProfile

PEER_VENV = ROOT / ".venv-peer"
PEER_BOT = Path(__file__).with_name("peer_bot.py")
PCM_RATE = 24000  # OpenAI's `pcm` speech: 24 kHz, 16-bit, mono, no header
START_TIMEOUT_SEC = 120  # the bot's first start loads Pipecat and Silero's model


class PcmProfile(LatencyProfile):
    """The latency profile, also serving speech as `response_format: pcm` like OpenAI."""

    def speech(self) -> Response:
        body = request.get_json()
        if body.get("response_format") != "pcm":
            return super().speech()
        seconds = max(0.3, len(body["input"]) / CHARS_PER_AUDIO_SEC)
        return Response(self.audio_bytes(self.tone_pcm(round(seconds * 10)), seconds),
                        mimetype="audio/pcm")

    def tone_pcm(self, tenths: int) -> bytes:
        """The MP3's tone as 24 kHz PCM16 (the same length as the MP3 of `tenths`)."""
        pcm = audio.beep_pcm16(tenths * 100, 300 + tenths, 3000)
        return audio.resample(pcm, audio.RATE, PCM_RATE)


class PeerBot:
    """bench/peer_bot.py in .venv-peer on a loopback port, until stopped."""

    def __init__(self, openai_url: str, python: Path = PEER_VENV / "bin" / "python"):
        if not python.exists():
            raise SystemExit(f"{python} is missing: `make bench-peer` builds it")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [str(python), str(PEER_BOT), "--port", str(self.port), "--openai", openai_url],
            cwd=ROOT, env={**os.environ, "OPENAI_API_KEY": "sk-bench-0000000000"},
            start_new_session=True)

    def __enter__(self) -> PeerBot:
        deadline = time.monotonic() + START_TIMEOUT_SEC
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.2)
        self.__exit__()
        raise RuntimeError(f"the Pipecat bot did not start (exit {self.proc.poll()})")

    def __exit__(self, *_exc) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(15)


def script(turns: int) -> dict:
    """The caller of bench/latency.py: the same questions, waits and reply pause."""
    return {"steps": [{"say": QUESTIONS[i % len(QUESTIONS)]} for i in range(turns)],
            "end": "hangup", "reply_timeout": 30, "max_duration": 60 * turns,
            "reply_pause": REPLY_PAUSE_SEC}


def summarize(times: list[tuple[float, float, float]], turns: int) -> dict:
    """p50/p95 of first audio, whole reply, the silence inside it and the reply's audio (s)."""
    def p(values: list[float]) -> dict:
        return {"p50": round(percentile(values, 50), 2), "p95": round(percentile(values, 95), 2)}
    return {"turns": turns, "answered": len(times), "first_audio_sec": p([t[0] for t in times]),
            "whole_reply_sec": p([t[1] for t in times]),
            "silence_inside_reply_sec": p([t[2] for t in times]),
            "reply_audio_sec": p(audio_heard(times))}


def run_peer(turns: int, profile: LatencyProfile) -> dict:
    with PeerBot(profile.url + "/v1") as bot, Carrier(bot.url, LOCAL_ACCOUNT_SID,
                                                      "peer-bench-token") as carrier:
        result = carrier.place_call(script(turns), speed=1.0)
    summary = {**summarize(turn_times(result), turns), "errors": result.error_codes}
    log(f"Pipecat: {summary['answered']}/{turns} turns answered; first audio p50 "
        f"{summary['first_audio_sec']['p50']} s, p95 {summary['first_audio_sec']['p95']} s; "
        f"whole reply p50 {summary['whole_reply_sec']['p50']} s")
    return summary


def ratios(runs: dict) -> dict:
    """Pipecat's p50 ÷ each line mode's p50, for first audio and the whole reply."""
    peer = runs["pipecat"]
    return {mode: {what: round(peer[what]["p50"] / runs[mode][what]["p50"], 2)
                   for what in ("first_audio_sec", "whole_reply_sec")}
            for mode in runs if mode != "pipecat"}


def table(runs: dict) -> str:
    rows = ["                 first audio p50/p95   whole reply p50/p95   its audio p50   answered"]
    for name, run in runs.items():
        first, whole = run["first_audio_sec"], run["whole_reply_sec"]
        said = run.get("reply_audio_sec", {}).get("p50", "-")
        rows.append(f"{name:<16} {first['p50']:>6} / {first['p95']:<12} {whole['p50']:>6} / "
                    f"{whole['p95']:<12} {said:>6} s        {run['answered']}/{run['turns']}")
    for mode, ratio in ratios(runs).items():
        rows.append(f"Pipecat ÷ {mode}: first audio {ratio['first_audio_sec']}×, "
                    f"whole reply {ratio['whole_reply_sec']}×")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--cold", action="store_true",
                        help="every reply opens differently: no chunk comes from the MP3 cache")
    args = parser.parse_args()
    profile = PcmProfile(cold=args.cold)
    try:
        runs = {f"line {mode}": run_mode(mode, args.turns, profile, "speech", None)
                for mode in ("stream", "play")}
        runs["pipecat"] = run_peer(args.turns, profile)
    finally:
        profile.stop()
    path = write_result("peer-cold" if args.cold else "peer",
                        {"profile": "bench/latency_profile.py", "cold": args.cold,
                         "peer": "pipecat-ai " + peer_version(), "modes": runs,
                         "ratios": ratios(runs)})
    print(table(runs) + f"\nwritten to {path}")


def peer_version() -> str:
    requirement = next(line for line in (ROOT / "bench/requirements-peer.txt").read_text()
                       .splitlines() if line.startswith("pipecat-ai"))
    return requirement.split("==")[1]


if __name__ == "__main__":
    main()
