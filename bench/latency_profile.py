"""A local OpenAI-compatible server with cloud-like latencies (the fast-turns issue's profile).

- transcription: the text 350 ms after the request (a question with its own reference number);
- chat: first token 450 ms after the request, then 150 characters a second, streamed (SSE) or,
  without `stream`, the whole reply after 450 ms + length/150 s;
- speech: first byte 300 ms after the request, then the MP3 at 10× real time; the audio lasts
  one second per 14 characters of input.
The reply is about 230 characters in three sentences, with a number that changes every turn,
so nothing comes from the line's MP3 cache. It counts the streamed chat requests, and those
whose client went away before their end (a draft reply thrown away). bench/google_profile.py
hears the caller live with the same timings, as Google's streaming recognition.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time

from flask import Flask, Response, jsonify, request
from werkzeug.serving import make_server

from ivr import audio

ASR_SEC = 0.35
FIRST_TOKEN_SEC = 0.45
CHARS_PER_SEC = 150
FIRST_BYTE_SEC = 0.3
AUDIO_SPEEDUP = 10
CHARS_PER_AUDIO_SEC = 14
DELTA_CHARS = 3  # about one token of Hebrew
OPENERS = ["כן, בשמחה,", "בטח, בשמחה,", "כמובן, בשמחה,", "בוודאי, בשמחה,", "כן, בהחלט,",
           "בטח, בהחלט,", "כמובן, בהחלט,", "בוודאי, בהחלט,", "כן, ברור,", "בטח, ברור,",
           "כמובן, ברור,", "בוודאי, ברור,"]  # --cache cold: no turn opens like another one
REPLY = ("{opener} אנחנו פתוחים היום עד שש בערב ומספר הפנייה שלך הוא {n}. ביום שישי אנחנו "
         "פתוחים עד אחת בצהריים, ואפשר לקבוע תור בטלפון או באתר. אם תרצה, אשמח לרשום אותך "
         "כבר עכשיו לתור הקרוב.")


def question(n: int) -> str:
    """What the provider hears the caller ask: a question with its own reference number."""
    return f"מה שעות הפתיחה שלכם היום? מספר הפנייה שלי {n}."


class LatencyProfile:
    """The profile's server on a loopback port; `url` + "/v1" is an OPENAI_BASE_URL."""

    def __init__(self, cold: bool = False):
        """`cold`: every reply opens differently, so even its first clause is synthesised."""
        self.numbers = itertools.count(48213)
        self.openers = itertools.cycle(OPENERS) if cold else itertools.repeat(OPENERS[0])
        self.lock = threading.Lock()
        self.heard = 0  # the reference number of the last question heard
        self.chats = self.cut_off = self.cut_off_chars = 0  # streamed chat requests (replies,
        # drafts; not the call's summary); those whose client went away mid-stream, and the
        # characters streamed to them until it did
        self.mp3s: dict[int, bytes] = {}
        app = Flask("latency-profile")
        app.add_url_rule("/v1/audio/transcriptions", "asr", self.transcription, methods=["POST"])
        app.add_url_rule("/v1/chat/completions", "chat", self.chat, methods=["POST"])
        app.add_url_rule("/v1/audio/speech", "tts", self.speech, methods=["POST"])
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()

    def reply_text(self) -> str:
        with self.lock:
            return REPLY.format(opener=next(self.openers), n=self.heard or next(self.numbers))

    def new_number(self) -> int:
        """The reference number of the next question the caller asks."""
        with self.lock:
            return next(self.numbers)

    def hear(self, number: int) -> None:
        """The caller was heard saying `number`: the replies from now on read it back."""
        with self.lock:
            self.heard = number

    def transcription(self) -> Response:
        """Each question heard with its own reference number, which the reply reads back: no
        two alike (the line would drop a repeated one, DEDUP), and the reply's number is one
        the caller said (the line never speaks a figure nobody gave it)."""
        request.files["file"].read()
        time.sleep(ASR_SEC)
        number = self.new_number()
        self.hear(number)
        return jsonify({"text": question(number)})

    def chat_counts(self) -> tuple[int, int, int]:
        """(streamed chat requests, those cut off mid-stream, characters streamed to those) so
        far."""
        with self.lock:
            return self.chats, self.cut_off, self.cut_off_chars

    def chat(self) -> Response:
        body, text = request.get_json(), self.reply_text()
        if not body.get("stream"):
            time.sleep(FIRST_TOKEN_SEC + len(text) / CHARS_PER_SEC)
            return jsonify({"id": "c", "object": "chat.completion", "created": 0,
                            "model": body["model"], "choices": [{
                                "index": 0, "finish_reason": "stop",
                                "message": {"role": "assistant", "content": text}}]})
        return Response(self.chat_events(body["model"], text), mimetype="text/event-stream")

    def chat_events(self, model: str, text: str):
        def event(delta: dict, finish: str | None = None) -> str:
            return "data: " + json.dumps({"id": "c", "object": "chat.completion.chunk",
                                          "created": 0, "model": model, "choices": [{
                                              "index": 0, "delta": delta,
                                              "finish_reason": finish}]}) + "\n\n"
        with self.lock:
            self.chats += 1
        started, sent = time.monotonic() + FIRST_TOKEN_SEC, 0
        time.sleep(FIRST_TOKEN_SEC)
        try:
            yield event({"role": "assistant", "content": ""})
            for i in range(0, len(text), DELTA_CHARS):
                due = started + i / CHARS_PER_SEC
                time.sleep(max(0.0, due - time.monotonic()))
                sent += len(text[i:i + DELTA_CHARS])
                yield event({"content": text[i:i + DELTA_CHARS]})
        except GeneratorExit:  # the server found the client gone (a write failed) and closed us
            with self.lock:
                self.cut_off += 1
                self.cut_off_chars += sent
            raise
        yield event({}, "stop")
        yield "data: [DONE]\n\n"

    def speech(self) -> Response:
        text = request.get_json()["input"]
        seconds = max(0.3, len(text) / CHARS_PER_AUDIO_SEC)
        mp3 = self.tone_mp3(round(seconds * 10))
        return Response(self.audio_bytes(mp3, seconds), mimetype="audio/mpeg")

    def tone_mp3(self, tenths: int) -> bytes:
        with self.lock:
            if tenths not in self.mp3s:  # one encoding per length: the profile, not ffmpeg
                pcm = audio.beep_pcm16(tenths * 100, 300 + tenths, 3000)
                self.mp3s[tenths] = audio.pcm16_to_mp3(pcm)
            return self.mp3s[tenths]

    @staticmethod
    def audio_bytes(mp3: bytes, seconds: float):
        time.sleep(FIRST_BYTE_SEC)
        started, pieces = time.monotonic(), 10
        step = -(-len(mp3) // pieces)
        for n in range(pieces):
            due = started + n * seconds / AUDIO_SPEEDUP / pieces
            time.sleep(max(0.0, due - time.monotonic()))
            yield mp3[n * step:(n + 1) * step]
