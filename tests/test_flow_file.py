"""The flow file as the owner edits it: a mistake named by file, line and column in one sentence;
an edit used by the running line from its next call; a broken edit reported (log, /healthz)
while calls go on with the flow read before; `{hours}` said from `hours:`."""

import logging

import pytest
import requests

from ivr.engines.fake import FakeASR
from ivr.engines.scripted import DEFAULT_FLOW, ScriptedLLM
from ivr.flow import FlowFileError, read_flow
from ivr.tts_cache import GREETING

from .livehelpers import wait_until

ENGINES = {"asr_engine": "fake", "llm_engine": "scripted", "tts_engine": "fake",
           "turn_mode": "stream"}
ASKED = "מה שעות הפתיחה?"
SHIPPED = DEFAULT_FLOW.read_text(encoding="utf-8")
FRIDAY = 'fri: "08:00-13:00"'
NEW_NAME = "הגעתם למספרה המשפחתית של דנה ויוסי ברחוב הרצל"  # a greeting of another length


def copy_of_the_shipped_flow(tmp_path, edit=lambda text: text):
    path = tmp_path / "flow.yaml"
    path.write_text(edit(SHIPPED), encoding="utf-8")
    return path


def line_of(text: str, needle: str) -> int:
    return text.splitlines().index(next(ln for ln in text.splitlines() if needle in ln)) + 1


@pytest.mark.parametrize("edit, where, says", [
    (lambda t: t.replace("  " + FRIDAY, "\t" + FRIDAY), "fri:", "a tab: indent with spaces only"),
    (lambda t: t.replace("  " + FRIDAY, "   " + FRIDAY), "fri:",
     "this line is not lined up with the lines of its block"),
    (lambda t: t.replace('goodbye: "תודה', 'goodbye: תודה: '), "goodbye:",
     "a ':' inside a text: put the whole text in double quotes"),
])
def test_a_yaml_mistake_is_one_sentence_naming_file_line_and_column(tmp_path, edit, where, says):
    path = copy_of_the_shipped_flow(tmp_path, edit)
    with pytest.raises(FlowFileError) as info:
        read_flow(path)
    message = str(info.value)
    line = line_of(path.read_text(encoding="utf-8"), where)
    assert message.startswith(f"{path}:{line}:") and says in message and "\n" not in message
    assert "unicode string" not in message


def test_the_hours_answer_is_said_from_hours(tmp_path):
    path = copy_of_the_shipped_flow(tmp_path, lambda t: t.replace(FRIDAY, 'fri: "09:00-14:00"'))
    answer = ScriptedLLM(path).reply([], ASKED)
    assert answer == "אנחנו פתוחים בימים ראשון עד חמישי 8:00-18:00, וביום שישי 9:00-14:00."
    assert answer in ScriptedLLM(path).texts()  # prewarm synthesises what is said


def test_an_edit_is_used_by_the_next_call_and_a_broken_one_is_reported_while_calls_go_on(
        phone_line, tmp_path):
    path = copy_of_the_shipped_flow(tmp_path)
    line = phone_line(**ENGINES, flow_file=str(path))
    line.runtime.engines.asr = FakeASR([ASKED] * 3)
    logged = Records()
    logging.getLogger("ivr").addHandler(logged)
    try:
        before = hours_said(line)
        assert before.endswith("וביום שישי 8:00-13:00.")
        assert line.runtime.prompt_url(GREETING).endswith("/" + GREETING)
        greeting = line.runtime.cache.path(GREETING).read_bytes()
        path.write_text(SHIPPED.replace(FRIDAY, 'fri: "08:00-14:30"')
                        .replace("הגעתם לעסק שלנו", NEW_NAME), encoding="utf-8")
        assert hours_said(line).endswith("וביום שישי 8:00-14:30.")  # no restart
        assert line.runtime.prompt_url(GREETING).endswith("/" + GREETING)  # made again
        tts, cache = line.runtime.engines.tts, line.runtime.cache
        new = cache.lookup(tts, f"שלום, {NEW_NAME}. במה אפשר לעזור?")
        assert greeting != line.runtime.cache.path(GREETING).read_bytes() == new.read_bytes()

        broken = SHIPPED.replace(FRIDAY, 'fri: "08:00-15:00"').replace("  sun:", "\tsun:")
        path.write_text(broken, encoding="utf-8")
        where = f"{path}:{line_of(broken, 'sun:')}:1: a tab"
        health = requests.get(line.url + "/healthz", timeout=30)
        assert health.status_code == 503
        assert [p for p in health.json()["problems"] if p.startswith(where)]
        assert hours_said(line).endswith("וביום שישי 8:00-14:30.")  # the last good flow
        errors = [m for m in logged.messages if m.startswith("FLOW_ERR")]
        assert len(errors) == 1 and where in errors[0]  # once, not on every use

        path.write_text(SHIPPED, encoding="utf-8")  # fixed
        assert requests.get(line.url + "/healthz", timeout=30).json()["problems"] == []
    finally:
        logging.getLogger("ivr").removeHandler(logged)


class Records(logging.Handler):
    """The ivr log's messages (it does not propagate to pytest's handler)."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def hours_said(line) -> str:
    """One call asking for the hours: what the line answered (the caller hangs up at once, so
    the answer may be stored just after the call ends)."""
    result = line.carrier.place_call({"steps": [{"say": ASKED}, "hangup"]})

    def said() -> list[str]:
        return [m["text"] for m in line.store.history(result.call_sid)
                if m["role"] == "assistant"]
    wait_until(said)
    assert len(said()) == 1, said()
    return said()[0]
