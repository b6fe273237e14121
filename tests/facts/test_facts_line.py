"""The scripted line answers from the business's facts, end to end through the emulator: a
question only the facts answer is said in the facts' words; one they do not answer is not."""

import os

import pytest

from ivr.engines.fake import FakeASR

from ..conftest import wait_until
from .samples import PARKING, facts_file

pytestmark = pytest.mark.live  # rings whole calls through the emulator


def said_in_a_call(line, *questions: str) -> list[str]:
    """One call asking `questions` in turn: what the line answered to each."""
    line.runtime.engines.asr = FakeASR(list(questions))
    result = line.carrier.place_call({"steps": [{"say": q} for q in questions],
                                      "reply_timeout": 60})
    return wait_until(lambda: (said := [m["text"] for m in line.store.history(result.call_sid)
                                        if m["role"] == "assistant"])
                      and len(said) >= len(questions) and said)


def test_a_question_only_the_facts_answer_is_said_in_the_facts_words(phone_line, tmp_path):
    line = phone_line(asr_engine="fake", llm_engine="scripted", tts_engine="fake",
                      turn_mode="stream", facts_file=str(facts_file(tmp_path)))
    clarify = line.runtime.engines.llm.flow["clarify"]
    assert said_in_a_call(line, "יש חניה?", "אתם מוכרים אופניים?") == [PARKING, clarify]


def test_a_broken_edit_of_the_facts_is_on_healthz_while_the_last_good_facts_answer(tmp_path):
    from ivr.app import create_app

    from ..conftest import make_settings
    from .samples import FACTS, LINES
    path = facts_file(tmp_path)
    app = create_app(make_settings(tmp_path, llm_engine="scripted", facts_file=str(path)))
    try:
        client, llm = app.test_client(), app.extensions["ivr"].engines.llm
        assert client.get("/healthz").json["problems"] == []
        path.write_text(FACTS.replace("address:", "\taddress:"), encoding="utf-8")
        info = path.stat()
        os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 10**9))
        health = client.get("/healthz")
        assert health.status_code == 503
        assert health.json["problems"][0].startswith(f"{path}:{LINES['address']}:1: a tab")
        assert llm.reply([], "יש חניה?") == PARKING  # the last good facts
    finally:
        app.extensions["ivr"].close()
