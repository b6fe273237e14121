"""One `KIND key=value` line per event of DESIGN §7, each also an event row, no secrets."""

import logging
import re

from .conftest import AUTH_TOKEN

FAKES = {"asr_engine": "fake", "llm_engine": "fake", "tts_engine": "fake", "turn_mode": "stream"}
EXPECTED = {
    "WS_CONNECTED": r"^WS_CONNECTED ",
    "WS_START": r"^WS_START call=CA\w{32} sid=MZ\w+ turn=1 mode=AI reply=play$",
    "WS_MEDIA": r"^WS_MEDIA call=CA\w{32} sid=MZ\w+ rx=50$",
    "HEBREW_SPEECH": r'^HEBREW_SPEECH call=CA\w{32} kind=final text="[^"]+"$',
    "ASR_TEXT": r'^ASR_TEXT call=CA\w{32} text="[^"]+" ms=\d+$',
    "PING_PONG_TX": r"^PING_PONG_TX call=CA\w{32} url=http://127\.0\.0\.1:\d+/static/tts/\w+\.mp3$",
    "STREAM_STATUS": r"^STREAM_STATUS call=CA\w{32} event=stream-started stream=MZ\w+ error=\"\"$",
    "WS_DONE": r"^WS_DONE call=CA\w{32} sid=MZ\w+ rx=\d+ tx=0 bad=0",
}


class Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def test_a_call_logs_each_marker_as_one_key_value_line_and_one_event_row(phone_line):
    line = phone_line(**FAKES)
    handler = Lines()
    logging.getLogger("ivr").addHandler(handler)
    try:
        result = line.carrier.place_call({"steps": [{"say": "שלום, מה שעות הפתיחה שלכם?"}]})
    finally:
        logging.getLogger("ivr").removeHandler(handler)
    for kind, pattern in EXPECTED.items():
        matching = [text for text in handler.lines if text.startswith(kind + " ")]
        assert matching and any(re.match(pattern, text) for text in matching), (kind, matching)
    stored = [e["kind"] for e in line.store.events(result.call_sid)]
    for kind in EXPECTED:
        if kind != "WS_CONNECTED":  # logged before the socket says which call it is
            logged = [t for t in handler.lines if t.startswith(kind + " ")
                      and f"call={result.call_sid}" in t]
            assert stored.count(kind) == len(logged), kind
    assert not any(AUTH_TOKEN in text for text in handler.lines)
