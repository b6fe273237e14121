"""What an LLM that writes freely may say: each chunk's figures against the facts', the
caller's, the tools' and the owner's hours; the facts its prompt carries, whole or retrieved."""

import json

import pytest

from ivr.facts.facts import Facts, LiveFacts, Passage
from ivr.facts.grounding import (
    ALL_FACTS_CHARS,
    TOP_PASSAGES,
    Allowed,
    ReplyCheck,
    chosen,
    facts_prompt,
    prompt_passages,
)

from .samples import facts_file

CALLER = ["שלום, אני רוצה לקבוע תור לשלושה אנשים",  # 3: a figure the caller said
          "המספר שלי אפס חמש ארבע, שבע שש חמש, ארבע שלוש, שתיים אחת"]  # in pieces
FROM = "+972501112233"
HOURS = "בימים ראשון עד חמישי 8:00-18:00, וביום שישי 8:00-13:00"  # the owner's, spoken()
BOOKED = {"booked": True, "service": "תספורת גברים", "said": "ביום שלישי בעשר וחצי",
          "slot_id": "s-9f2c-7781234567", "appointment_id": "5512345678"}


@pytest.fixture(name="allowed")
def allowed_in_a_call(tmp_path):
    facts = LiveFacts(facts_file(tmp_path)).current()
    return Allowed.of(facts, CALLER, [HOURS], FROM)


@pytest.mark.parametrize("chunk, unsupported", [
    ("תספורת גברים עולה 80 ₪.", []),  # the facts' price, as written
    ("תספורת גברים עולה שמונים שקלים.", []),  # the same price said
    ("צבע שורשים במאתיים ועשרים שקל, כולל חפיפה.", []),
    ("תספורת גברים עולה 90 ₪.", ["90"]),  # a price nobody gave
    ("יש מבצע החודש: תספורת במאה ועשרים שקל.", ["120"]),  # said in words
    ("חיילים מקבלים 15 אחוז הנחה.", []),  # a Q&A's figure
    ("חיילים מקבלים 25 אחוז הנחה.", ["25"]),
    ("אנחנו פתוחים עד 19:00.", []),
    ("אנחנו פתוחים עד שבע בערב.", []),  # 19:00 on a twelve-hour clock
    ("אנחנו פתוחים עד 7:00 בערב.", []),
    ("אנחנו פתוחים עד 20:00.", ["20:00"]),
    ("אנחנו פתוחים עד תשע בערב.", []),  # 9: the hour 9:00 opens
    ("בשישי עד אחת בצהריים.", []),  # "אחת" alone is no figure
    ("בשישי עד 14:00.", ["14:00"]),
    ("ביום שישי פותחים ב-8:00.", []),  # the owner's hours say it too
    ("רשמתי לשלושה אנשים.", []),  # the caller's own figure
    ("אחזור אליך למספר 054-7654321.", []),  # the caller's number, dictated in pieces
    ("אחזור אליך למספר אפס חמש ארבע שבע שש חמש ארבע שלוש שתיים אחת.", []),
    ("אחזור אליך למספר 054-7654329.", ["0547654329"]),  # one digit wrong
    ("אחזור אליך למספר 050-1112233.", []),  # the number the caller rang from
    ("המחירים: 80, 220.", []),  # prices in a row are no phone number
    ("לנציג הקישו 0, יש שתי אפשרויות.", []),  # harmless: the person key, a count
    ("שלום, במה אפשר לעזור?", []),
])
def test_a_chunk_may_name_only_figures_the_line_was_given(allowed, chunk, unsupported):
    assert allowed.unsupported(chunk) == unsupported


def test_a_booking_time_is_allowed_once_the_tool_said_it_and_not_its_ids(allowed):
    kept: list = []
    check = ReplyCheck(allowed, kept)
    assert check.unsupported("קבעתי לך ביום שלישי בעשר וחצי.") == ["10"]
    kept += [{"role": "assistant", "content": None, "tool_calls": []},
             {"role": "tool", "tool_call_id": "call_1",
              "content": json.dumps(BOOKED, ensure_ascii=False)}]
    assert check.unsupported("קבעתי לך ביום שלישי בעשר וחצי.") == []
    assert check.unsupported("מספר התור 5512345678.") == ["5512345678"]  # an id is not said


def test_without_facts_no_figure_of_the_models_own_is_said():
    allowed = Allowed.of(Facts(), ["כמה עולה תספורת?"])
    assert allowed.unsupported("תספורת עולה 80 ₪.") == ["80"]
    assert allowed.unsupported("אין לי מידע על המחיר.") == []


def test_small_facts_go_whole_into_the_prompt_and_read_back(tmp_path):
    facts = LiveFacts(facts_file(tmp_path)).current()
    assert chosen(facts, ["משהו אחר לגמרי"]) == facts.passages
    prompt = facts_prompt(facts.passages)
    assert "cannot_answer" in prompt
    read = prompt_passages("אתה עונה לשיחות.\n" + prompt)
    assert [p.text for p in read] == [p.text for p in facts.passages]
    parking = next(p for p in read if "חניון" in p.text)
    assert parking.title == "חניה"  # its topic, for a model and a retriever alike


def test_large_facts_give_the_prompt_the_passages_found_for_the_question():
    filler = [Passage(f"מוצר מספר {n} לשיער, {'מילה ' * 40}", f"f.yaml:{n}") for n in range(60)]
    parking = Passage("יש חניון ציבורי מתחת לקניון.", "f.yaml:99", "חניה")
    facts = Facts.of([*filler, parking])
    assert sum(len(p.text) for p in facts.passages) > ALL_FACTS_CHARS
    found = chosen(facts, ["יש חניה?"])
    assert parking in found and len(found) <= TOP_PASSAGES
    assert chosen(facts, ["מניקור ופדיקור"]) == ()
    assert "אין עובדות" in facts_prompt(())
