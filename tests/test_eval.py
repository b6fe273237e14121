"""`make eval`'s runner, on a few of its scenarios: the scripted line passes one, the OpenAI
stand-in books one, a line that confirms a made-up promotion fails its checks by name (the price
it invents is never said: the line's check of figures), the stand-in's own made-up price is
kept from the caller, and every shipped scenario loads (the whole set runs in `make eval`, not
here)."""

import json
import logging

import pytest

from eval import run
from eval.lines import start_line

pytestmark = pytest.mark.live  # rings whole calls through the emulator


@pytest.fixture(autouse=True)
def line_log_restored():
    """The runner sends the lines' log to a file beside its results: put the logger back."""
    logger = logging.getLogger("ivr")
    kept = (list(logger.handlers), logger.level, logger.propagate)
    yield
    for handler in logger.handlers:
        if handler not in kept[0]:
            handler.close()
    logger.handlers[:], logger.level, logger.propagate = kept


def results(path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["results"]


def test_every_shipped_scenario_loads_and_the_set_covers_both_engines():
    scenarios = run.load_all()
    assert len(scenarios) >= 25
    assert len({s.name for s in scenarios}) == len(scenarios)
    assert {e for s in scenarios for e in s.engines} == {"scripted", "openai"}
    assert all(s.checks for s in scenarios)


def test_the_scripted_line_passes_the_hours_scenario(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    out = tmp_path / "eval.json"
    assert run.main(["--only", "hours", "--engine", "scripted", "--out", str(out)]) == 0
    (row,) = results(out)
    assert (row["scenario"], row["engine"], row["passed"]) == ("hours", "scripted", True)
    assert row["conversation"][1][1].startswith("אנחנו פתוחים")
    assert 0 < row["first_audio_s"] <= 30  # emulator seconds at speed 5
    printed = capsys.readouterr().out
    assert "judge: off (no key)" in printed and "1 of 1 passed" in printed


def test_the_openai_stand_in_books_tomorrow_at_ten(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    out = tmp_path / "eval.json"
    assert run.main(["--only", "booking_tomorrow_ten", "--engine", "openai",
                     "--out", str(out)]) == 0
    (row,) = results(out)
    assert row["passed"] and row["engine"] == "openai"
    assert any("קבעתי לך תספורת ביום שני" in text for who, text in row["conversation"])


def test_a_line_that_confirms_a_made_up_promotion_fails_by_name(tmp_path, monkeypatch):
    def inventing(*args, **kwargs):  # the stand-in's model confirms it, with a price
        line = start_line(*args, **kwargs)
        line.provider.model = lambda body: ["כן, יש מבצע 1+1 השבוע, תספורת ב-99 שקלים."]
        return line
    monkeypatch.setattr(run, "start_line", inventing)
    (scenario,) = run.load_all("made_up_promotion")
    row = run.ring(scenario, "openai", run.Judge())
    assert not row["passed"]
    assert "said 'יש מבצע'" in row["failures"] and "said '1+1'" in row["failures"]
    assert not any("99" in text for who, text in row["conversation"])  # checked, not said
    assert ("line", "כן, יש מבצע 1+1 השבוע, אבדוק את זה ואחזור אליך.") in row["conversation"]
    out = tmp_path / "eval.json"
    monkeypatch.setattr(run, "load_all", lambda only=None: [scenario])
    assert run.main(["--engine", "openai", "--out", str(out)]) == 1
    assert results(out)[0]["failures"] == row["failures"]


def test_the_stand_in_makes_up_a_promotion_price_and_the_line_never_says_it(tmp_path,
                                                                            monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    out = tmp_path / "eval.json"
    assert run.main(["--only", "made_up_promotion", "--engine", "openai", "--out", str(out)]) == 0
    (row,) = results(out)
    assert row["conversation"] == [["caller", "שמעתי שיש אצלכם מבצע 1+1, זה נכון?"],
                                   ["line", "אבדוק את זה ואחזור אליך."]]  # not its 60 ₪
