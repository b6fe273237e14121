"""Twilio's numeric fields read within bounds: a value out of range or not a number is missing."""

from __future__ import annotations

import re

DAY_SEC = 86_400  # a call, a recording or a <Dial> lasts less (Twilio ends calls at 24 h)
MAX_TURN = 100_000  # a call's turns, a reply's parts (`?turn=`, `?part=` of our own URLs)
MAX_DIGITS = 40  # keys of one <Gather>: more is a stuck key, not an answer
DIGITS = re.compile(r"[0-9]{1,12}")  # ASCII only: "²".isdigit() is True, int("²") raises
KEYS = re.compile(r"[0-9*#]+")  # what a keypad sends
FRACTION = re.compile(r"[01](\.[0-9]{1,12})?|\.[0-9]{1,12}")  # Confidence: "0.92", "1"
NUMBERS = {"CallDuration": DAY_SEC, "RecordingDuration": DAY_SEC, "DialCallDuration": DAY_SEC,
           "turn": MAX_TURN, "part": MAX_TURN}  # each field's highest value (the lowest is 0)


def whole_number(value: str | None, high: int) -> tuple[int | None, str]:
    """`value` as a whole number from 0 to `high`, or None and why ("" when it is absent)."""
    if not value:
        return None, ""
    if not DIGITS.fullmatch(value):
        return None, "not a whole number"
    number = int(value)
    if number > high:
        return None, f"out of range (0..{high})"
    return number, ""


def fraction(value: str | None) -> tuple[str, str]:
    """A Gather's `Confidence` as a number from 0 to 1 (as sent), or "" and why."""
    if not value:
        return "", ""
    if not FRACTION.fullmatch(value) or float(value) > 1:
        return "", "not a number from 0 to 1"
    return value, ""


def keys(value: str | None) -> tuple[str, str]:
    """The keys a caller pressed (`Digits`), at most MAX_DIGITS, and why they were cut or
    dropped ("" when taken whole)."""
    if not value:
        return "", ""
    if not KEYS.fullmatch(value):
        return "", "not keypad keys"
    if len(value) > MAX_DIGITS:
        return value[:MAX_DIGITS], f"longer than {MAX_DIGITS} keys: cut"
    return value, ""


def bounded(params: dict[str, str]) -> tuple[dict[str, str], list[tuple[str, str, str]]]:
    """The fields with every number within its bounds (`Confidence` 0..1) and the keys within
    MAX_DIGITS: a field that is not is dropped (missing) or cut; each change as (field, value,
    why)."""
    out, changes = dict(params), []
    for name, high in NUMBERS.items():
        if name in out:
            _, why = whole_number(out[name], high)
            if why:
                changes.append((name, out.pop(name), why))
    if "Confidence" in out:
        _, why = fraction(out["Confidence"])
        if why:
            changes.append(("Confidence", out.pop("Confidence"), why))
    if "Digits" in out:
        pressed, why = keys(out["Digits"].strip())
        if why:
            changes.append(("Digits", out["Digits"], why))
            out["Digits"] = pressed
    return out, changes
