"""The scripted flow: intents by keyword and key, one clarifying question, taking a message."""

import pytest

from ivr.engines.scripted import FlowError, ScriptedLLM, phone_digits


@pytest.fixture
def flow():
    return ScriptedLLM()


def said(history, user, assistant):
    return history + [{"role": "user", "text": user}, {"role": "assistant", "text": assistant}]


def test_keywords_pick_the_answer(flow):
    assert flow.reply([], "שלום, מה שעות הפתיחה שלכם?").startswith("אנחנו פתוחים")
    assert flow.reply([], "איפה אתם נמצאים?").startswith("אנחנו ברחוב הרצל")
    assert flow.reply([], "כמה זה עולה?").startswith("תספורת עולה 80")
    assert flow.reply([], "שָׁלוֹם") == "שלום! במה אפשר לעזור?"  # niqqud ignored


def test_dtmf_keys_pick_the_answer(flow):
    assert flow.reply([], "1").startswith("אנחנו פתוחים")
    assert flow.reply([], "0") == flow.lead_texts["ask_name"]


def test_unknown_request_gets_one_clarifying_question_then_the_menu(flow):
    first = flow.reply([], "האם אתם מוכרים חדי קרן?")
    assert first == flow.flow["clarify"]
    second = flow.reply(said([], "האם אתם מוכרים חדי קרן?", first), "ומה עם דרקונים?")
    assert second == flow.flow["menu"]


def test_talk_to_a_person_takes_name_phone_and_reason(flow):
    history = said([], "אני רוצה לדבר עם נציג", flow.reply([], "אני רוצה לדבר עם נציג"))
    assert history[-1]["text"] == flow.lead_texts["ask_name"]
    history = said(history, "דנה כהן", flow.reply(history, "דנה כהן"))
    assert history[-1]["text"] == flow.lead_texts["ask_phone"]
    phone = "אפס חמש שתיים תשע שמונה שבע שש חמש ארבע שלוש"
    history = said(history, phone, flow.reply(history, phone))
    assert history[-1]["text"] == flow.lead_texts["ask_reason"]
    assert flow.lead(history, "פגישה") == {"name": "דנה כהן", "phone": "0529876543",
                                           "reason": "פגישה"}
    assert flow.reply(history, "פגישה") == "תודה דנה כהן, רשמתי את הפרטים ונחזור אליך בהקדם."
    assert flow.lead(history[:-2], "x") is None


def test_phone_digits_from_speech_and_keys():
    assert phone_digits("אפס חמש ארבע, שבע שבע שמונה") == "054778"
    assert phone_digits("054-1234567") == "0541234567"
    assert phone_digits("ושש") == "6"


def test_the_owner_edits_yaml_not_code(tmp_path):
    custom = tmp_path / "flow.yaml"
    custom.write_text("""greeting: "שלום מהמספרה"
goodbye: "ביי"
clarify: "סליחה?"
intents:
  - name: haircut
    keywords: ["תספורת"]
    dtmf: "5"
    answer: "תספורת עולה שמונים שקל"
lead: {ask_name: "שם?", ask_phone: "טלפון?", ask_reason: "סיבה?", done: "תודה {name}"}
""", encoding="utf-8")
    flow = ScriptedLLM(custom)
    assert flow.reply([], "כמה עולה תספורת?") == "תספורת עולה שמונים שקל"
    assert flow.reply([], "5") == "תספורת עולה שמונים שקל"
    assert "תספורת עולה שמונים שקל" in flow.texts()
    bad = tmp_path / "bad.yaml"
    bad.write_text("greeting: x\n", encoding="utf-8")
    with pytest.raises(FlowError, match="missing goodbye, clarify, intents, lead"):
        ScriptedLLM(bad)


def test_the_transcription_keywords_are_the_flow_s_words_each_once_and_few(tmp_path):
    from ivr.engines.scripted import MAX_ASR_KEYWORDS, asr_keywords
    flow = tmp_path / "flow.yaml"
    flow.write_text('keywords: ["מספרת רותי", "פן"]\nintents:\n'
                    '  - {name: a, label: "תספורת", keywords: ["תספורת", "פן", "צבע"]}\n'
                    '  - {name: b, label: "", keywords: ["תור"]}\n', encoding="utf-8")
    assert asr_keywords(flow) == ["מספרת רותי", "פן", "תספורת", "צבע", "תור"]
    many = "intents:\n" + "".join(f'  - {{name: i{n}, keywords: ["מילה{n}"]}}\n' for n in range(50))
    flow.write_text(many, encoding="utf-8")
    assert len(asr_keywords(flow)) == MAX_ASR_KEYWORDS == 30
    assert asr_keywords(tmp_path / "missing.yaml") == []
    flow.write_text("intents: [", encoding="utf-8")
    assert asr_keywords(flow) == []  # the flow's own loading names what is wrong


def test_asking_for_a_person_is_a_topic_whether_transferred_or_not(flow):
    """The dialog says the transfer (the owner reachable), "not available" and the message's
    first question (the owner's phone did not answer), or that question alone (out of hours)."""
    person = flow.intents[3]["label"]
    for answer in (flow.flow["transferring"],
                   f"{flow.flow['owner_unavailable']} {flow.lead_texts['ask_name']}",
                   flow.lead_texts["ask_name"]):
        history = said(said([], "כמה זה עולה?", flow.intents[2]["answer"]), "0", answer)
        assert flow.summarize(history, None).splitlines()[0] == f"פנייה בנושא: המחירים, {person}"


def test_a_message_begun_and_hung_up_on_is_its_answers_so_far(flow):
    history = said([], "0", flow.lead_texts["ask_name"])
    assert flow.partial_lead(history) is None  # asked, not answered
    history = said(history, "דנה כהן", flow.lead_texts["ask_phone"])
    assert flow.partial_lead(history) == {"name": "דנה כהן", "phone": "", "reason": ""}
    history = said(history, "אפס חמש שתיים תשע שמונה שבע שש חמש ארבע שלוש",
                   flow.lead_texts["ask_reason"])
    assert flow.partial_lead(history) == {"name": "דנה כהן", "phone": "0529876543", "reason": ""}
    assert flow.partial_lead(said([], "כמה זה עולה?", flow.intents[2]["answer"])) is None


def test_a_question_no_intent_takes_is_answered_from_the_facts_before_clarify(tmp_path):
    from ivr.facts.facts import LiveFacts
    from ivr.facts.retrieval import Lookup

    from ..facts.samples import PARKING, facts_file
    flow = ScriptedLLM(lookup=Lookup(LiveFacts(facts_file(tmp_path))))
    assert flow.reply([], "יש חניה?") == PARKING
    assert flow.reply([], "אפשר לבוא עם הכלב?") == "כלבים קטנים מוזמנים, ברצועה."
    assert flow.reply([], "מה שעות הפתיחה?").startswith("אנחנו פתוחים")  # the flow's first
    assert flow.reply([], "האם אתם מוכרים חדי קרן?") == flow.flow["clarify"]
    assert flow.reply([], "9") == flow.flow["clarify"]  # a key is not a question
    assert PARKING in flow.texts()  # prewarmed like the flow's sentences
