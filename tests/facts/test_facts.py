"""The owner's facts file: its passages with file:line, the figures they name, a mistake named
by file:line:column, an edit used from the next look and a broken one reported while the last
good one answers, and the site's passages used only once reviewed."""

import logging
import os

import pytest

from ivr.facts.facts import DEFAULT_FACTS, IMPORTED, LiveFacts, Passage
from ivr.flow import FlowFileError

from ..test_flow_file import Records
from .samples import FACTS, LINES, PARKING, facts_file


def touch_later(path):
    """Make the next stat see a change even on a file system with coarse times."""
    info = os.stat(path)
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 10**9))


def test_each_fact_is_a_passage_naming_its_line_or_its_url(tmp_path):
    facts = LiveFacts(facts_file(tmp_path)).current()
    by_text = {p.text: p for p in facts.passages}
    assert by_text["תספורת גברים: 80 ₪, 30 דקות."].source == f"facts.yaml:{LINES['services.0']}"
    assert by_text["צבע שורשים: 220 ₪. כולל חפיפה."].source == f"facts.yaml:{LINES['services.1']}"
    assert by_text[PARKING] == Passage(PARKING, f"facts.yaml:{LINES['parking']}", "חניה")
    assert by_text["כלבים קטנים מוזמנים, ברצועה."] == Passage(
        "כלבים קטנים מוזמנים, ברצועה.", f"facts.yaml:{LINES['qa.0']}", "אפשר להגיע עם כלב?")
    soldiers = by_text["חיילים בשירות סדיר מקבלים 15 אחוז הנחה בהצגת חוגר."]
    assert soldiers.source == "https://example.co.il/soldiers"
    assert len(facts.passages) == 9


def test_the_figures_are_every_price_hour_and_number_the_facts_name(tmp_path):
    facts = LiveFacts(facts_file(tmp_path)).current()
    assert facts.figures == {"80", "30", "220", "9:00", "19:00", "8:00", "13:00", "5", "3",
                             "15"}


def test_the_shipped_example_can_be_said():
    facts = LiveFacts(DEFAULT_FACTS).current()
    assert len(facts.passages) >= 10 and {"80", "150", "250"} <= facts.figures


def test_a_yaml_mistake_names_file_line_and_column(tmp_path):
    path = facts_file(tmp_path, FACTS.replace('  - q: "אפשר להגיע', '\t- q: "אפשר להגיע'))
    with pytest.raises(FlowFileError) as info:
        LiveFacts(path)
    assert str(info.value).startswith(f"{path}:{LINES['qa.0']}:")
    assert "a tab: indent with spaces only" in str(info.value)


def test_an_entry_the_line_cannot_say_is_named_by_its_line(tmp_path):
    path = facts_file(tmp_path, FACTS.replace('    a: "כלבים', '    answer: "כלבים'))
    with pytest.raises(FlowFileError) as info:
        LiveFacts(path)
    assert str(info.value) == f"{path}:{LINES['qa.0']}: qa.0: expected q: and a: (and source:)"


def test_an_edit_is_used_and_a_broken_one_is_reported_while_the_last_good_one_answers(
        tmp_path):
    path = facts_file(tmp_path)
    live = LiveFacts(path)
    assert PARKING in {p.text for p in live.current().passages}
    path.write_text(FACTS.replace(PARKING, "אין חניה באזור."), encoding="utf-8")
    touch_later(path)
    assert "אין חניה באזור." in {p.text for p in live.current().passages}
    good = live.current()
    logged = Records()
    logging.getLogger("ivr").addHandler(logged)
    try:
        path.write_text(FACTS.replace("address:", "\taddress:"), encoding="utf-8")
        touch_later(path)
        assert live.current() is good and live.current() is good
    finally:
        logging.getLogger("ivr").removeHandler(logged)
    assert live.problem.startswith(f"{path}:{LINES['address']}:1: a tab")
    assert live.problem.endswith("the line goes on with the facts it read before")
    assert [m.split()[0] for m in logged.messages] == ["FACTS_ERR"]  # once


def test_the_site_s_passages_are_used_only_once_reviewed(tmp_path):
    path = facts_file(tmp_path)
    live = LiveFacts(path)
    (tmp_path / IMPORTED).write_text("""\
site: https://example.co.il
passages:
  - source: https://example.co.il/about
    text: "המספרה נפתחה בשנת 2006."
    reviewed: true
  - source: https://example.co.il/prices
    text: "תספורת ילדים 50 ₪."
    reviewed: false
""", encoding="utf-8")
    facts = live.current()
    assert Passage("המספרה נפתחה בשנת 2006.", "https://example.co.il/about") in facts.passages
    assert facts.from_site == 1
    assert "תספורת ילדים 50 ₪." not in {p.text for p in facts.passages}
    assert "2006" in facts.figures and "50" not in facts.figures


@pytest.mark.live  # starts a process
def test_check_names_a_broken_facts_file_whatever_engine_answers(tmp_path):
    from ..test_cli import OPENAI_CHAT_ONLY as env
    from ..test_cli import check
    path = facts_file(tmp_path, FACTS.replace("address:", "\taddress:"))
    broken = check(tmp_path, FACTS_FILE=str(path), **env)
    assert broken.returncode == 1
    assert f"{path}:{LINES['address']}:1: a tab: indent with spaces only" in broken.stderr
    facts_file(tmp_path)
    told = check(tmp_path, FACTS_FILE=str(path), **env)
    assert told.returncode == 0, told.stderr
    assert f"facts: 9 passages from {path}" in told.stdout


def test_a_review_file_that_cannot_be_read_is_reported_once_and_not_used(tmp_path):
    live = LiveFacts(facts_file(tmp_path))
    review = tmp_path / IMPORTED
    review.write_text("passages:\n\t- text: x\n", encoding="utf-8")
    logged = Records()
    logging.getLogger("ivr").addHandler(logged)
    try:
        assert live.current().from_site == 0 and live.current().from_site == 0
    finally:
        logging.getLogger("ivr").removeHandler(logged)
    assert [m.split()[0] for m in logged.messages] == ["FACTS_ERR"]  # once, not every turn
    assert live.problem.startswith(f"{review}:2:1: a tab")
    review.write_text("passages:\n  - {source: 'https://a.example/', text: x, reviewed: true}\n",
                      encoding="utf-8")
    touch_later(review)
    assert live.current().from_site == 1 and live.problem == ""
    review.unlink()
    assert live.current().from_site == 0  # deleted: nothing imported is used
