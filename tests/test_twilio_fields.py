"""Twilio's numeric fields within bounds: what passes, what is missing, what is cut, and why."""

import pytest

from ivr.twilio_fields import MAX_DIGITS, bounded


@pytest.mark.parametrize("form, kept, ignored", [
    ({"CallDuration": "42", "Confidence": "0.92", "Digits": "12#"},
     {"CallDuration": "42", "Confidence": "0.92", "Digits": "12#"}, []),
    ({"CallDuration": "86400", "turn": "100000", "Confidence": "1"},
     {"CallDuration": "86400", "turn": "100000", "Confidence": "1"}, []),
    ({"CallDuration": "86401"}, {}, [("CallDuration", "out of range (0..86400)")]),
    ({"RecordingDuration": "2147483648"}, {}, [("RecordingDuration", "out of range (0..86400)")]),
    ({"DialCallDuration": "-1"}, {}, [("DialCallDuration", "not a whole number")]),
    ({"CallDuration": "²"}, {}, [("CallDuration", "not a whole number")]),  # str.isdigit: True
    ({"CallDuration": "١٢"}, {}, [("CallDuration", "not a whole number")]),
    ({"part": "1e9", "turn": " 3"}, {}, [("turn", "not a whole number"),
                                        ("part", "not a whole number")]),
    ({"CallDuration": ""}, {"CallDuration": ""}, []),  # absent, not wrong
    ({"Confidence": "1.5"}, {}, [("Confidence", "not a number from 0 to 1")]),
    ({"Confidence": "NaN"}, {}, [("Confidence", "not a number from 0 to 1")]),
    ({"Digits": "12a"}, {"Digits": ""}, [("Digits", "not keypad keys")]),
    ({"Digits": "9" * 2000}, {"Digits": "9" * MAX_DIGITS},
     [("Digits", f"longer than {MAX_DIGITS} keys: cut")]),
    ({"From": "+972501234567", "SpeechResult": "99999999999"},
     {"From": "+972501234567", "SpeechResult": "99999999999"}, []),  # not numbers to bound
])
def test_bounded(form, kept, ignored):
    out, changes = bounded(form)
    assert out == kept
    assert [(field, why) for field, _value, why in changes] == ignored
    assert all(value == form[field] for field, value, _why in changes)  # the value as sent
