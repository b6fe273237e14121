"""The figures a text names, in one form however they are written or said."""

import pytest

from ivr.facts.figures import figures


@pytest.mark.parametrize("text, found", [
    ("תספורת 80 ₪", {"80"}),
    ("תספורת 80 שקל", {"80"}),
    ("תספורת בשמונים שקלים", {"80"}),
    ("מאה וחמישים ש\"ח", {"150"}),
    ("אלף ומאתיים", {"1200"}),
    ("שלושת אלפים וחמש מאות", {"3500"}),
    ("1,200 ₪", {"1200"}),
    ("79.90", {"79.9"}),
    ("פתוחים 08:00-18:00", {"8:00", "18:00"}),
    ("חמש עשרה דקות", {"15"}),
    ("עשרים ואחת", {"21"}),
    ("טלפון 03-5551234", {"035551234"}),
    ("20% הנחה", {"20"}),
    ("ביום שני, אחד הדברים", set()),  # "שני", "אחד" alone are seldom figures
    ("שלום, במה אפשר לעזור?", set()),
])
def test_a_figure_is_digits_whether_written_or_said(text, found):
    assert figures(text) == found


def test_a_price_written_and_the_same_price_said_are_one_figure():
    assert figures("80 ₪") == figures("80 שקל") == figures("שמונים") == {"80"}
