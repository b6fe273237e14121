"""Server time of one gather turn (signed webhook → dialog → TTS → TwiML), cached vs uncached.

Run: `python -m bench.turn_time` (or `make bench-turn`). Engines: scripted flow + espeak-ng.
Cached: the flow's answers are in the MP3 cache. Uncached: every reply is a new sentence, so
each turn pays a synthesis (espeak-ng + MP3 encoding).
"""

from __future__ import annotations

import itertools
import logging
import tempfile
import time

from twilio.request_validator import RequestValidator

from ivr.app import create_app
from ivr.config import Settings
from ivr.engines.base import LLM

from .common import percentile, write_result

TURNS = 30
QUESTIONS = ["מה שעות הפתיחה שלכם?", "איפה אתם נמצאים?", "כמה זה עולה?"]


class NewSentenceLLM(LLM):
    """Replies a sentence never said before, so the TTS cache never has it."""

    name = "bench"

    def __init__(self):
        self.counter = itertools.count(1)

    def reply(self, history, text):
        return f"תשובה מספר {next(self.counter)}: נשמח לעזור לך בכל שאלה."


def run(app, token: str, base: str, questions, run_no: int) -> list[float]:
    """TURNS gather turns, each on its own call (so no caller-text dedup applies)."""
    client = app.test_client()
    validator = RequestValidator(token)
    timings = []
    for n, question in zip(range(TURNS), itertools.cycle(questions), strict=False):
        params = {"CallSid": f"CA{run_no:08x}{n:024x}", "SpeechResult": question,
                  "AccountSid": "AC" + "0" * 32}
        url = base + "/webhook/handle_gather"
        headers = {"X-Twilio-Signature": validator.compute_signature(url, params)}
        started = time.perf_counter()
        response = client.post("/webhook/handle_gather", data=params, headers=headers)
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.data
    return timings


def summary(timings: list[float]) -> dict:
    return {"p50_ms": round(percentile(timings, 50), 1),
            "p95_ms": round(percentile(timings, 95), 1), "turns": len(timings)}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.from_env({"VAR_DIR": f"{tmp}/var", "TTS_DIR": f"{tmp}/tts",
                                      "DATABASE_URL": f"sqlite:///{tmp}/bench.sqlite3"})
        app = create_app(settings)
        logging.getLogger("ivr").setLevel(logging.WARNING)
        rt = app.extensions["ivr"]
        args = (app, settings.twilio_auth_token, settings.public_base_url, QUESTIONS)
        run(*args, 1)  # warms the cache with the flow's answers
        cached = run(*args, 2)
        rt.dialog.engines.llm = NewSentenceLLM()
        uncached = run(*args, 3)
        rt.close()
    result = {"engines": "scripted + espeak", "cached": summary(cached),
              "uncached": summary(uncached)}
    path = write_result("turn_time", result)
    for name in ("cached", "uncached"):
        row = result[name]
        print(f"{name:9s} p50 {row['p50_ms']:7.1f} ms   p95 {row['p95_ms']:7.1f} ms")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
