"""Texts in words before TTS: hours, prices, phones, dates; as written if the library fails."""

import logging

import heb_tts_normalizer
import pytest

from ivr import speakable as speakable_module
from ivr.speakable import speakable


@pytest.mark.parametrize(("text", "said"), [
    ("אנחנו פתוחים 8:00-18:00", "אנחנו פתוחים שמונה בבוקר עד שש בערב"),
    ("150 ₪", "מאה וחמישים שקלים"),
    ("03-5551234", "אפס שלוש חמש חמש חמש אחת שתיים שלוש ארבע"),
])
def test_hours_prices_and_phone_numbers_become_words(text, said):
    assert speakable(text) == said


@pytest.mark.parametrize("text", ["ביום שישי 08:00 – 13:00", "ביום שישי 8:00‐13:00",
                                  "ביום שישי 8:00 - 13:00"])
def test_a_time_range_reads_from_to_with_any_dash(text):
    assert speakable(text) == "ביום שישי שמונה בבוקר עד אחת אחר הצהריים"


def test_an_english_brand_name_stays_and_the_hebrew_around_it_is_read():
    assert speakable("אפשר לכתוב לנו ב-WhatsApp, 24 שעות ביממה") == (
        "אפשר לכתוב לנו ב-WhatsApp, עשרים וארבע שעות ביממה")


def test_dates_read_as_day_month_year():
    assert speakable("הפגישה ב-12/03/2026") == "הפגישה בשנים עשר במרץ אלפיים עשרים ושש"
    assert speakable("החל מ-1.5.2025 וגם ב-1.5.2025") == (  # "בהראשון" is not Hebrew
        "החל מהראשון במאי אלפיים עשרים וחמש וגם בראשון במאי אלפיים עשרים וחמש")


def test_text_without_numbers_is_unchanged():
    assert speakable("שלום, הגעתם לעסק שלנו. במה אפשר לעזור?") == (
        "שלום, הגעתם לעסק שלנו. במה אפשר לעזור?")


def test_a_failing_library_leaves_the_text_as_written_and_warns_once(monkeypatch, caplog):
    def broken(text):
        raise heb_tts_normalizer.NormalizerError("boom")
    monkeypatch.setattr(heb_tts_normalizer, "normalize", broken)
    monkeypatch.setattr(speakable_module, "_warned", False)
    with caplog.at_level(logging.WARNING, logger="ivr"):
        assert speakable("פתוחים 8:00-18:00") == "פתוחים 8:00-18:00"
        assert speakable("150 ₪") == "150 ₪"
    assert [r.getMessage() for r in caplog.records] == [
        "SPEAKABLE_ERR err=NormalizerError('boom') (texts go to TTS as written)"]
