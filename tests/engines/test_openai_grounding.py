"""The OpenAI chat answers from the business's facts: its system prompt carries them (all of
them while small, the ones found for the caller's words once large) and the instruction, the
model is offered `cannot_answer` in the shape the real API takes, and a call of it reaches the
line as an unanswered question; through the real `openai` client on the local stand-in."""

from __future__ import annotations

import pytest

from ivr.engines.base import Action
from ivr.engines.openai_engines import OpenAILLM
from ivr.facts.facts import LiveFacts
from ivr.facts.grounding import ALL_FACTS_CHARS
from ivr.phrases import CHECK_BACK

from ..conftest import make_settings
from ..facts.samples import FACTS, PARKING, facts_file
from ..providers import Called, ProviderServer

DONT_KNOW = "אין לי מידע על זה. אפשר להשאיר הודעה."


@pytest.fixture
def provider():
    server = ProviderServer()
    yield server
    server.stop()


def llm_for(tmp_path, provider, facts_text: str = FACTS, **changes) -> OpenAILLM:
    path = facts_file(tmp_path, facts_text)
    settings = make_settings(tmp_path, openai_api_key="sk-test", facts_file=str(path),
                             openai_base_url=provider.url + "/v1", **changes)
    return OpenAILLM.from_settings(settings)


def sent(provider) -> dict:
    return provider.requests[-1]["json"]


def test_the_system_prompt_carries_the_prompt_file_and_every_fact(tmp_path, provider):
    llm = llm_for(tmp_path, provider)
    assert "".join(p for p in llm.reply_tokens([], "מה השעות?") if isinstance(p, str))
    system = sent(provider)["messages"][0]
    assert system["role"] == "system"
    assert system["content"].startswith(llm.system_prompt.rstrip())  # what it said before stays
    assert "find_free_times" in system["content"]
    for passage in LiveFacts(tmp_path / "facts.yaml").current().passages:
        assert passage.text in system["content"]
    assert "ענה רק מתוך עובדות העסק" in system["content"] and PARKING in system["content"]


def test_the_model_is_offered_cannot_answer_in_the_strict_shape(tmp_path, provider):
    list(llm_for(tmp_path, provider).reply_tokens([], "יש לכם מניקור?"))
    tools = {t["function"]["name"]: t["function"] for t in sent(provider)["tools"]}
    cannot = tools["cannot_answer"]
    assert cannot["strict"] is True and cannot["parameters"]["required"] == ["question"]
    assert cannot["parameters"]["additionalProperties"] is False


def test_a_call_of_cannot_answer_is_an_unanswered_question_and_its_words_are_said(tmp_path,
                                                                                   provider):
    provider.model = lambda body: [DONT_KNOW, Called("cannot_answer",
                                                     {"question": "יש לכם מניקור?"})]
    pieces = list(llm_for(tmp_path, provider).reply_tokens([], "יש לכם מניקור?"))
    assert Action("unanswered", "not in the facts") in pieces
    assert "".join(p for p in pieces if isinstance(p, str)) == DONT_KNOW


def test_large_facts_give_the_prompt_only_what_the_question_finds(tmp_path, provider):
    extra = "".join(f'  - "מוצר {n} לשיער: {"מילה " * 30}"\n' for n in range(60))
    text = FACTS.replace("policies:\n", "policies:\n" + extra)
    llm = llm_for(tmp_path, provider, text)
    assert sum(len(p.text) for p in llm.grounding().passages) > ALL_FACTS_CHARS
    list(llm.reply_tokens([], "יש חניה?"))
    system = sent(provider)["messages"][0]["content"]
    assert PARKING in system and "מוצר 7 לשיער" not in system
    assert len(system) < ALL_FACTS_CHARS


def test_the_prewarm_knows_the_sentences_it_says_for_what_it_cannot_say(tmp_path, provider):
    assert CHECK_BACK in llm_for(tmp_path, provider).texts()
