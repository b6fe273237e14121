"""Function calling on the local OpenAI server, to the real `openai` client: the stand-in streams a
scripted model's calls as the pinned SDK types them and refuses tool messages and schemas as
OpenAI does; the chat engine runs the booking tools it is handed, gives their results back and
streams the model's next words, within LLM_TIMEOUT_SEC."""

from __future__ import annotations

import json
import threading

import openai
import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk

from ivr.booking.tools import DEFINITIONS
from ivr.engines.base import HANG_UP, EngineError
from ivr.engines.openai_engines import OpenAILLM

from ..conftest import make_settings
from ..providers import Called, ProviderServer

FIND = Called("find_free_times", {"service": "תספורת", "when_words": "מחר בעשר"})
SLOT = {"service": "תספורת", "slots": [{"slot_id": "s1abc", "said": "מחר בעשר בבוקר"}]}


@pytest.fixture
def provider():
    server = ProviderServer()
    yield server
    server.stop()


def client(provider):
    return openai.OpenAI(api_key="sk-test", base_url=provider.url + "/v1", max_retries=0)


def functions(strict: bool = True) -> list[dict]:
    return [{"type": "function", "function": {"name": n, "description": d, "parameters": p,
                                              "strict": strict}} for n, d, p in DEFINITIONS]


class Tools:
    """Tools as the dialog hands them (ivr/booking/tools.py's shape), answering from a script."""

    definitions = DEFINITIONS

    def __init__(self, answer=lambda name, args: SLOT):
        self.answer, self.ran, self.kept = answer, [], []

    def run(self, name: str, arguments: str) -> str:
        self.ran.append((name, json.loads(arguments)))
        return json.dumps(self.answer(name, json.loads(arguments)), ensure_ascii=False)


def tool_results(body: dict) -> list[dict]:
    return [m for m in body["messages"] if m["role"] == "tool"]


def barber(body: dict) -> list:
    """A model that looks for free times, then says the first one it was given."""
    results = tool_results(body)
    if not results:
        return ["רגע, אני בודק. ", FIND]
    said = json.loads(results[-1]["content"])["slots"][0]["said"]
    return [f"יש {said}. לקבוע?"]


def test_a_streamed_function_call_is_typed_as_the_sdk_types_it(provider):
    provider.model = lambda body: ["בודק. ", FIND, Called("end_call")]
    stream = client(provider).chat.completions.create(
        model="gpt-6-luna", messages=[{"role": "user", "content": "תור מחר בעשר"}],
        tools=functions(), parallel_tool_calls=False, reasoning_effort="none", stream=True)
    state = ChatCompletionStreamState()
    for chunk in stream:
        ChatCompletionChunk.model_validate(chunk.model_dump(exclude_unset=True))  # every field
        state.handle_chunk(chunk)
    message = state.get_final_completion().choices[0]
    assert message.finish_reason == "tool_calls" and message.message.content == "בודק. "
    first, second = message.message.tool_calls
    assert (first.function.name, json.loads(first.function.arguments)) == (FIND.name,
                                                                           FIND.arguments)
    assert second.function.name == "end_call" and first.id != second.id
    assert first.id.startswith("call_") and first.type == "function"


def conversation(call_id: str = "call_1", answered: bool = True, **tool_message) -> list[dict]:
    asked = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function",
         "function": {"name": "find_free_times", "arguments": json.dumps(FIND.arguments)}}]}
    answer = {"role": "tool", "tool_call_id": call_id, "content": json.dumps(SLOT),
              **tool_message}
    return [{"role": "user", "content": "תור מחר בעשר"}, asked] + (
        [{k: v for k, v in answer.items() if v is not None}] if answered else []) + [
        {"role": "user", "content": "כן"}]


@pytest.mark.parametrize("messages, param, message", [
    (conversation(tool_call_id=None), "messages.[2].tool_call_id",
     "Missing parameter 'tool_call_id': messages with role 'tool' must have a 'tool_call_id'."),
    (conversation(call_id="call_9"), "messages.[2].tool_call_id",
     "Invalid parameter: 'tool_call_id' of 'call_9' not found in 'tool_calls' of previous "
     "message."),
    (conversation(answered=False), "messages.[1].role",
     "An assistant message with 'tool_calls' must be followed by tool messages responding to "
     "each 'tool_call_id'. The following tool_call_ids did not have response messages: call_1"),
    ([{"role": "user", "content": "שלום"}, {"role": "tool", "tool_call_id": "call_1",
                                             "content": "{}"}], "messages.[1].role",
     "Invalid parameter: messages with role 'tool' must be a response to a preceeding message "
     "with 'tool_calls'."),
])
def test_tool_results_that_do_not_answer_their_calls_are_refused(provider, messages, param,
                                                                  message):
    with pytest.raises(openai.BadRequestError) as info:
        client(provider).chat.completions.create(model="gpt-6-luna", messages=messages,
                                                 tools=functions(), reasoning_effort="none")
    assert info.value.body["message"] == message and info.value.body["param"] == param
    assert client(provider).chat.completions.create(  # answered in order: accepted
        model="gpt-6-luna", messages=conversation(), tools=functions(),
        reasoning_effort="none").choices


def test_a_strict_schema_must_close_every_object(provider):
    loose = functions()
    loose[0]["function"]["parameters"] = {"type": "object", "properties": {"service": {
        "type": "string"}}, "required": ["service"]}
    with pytest.raises(openai.BadRequestError) as info:
        client(provider).chat.completions.create(model="gpt-6-luna", messages=[
            {"role": "user", "content": "שלום"}], tools=loose, reasoning_effort="none")
    assert info.value.body["message"] == (
        "Invalid schema for function 'find_free_times': In context=(), 'additionalProperties' "
        "is required to be supplied and to be false.")


def llm_for(tmp_path, provider, **changes) -> OpenAILLM:
    settings = make_settings(tmp_path, openai_api_key="sk-test",
                             openai_base_url=provider.url + "/v1", **changes)
    return OpenAILLM.from_settings(settings)


def test_the_engine_runs_a_tool_and_streams_what_the_model_says_of_its_result(tmp_path,
                                                                               provider):
    provider.model = barber
    tools = Tools()
    pieces = list(llm_for(tmp_path, provider).reply_tokens([], "תור לתספורת מחר בעשר", tools))
    assert "".join(pieces) == "רגע, אני בודק. יש מחר בעשר בבוקר. לקבוע?" and len(pieces) > 3
    assert tools.ran == [("find_free_times", FIND.arguments)]  # the caller's words, verbatim
    first, second = (r["json"] for r in provider.requests)
    assert {t["function"]["name"] for t in first["tools"]} == {
        "transfer_to_person", "end_call", "cannot_answer", "find_free_times", "book",
        "my_appointments", "cancel", "move"}
    assert all(t["function"]["strict"] for t in first["tools"])
    assert first["parallel_tool_calls"] is False
    asked, answered = second["messages"][-2:]
    assert asked["tool_calls"][0]["function"]["name"] == "find_free_times"
    assert answered["tool_call_id"] == asked["tool_calls"][0]["id"]
    assert tools.kept == [asked, answered]  # for the history: the next turn sees the slot ids


def test_the_next_turn_sends_the_kept_calls_before_their_words(tmp_path, provider):
    provider.model = barber
    llm, tools = llm_for(tmp_path, provider), Tools()
    said = "".join(llm.reply_tokens([], "תור לתספורת מחר בעשר", tools))
    history = [{"role": "user", "text": "תור לתספורת מחר בעשר"},
               {"role": "assistant", "text": said, "tools": tools.kept}]
    provider.model = lambda body: [f"קבעתי לפי {json.loads(tool_results(body)[0]['content'])}"
                                   [:20]]
    assert "".join(llm.reply_tokens(history, "כן", Tools()))  # accepted by the stand-in
    roles = [m["role"] for m in provider.requests[-1]["json"]["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "user"]


def test_a_tool_error_is_told_to_the_model_which_says_what_to_do(tmp_path, provider):
    def model(body):
        results = tool_results(body)
        return [FIND] if not results else [
            "אי אפשר לקבוע כרגע" if "error" in json.loads(results[-1]["content"]) else "?"]
    provider.model = model
    tools = Tools(lambda name, args: {"error": "the booking system failed"})
    assert "".join(llm_for(tmp_path, provider).reply_tokens([], "תור", tools)) == \
        "אי אפשר לקבוע כרגע"


def test_an_action_among_tool_calls_is_answered_and_done(tmp_path, provider):
    provider.model = lambda body: [FIND, Called("end_call")] if not tool_results(body) \
        else ["להתראות."]
    pieces = list(llm_for(tmp_path, provider).reply_tokens([], "תור", Tools()))
    assert pieces[0] == HANG_UP and "".join(pieces[1:]) == "להתראות."
    answered = tool_results(provider.requests[-1]["json"])
    assert len(answered) == 2  # every call answered, the action's too


def test_a_model_that_keeps_calling_tools_must_speak_in_its_last_round(tmp_path, provider):
    provider.model = lambda body: ["עוד רגע."] if body.get("tool_choice") == "none" else [FIND]
    tools = Tools()
    assert "".join(llm_for(tmp_path, provider).reply_tokens([], "תור", tools)) == "עוד רגע."
    assert len(tools.ran) == 3 and len(provider.requests) == 4


def test_tools_that_outlast_the_llm_timeout_end_the_reply(tmp_path, provider):
    provider.model = barber
    slow = threading.Event()

    def answer(name, args):
        slow.wait(0.6)  # never set: longer than the stage timeout, however loaded the machine
        return SLOT
    llm = llm_for(tmp_path, provider, llm_timeout_sec=0.5)
    with pytest.raises(EngineError, match="took over 0.5 s"):
        list(llm.reply_tokens([], "תור", Tools(answer)))
    assert len(provider.requests) == 1  # no second round after the deadline


def test_the_system_prompt_sends_every_booking_to_the_tools():
    from ivr.engines.openai_engines import PROMPT_FILE
    text = PROMPT_FILE.read_text(encoding="utf-8")
    assert all(name in text for name, _, _ in DEFINITIONS)
    assert "אל תאמר יום או שעה של תור שהכלי לא החזיר" in text  # never a time of its own
    assert "הפעל book רק אחרי שאישר" in text  # read back and confirmed first
    text.format(min_chars=1, max_chars=2)  # still a template with only these two fields
